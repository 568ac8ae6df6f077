"""The exception hierarchy and the mapping of every reachable engine error onto it."""

from __future__ import annotations

import errno
import zlib
from pathlib import Path

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS

INVALID_REQUEST = [
    etch.EmptyKeyError,
    etch.KeyTooLargeError,
    etch.RequestTooLargeError,
    etch.TooManyOpsError,
    etch.DuplicateKeyError,
    etch.KeyNotFoundError,
    etch.ValueProvidedError,
    etch.LeaseProvidedError,
    etch.InvalidOptionError,
]
DIRECT = [
    etch.InvalidRequestError,
    etch.LeaseNotFoundError,
    etch.LeaseExistsError,
    etch.CompactedError,
    etch.FutureRevisionError,
    etch.NotEtchFileError,
    etch.NewerFormatError,
    etch.CorruptError,
    etch.LockedError,
    etch.ReadOnlyError,
    etch.StorageError,
    etch.PoisonedError,
    etch.ClosedError,
    etch.QuotaExceededError,
    etch.ConflictError,
    etch.WatchTimedOut,
]


def test_hierarchy() -> None:
    assert issubclass(etch.Error, Exception)
    for cls in DIRECT:
        assert cls.__bases__[0] is etch.Error, cls
    for cls in INVALID_REQUEST:
        assert cls.__bases__ == (etch.InvalidRequestError,), cls
    assert issubclass(etch.NoSpaceError, etch.StorageError)
    assert issubclass(etch.WatchTimedOut, TimeoutError)


def test_too_many_requests_is_a_transient_unavailable_error() -> None:
    # etcd's "too many requests": nothing proposed, retry after a back-off, like any
    # UnavailableError; its own class so that callers can back off longer.
    assert etch.TooManyRequestsError.__bases__ == (etch.UnavailableError,)
    assert issubclass(etch.TooManyRequestsError, etch.Error)
    assert etch.TooManyRequestsError.__doc__
    assert etch.TooManyRequestsError.__module__ == "etch"


def test_every_class_is_exported_with_a_docstring() -> None:
    for cls in INVALID_REQUEST + DIRECT + [etch.Error, etch.NoSpaceError]:
        assert getattr(etch, cls.__name__) is cls
        assert cls.__doc__, cls
        assert cls.__module__ == "etch", cls


def test_empty_key(db: etch.Store) -> None:
    with pytest.raises(etch.EmptyKeyError):
        db.put("", "v")


# max_key_size is etch's own limit; etcd has none (only the request size).
@pytest.mark.backends('local', 'member')
def test_key_too_large(db: etch.Store) -> None:
    with pytest.raises(etch.KeyTooLargeError) as info:
        db.put(b"k" * 2000, b"v")
    assert info.value.len == 2000
    assert info.value.max == 960


def test_request_too_large(path: Path) -> None:
    with etch.open(path, max_request_bytes=1024) as db:
        with pytest.raises(etch.RequestTooLargeError) as info:
            db.put("k", b"x" * 2048)
        assert info.value.max == 1024


def test_too_many_ops(path: Path) -> None:
    with etch.open(path, max_txn_ops=2) as db:
        t = db.transactions
        with pytest.raises(etch.TooManyOpsError) as info:
            db.transaction(compare=[], success=[t.put(f"k{i}", "v") for i in range(3)])
        assert (info.value.count, info.value.max) == (3, 2)


def test_duplicate_key_in_one_branch(db: etch.Store) -> None:
    t = db.transactions
    with pytest.raises(etch.DuplicateKeyError):
        db.transaction(compare=[], success=[t.put("k", "1"), t.put("k", "2")])


# A server's error texts carry no compact or current revision (etcd's protocol).
@pytest.mark.backends('local', 'member')
def test_compacted_and_future_revision(db: etch.Store) -> None:
    first = db.put("k", "1").revision
    db.put("k", "2")
    now = db.put("k", "3").revision
    db.compact(now)
    with pytest.raises(etch.CompactedError) as info:
        db.get("k", revision=first)
    assert info.value.requested == first
    assert info.value.compact_revision == now
    with pytest.raises(etch.FutureRevisionError) as future:
        db.get("k", revision=now + 10)
    assert future.value.current == now
    with pytest.raises(etch.CompactedError):
        db.compact(first)


def test_lease_errors(db: etch.Store) -> None:
    with pytest.raises(etch.LeaseNotFoundError) as info:
        db.revoke_lease(12345)
    assert info.value.id == 12345
    with pytest.raises(etch.LeaseNotFoundError):
        db.put("k", "v", lease=999)
    db.lease(10, lease_id=77)
    with pytest.raises(etch.LeaseExistsError):
        db.lease(10, lease_id=77)
    if db.kind != "remote":
        # etcd (and etch serve, which answers as it does) grants a zero TTL as its minimum.
        with pytest.raises(etch.InvalidOptionError):
            db.lease(0)


def test_locked_by_another_handle(path: Path) -> None:
    with etch.open(path):
        with pytest.raises(etch.LockedError) as info:
            etch.open(path)
        assert info.value.path == str(path)


def test_not_an_etch_file(path: Path) -> None:
    path.write_bytes(b"definitely not an etch file" * 400)
    with pytest.raises(etch.NotEtchFileError):
        etch.open(path)


def test_invalid_options(path: Path) -> None:
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, page_size=1000)
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, durability="sometimes")
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, auto_compaction_mode="revision", auto_compaction_retention=0)
    with pytest.raises(TypeError):
        etch.open(path, no_such_option=1)


def test_quota_exceeded(path: Path) -> None:
    with etch.open(path, quota_bytes=4096) as db:
        with pytest.raises(etch.QuotaExceededError):
            db.put("k", "v")
        assert db.delete("k") is False  # deletes still work past the quota


def test_closed(path: Path) -> None:
    db = etch.open(path)
    db.put("k", "v")
    db.close()
    db.close()  # idempotent
    assert db.closed
    with pytest.raises(etch.ClosedError):
        db.get("k")
    with pytest.raises(etch.ClosedError):
        db.put("k", "v")


def test_ignore_value_errors(db: etch.Store) -> None:
    native = db._native
    with pytest.raises(etch.KeyNotFoundError):
        native.put("absent", b"", ignore_value=True)
    db.put("k", "v")
    with pytest.raises(etch.ValueProvidedError):
        native.put("k", b"x", ignore_value=True)
    lease = db.lease(10)
    with pytest.raises(etch.LeaseProvidedError):
        native.put("k", b"x", lease=lease.id, ignore_lease=True)


def test_out_of_range_durations_are_invalid_options(path: Path) -> None:
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, relaxed_sync_interval=1e30)
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, checkpoint_interval=-1)
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, auto_compaction_mode="periodic", auto_compaction_retention=float("inf"))


MAGIC = b"etch\x00db\x1a"


def test_truncated_file_is_corrupt(path: Path) -> None:
    path.write_bytes(MAGIC + b"\x01\x00\x00\x00")
    with pytest.raises(etch.CorruptError):
        etch.open(path)


def test_newer_format_is_refused(path: Path) -> None:
    with etch.open(path) as db:
        db.put("k", "v")
    data = bytearray(path.read_bytes())
    # Meta slot 0: format version (u32 LE) at offset 8, CRC-32 of bytes 0..252 at 252.
    data[8:12] = (99).to_bytes(4, "little")
    data[252:256] = zlib.crc32(bytes(data[:252])).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(etch.NewerFormatError) as info:
        etch.open(path)
    assert info.value.path == str(path)


# A cluster member has no snapshot of its own file (UnsupportedError).
@pytest.mark.backends('local', 'remote', 'etcd')
def test_os_errors_are_storage_errors(db: etch.Store, tmp_path: Path) -> None:
    with pytest.raises(etch.StorageError) as info:
        db.snapshot(tmp_path / "no-such-dir" / "snap.etch")
    assert info.value.errno == errno.ENOENT


def test_open_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(etch.StorageError) as info:
        etch.open(tmp_path)
    assert info.value.errno == errno.EISDIR
    assert str(info.value).startswith(f"{tmp_path}: opening the database file")
    missing = tmp_path / "no-such-dir" / "db.etch"
    with pytest.raises(etch.StorageError) as info:
        etch.open(missing)
    assert info.value.errno == errno.ENOENT
    assert str(missing) in str(info.value)
