"""python-etcd3's method and class names on etch.Store, where they map onto the engine exactly."""

from __future__ import annotations

import threading

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS

#: Every python-etcd3 ``Etcd3Client`` method that has a local meaning, by its python-etcd3 name.
ETCD3_CLIENT_METHODS = [
    "get", "get_prefix", "get_range", "get_all", "put", "put_if_not_exists", "replace",
    "delete", "delete_prefix", "status", "watch", "watch_prefix", "watch_once",
    "watch_prefix_once", "watch_response", "watch_prefix_response", "add_watch_callback",
    "add_watch_prefix_callback", "cancel_watch", "lease", "revoke_lease", "refresh_lease",
    "get_lease_info", "lock", "transaction", "compact", "defragment", "snapshot", "close",
]


@pytest.mark.parametrize("name", ETCD3_CLIENT_METHODS)
def test_store_has_python_etcd3_method(name: str) -> None:
    assert callable(getattr(etch.Store, name))


def test_watch_response_and_prefix_response(db: etch.Store) -> None:
    responses, cancel = db.watch_response("a")
    prefix_responses, cancel_prefix = db.watch_prefix_response("p/")
    writer = threading.Timer(0.05, lambda: (db.put("a", "1"), db.put("p/x", "2")))
    writer.start()
    first = next(iter(responses))
    assert [e.key for e in first.events] == [b"a"]
    got = next(iter(prefix_responses))
    assert [(e.key, e.value) for e in got.events] == [(b"p/x", b"2")]
    # A server's watch event can arrive before the put's reply: let the put finish before
    # the store (and the server) goes away.
    writer.join()
    cancel()
    cancel_prefix()


def test_get_lease_info(db: etch.Store) -> None:
    lease = db.lease(30)
    db.put("leased", "v", lease=lease)
    info = db.get_lease_info(lease.id)
    assert info.ID == lease.id
    assert info.grantedTTL == 30
    assert 0 < info.TTL <= 30
    assert info.keys == [b"leased"]
    lease.revoke()
    with pytest.raises(etch.LeaseNotFoundError):
        db.get_lease_info(lease.id)


# Defragmenting rewrites a local file; etch-client has no Defragment call for a server's.
@pytest.mark.backends('local')
def test_defragment_is_defrag(db: etch.Store) -> None:
    for i in range(100):
        db.put(f"k{i}", "x" * 100)
    db.delete_prefix("k")
    before, after = db.defragment()
    assert after <= before


# A server's compaction error text carries no compact revision (etcd's protocol).
@pytest.mark.backends('local', 'member')
def test_revision_compacted_error(db: etch.Store) -> None:
    assert etch.RevisionCompactedError is etch.CompactedError
    first = db.put("c", "1").revision
    now = db.put("c", "2").revision
    db.compact(now)
    with pytest.raises(etch.RevisionCompactedError) as info:
        db.get("c", revision=first)
    assert info.value.compacted_revision == now == info.value.compact_revision
    events, _ = db.watch("c", start_revision=first)
    with pytest.raises(etch.RevisionCompactedError) as watched:
        next(events)
    assert watched.value.compacted_revision == now
