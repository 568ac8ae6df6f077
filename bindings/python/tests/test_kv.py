"""get / put / delete / ranges / replace / put_if_not_exists."""

from __future__ import annotations

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_put_then_get_returns_value_and_meta(db: etch.Store) -> None:
    resp = db.put(b"k", b"v1")
    assert isinstance(resp, etch.PutResponse)
    value, meta = db.get(b"k")
    assert value == b"v1"
    assert isinstance(meta, etch.KVMetadata)
    assert meta.key == b"k"
    assert meta.create_revision == resp.revision
    assert meta.mod_revision == resp.revision
    assert meta.version == 1
    assert meta.lease_id == 0


def test_overwrite_bumps_version_and_mod_revision(db: etch.Store) -> None:
    first = db.put("k", "a").revision
    second = db.put("k", "b").revision
    assert second == first + 1
    value, meta = db.get("k")
    assert value == b"b"
    assert (meta.create_revision, meta.mod_revision, meta.version) == (first, second, 2)


def test_get_missing_key_is_none_pair(db: etch.Store) -> None:
    assert db.get("absent") == (None, None)


def test_put_prev_kv(db: etch.Store) -> None:
    assert db.put("k", "old", prev_kv=True).prev_kv is None
    prev = db.put("k", "new", prev_kv=True).prev_kv
    assert prev is not None
    assert prev[0] == b"old"
    assert prev[1].key == b"k"


def test_get_at_past_revision(db: etch.Store) -> None:
    rev = db.put("k", "v1").revision
    db.put("k", "v2")
    assert db.get("k", revision=rev)[0] == b"v1"
    assert db.get("k")[0] == b"v2"


def test_revision_property_follows_writes(db: etch.Store) -> None:
    before = db.revision
    assert db.put("k", "v").revision == before + 1 == db.revision


def _fill(db: etch.Store) -> None:
    for k, v in [("svc/b", "2"), ("svc/a", "3"), ("svc/c", "1"), ("svd", "x"), ("a", "y")]:
        db.put(k, v)


def test_get_prefix_in_key_order(db: etch.Store) -> None:
    _fill(db)
    got = [(m.key, v) for v, m in db.get_prefix("svc/")]
    assert got == [(b"svc/a", b"3"), (b"svc/b", b"2"), (b"svc/c", b"1")]


def test_get_prefix_sorting_limit_keys_only(db: etch.Store) -> None:
    _fill(db)
    by_value = [v for v, _ in db.get_prefix("svc/", sort_order="descend", sort_target="value")]
    assert by_value == [b"3", b"2", b"1"]
    assert [m.key for _, m in db.get_prefix("svc/", limit=2)] == [b"svc/a", b"svc/b"]
    assert all(v == b"" for v, _ in db.get_prefix("svc/", keys_only=True))
    with pytest.raises(ValueError):
        list(db.get_prefix("svc/", sort_order="sideways"))


def test_get_prefix_at_revision(db: etch.Store) -> None:
    rev = db.put("p/a", "1").revision
    db.put("p/b", "2")
    assert [m.key for _, m in db.get_prefix("p/", revision=rev)] == [b"p/a"]


def test_get_range_is_half_open(db: etch.Store) -> None:
    _fill(db)
    assert [m.key for _, m in db.get_range("svc/a", "svc/c")] == [b"svc/a", b"svc/b"]


def test_get_all_and_count_prefix(db: etch.Store) -> None:
    _fill(db)
    assert [m.key for _, m in db.get_all()] == [b"a", b"svc/a", b"svc/b", b"svc/c", b"svd"]
    assert db.count_prefix("svc/") == 3
    assert db.count_prefix("") == 5


def test_delete(db: etch.Store) -> None:
    db.put("k", "v")
    assert db.delete("k") is True
    assert db.delete("k") is False
    assert db.get("k") == (None, None)


def test_delete_return_response_with_prev_kv(db: etch.Store) -> None:
    db.put("k", "v")
    resp = db.delete("k", prev_kv=True, return_response=True)
    assert isinstance(resp, etch.DeleteResponse)
    assert resp.deleted == 1
    assert [v for v, _ in resp.prev_kvs] == [b"v"]


def test_delete_prefix_and_range(db: etch.Store) -> None:
    _fill(db)
    resp = db.delete_prefix("svc/")
    assert resp.deleted == 3
    assert [m.key for _, m in db.get_all()] == [b"a", b"svd"]
    assert db.delete_range("a", "sve").deleted == 2
    assert list(db.get_all()) == []


def test_replace(db: etch.Store) -> None:
    db.put("k", "v1")
    assert db.replace("k", "v1", "v2") is True
    assert db.replace("k", "v1", "v3") is False
    assert db.get("k")[0] == b"v2"
    assert db.replace("absent", "x", "y") is False
    assert db.get("absent") == (None, None)


def test_put_if_not_exists(db: etch.Store) -> None:
    assert db.put_if_not_exists("k", "first") is True
    assert db.put_if_not_exists("k", "second") is False
    assert db.get("k")[0] == b"first"


def test_range_filters_and_serializable(db: etch.Store) -> None:
    a = db.put("f/a", "1").revision
    b = db.put("f/b", "1").revision
    db.put("f/a", "2")
    assert [m.key for _, m in db.get_prefix("f/", min_mod_revision=b)] == [b"f/a", b"f/b"]
    assert [m.key for _, m in db.get_prefix("f/", max_mod_revision=b)] == [b"f/b"]
    assert [m.key for _, m in db.get_prefix("f/", min_create_revision=b)] == [b"f/b"]
    assert [m.key for _, m in db.get_all(max_create_revision=a)] == [b"f/a"]
    assert [m.key for _, m in db.get_range("f/", "f0", serializable=True)] == [b"f/a", b"f/b"]
    assert db.get("f/a", serializable=True)[0] == b"2"
    with pytest.raises(TypeError):
        list(db.get_prefix("f/", no_such_filter=1))
