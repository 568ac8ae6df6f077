"""Keys and values: bytes in, bytes out; str encoded as UTF-8; anything else a TypeError."""

from __future__ import annotations

from typing import Any

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_str_key_and_value_are_utf8(db: etch.Store) -> None:
    db.put("clé", "välue ☃")
    value, meta = db.get("clé".encode())
    assert value == "välue ☃".encode()
    assert meta.key == "clé".encode()
    assert isinstance(value, bytes)


def test_bytes_and_str_name_the_same_key(db: etch.Store) -> None:
    db.put(b"k", b"from bytes")
    assert db.get("k")[0] == b"from bytes"


def test_bytearray_is_accepted(db: etch.Store) -> None:
    db.put(bytearray(b"k"), bytearray(b"v"))
    assert db.get(b"k")[0] == b"v"


def test_binary_values_round_trip(db: etch.Store) -> None:
    blob = bytes(range(256)) * 10
    db.put(b"\x00\xff", blob)
    assert db.get(b"\x00\xff")[0] == blob


@pytest.mark.parametrize("bad", [1, 1.5, None, ["k"], object(), memoryview(b"k")])
def test_other_types_raise_type_error(db: etch.Store, bad: Any) -> None:
    with pytest.raises(TypeError):
        db.put(bad, b"v")
    with pytest.raises(TypeError):
        db.put(b"k", bad)
    with pytest.raises(TypeError):
        db.get(bad)
    with pytest.raises(TypeError):
        list(db.get_prefix(bad))


def test_type_errors_in_transactions(db: etch.Store) -> None:
    t = db.transactions
    with pytest.raises(TypeError):
        db.transaction(compare=[t.value(1) == b"x"], success=[])
    with pytest.raises(TypeError):
        db.transaction(compare=[], success=[t.put("k", 3)])
    with pytest.raises(TypeError):
        db.transaction(compare=["not a compare"], success=[])  # type: ignore[list-item]
    assert db.get("k") == (None, None)
