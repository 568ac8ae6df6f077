"""The open options of issue 12: a WAL damaged in the middle (left by a writer killed with
SIGKILL, one byte flipped) refuses to open and changes nothing, then opens with ``repair_wal``
and reports it in ``Store.wal_repair``; read-only opens (one, two at once, writes refused, a
writer excluded); ``lock_timeout`` waiting for a writer that closes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

import etch

KILLED_PUTS = 40

# Opens the store, commits KILLED_PUTS acknowledged puts (immediate durability: each is
# durable before the next is written), then kills itself: no close, no checkpoint.
WRITER = """
import os, signal, sys
import etch
db = etch.open(sys.argv[1], wal_capacity=1 << 20, auto_compaction_mode="off")
for i in range(int(sys.argv[2])):
    db.put("k%03d" % i, bytes([97 + i % 26]) * 100)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_writer(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(path), str(KILLED_PUTS)], timeout=120
    )
    assert done.returncode == -signal.SIGKILL


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def damaged_wal(path: Path) -> bytes:
    """Leaves at `path` a killed writer's store whose WAL has one byte flipped in the middle of
    the log, at the first offset from the middle where the plain open refuses it. Returns the
    damaged WAL."""
    killed_writer(path)
    main, wal = path.read_bytes(), bytearray(wal_of(path).read_bytes())
    end = len(wal.rstrip(b"\0"))
    assert end > 4096
    start = 4096 + (end - 4096) // 2
    for at in range(start, min(end, start + 64)):
        path.write_bytes(main)
        wal[at] ^= 0x80
        wal_of(path).write_bytes(wal)
        try:
            etch.open(path).close()
        except etch.CorruptError:
            return bytes(wal)
        wal[at] ^= 0x80
    raise AssertionError("no flipped byte made the open refuse")


def test_damaged_wal_refuses_then_repairs(tmp_path: Path) -> None:
    path = tmp_path / "killed.etch"
    wal = damaged_wal(path)
    copy = path.with_name(path.name + "-wal.damaged")

    with pytest.raises(etch.CorruptError) as caught:
        etch.open(path)
    err = caught.value
    assert err.path == str(wal_of(path))
    assert err.offset is not None and 4096 <= err.offset < len(wal)
    assert err.records_after is not None and err.records_after > 0
    assert err.last_good_seq is not None
    assert "WAL is damaged" in str(err)
    # Nothing changed: the same WAL, no copy; read-only refuses it too.
    assert wal_of(path).read_bytes() == wal
    assert not copy.exists()
    with pytest.raises(etch.CorruptError):
        etch.open(path, read_only=True)
    with pytest.raises(etch.InvalidOptionError):
        etch.open(path, read_only=True, repair_wal=True)

    with etch.open(path, repair_wal=True) as db:
        repair = db.wal_repair
        assert repair is not None
        assert (repair.offset, repair.last_good_seq, repair.records_after) == (
            err.offset,
            err.last_good_seq,
            err.records_after,
        )
        assert repair.copy == str(copy)
        assert copy.read_bytes() == wal
        # One revision per put from 1: each put is recovered, the damaged record, or dropped.
        assert db.revision == repair.last_good_seq + 1
        assert (db.revision - 1) + 1 + repair.records_after == KILLED_PUTS
        assert db.get("k000")[0] == b"a" * 100
        assert db.get("k%03d" % (KILLED_PUTS - 1)) == (None, None)
        db.put("after", "repair")
        assert "WalRepair(offset=" in repr(repair)

    with etch.open(path) as db:
        assert db.wal_repair is None
        assert db.get("after")[0] == b"repair"


def test_other_corruption_has_no_wal_figures(tmp_path: Path) -> None:
    path = tmp_path / "truncated.etch"
    with etch.open(path) as db:
        db.put("k", "v")
    path.write_bytes(path.read_bytes()[:8])  # the magic only
    with pytest.raises(etch.CorruptError) as caught:
        etch.open(path)
    err = caught.value
    assert (err.path, err.offset, err.last_good_seq, err.records_after) == (None,) * 4


def test_read_only_opens(tmp_path: Path) -> None:
    path = tmp_path / "ro.etch"
    with etch.open(path) as db:
        db.put("k", "v")
        assert not db.read_only
    a = etch.open(path, read_only=True)
    b = etch.open(path, read_only=True)  # two read-only stores at once
    try:
        assert a.read_only and b.read_only
        assert a.get("k")[0] == b"v" and b.get("k")[0] == b"v"
        assert a.wal_repair is None
        with pytest.raises(etch.ReadOnlyError) as caught:
            a.put("k", "w")
        assert caught.value.path == str(path)
        with pytest.raises(etch.ReadOnlyError):
            b.delete("k")
        with pytest.raises(etch.ReadOnlyError):
            a.compact(1)
        # A writer is excluded while they hold it.
        with pytest.raises(etch.LockedError):
            etch.open(path)
    finally:
        a.close()
        b.close()
    # A read-only open never creates a file.
    with pytest.raises(etch.Error):
        etch.open(tmp_path / "missing.etch", read_only=True)
    assert not (tmp_path / "missing.etch").exists()


def test_read_only_file_mode_0444(tmp_path: Path) -> None:
    path = tmp_path / "mode.etch"
    with etch.open(path) as db:
        db.put("k", "v")
    path.chmod(0o444)
    try:
        with etch.open(path, read_only=True) as db:
            assert db.get("k")[0] == b"v"
    finally:
        path.chmod(0o644)


def test_lock_timeout_waits_for_a_writer_that_closes(tmp_path: Path) -> None:
    path = tmp_path / "lock.etch"
    holder = etch.open(path)
    with pytest.raises(etch.LockedError):
        etch.open(path)  # default 0: at once
    failure: Optional[BaseException] = None

    def close_later() -> None:
        nonlocal failure
        try:
            time.sleep(0.3)
            holder.close()
        except BaseException as e:  # reported by the main thread
            failure = e

    closer = threading.Thread(target=close_later)
    start = time.monotonic()
    closer.start()
    try:
        with etch.open(path, lock_timeout=30) as db:
            waited = time.monotonic() - start
            assert 0.2 <= waited < 30
            start = time.monotonic()
            with pytest.raises(etch.LockedError):
                etch.open(path, lock_timeout=0.1)
            assert time.monotonic() - start >= 0.09
    finally:
        closer.join(timeout=60)
    assert failure is None


def test_bad_lock_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(etch.InvalidOptionError):
        etch.open(tmp_path / "x.etch", lock_timeout=-1)
