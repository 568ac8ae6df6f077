"""Optimistic read-write transactions: store.write(fn), @store.transactional, with store.write()."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def _incr(tx: etch.WriteTxn, key: str, by: int = 1) -> int:
    value, _ = tx.get(key)
    new = int(value or b"0") + by
    tx.put(key, str(new))
    return new


def test_write_commits_and_returns_result(db: etch.Store) -> None:
    assert db.write(_incr, "n") == 1
    assert db.write(_incr, "n", by=5) == 6
    assert db.get("n")[0] == b"6"


def test_conflict_reruns_the_function_on_a_fresh_snapshot(db: etch.Store) -> None:
    db.put("n", "10")
    calls: List[int] = []

    def body(tx: etch.WriteTxn) -> None:
        value, _ = tx.get("n")
        calls.append(int(value or b"0"))
        if len(calls) == 1:
            db.put("n", "20")  # a concurrent writer gets in between read and commit
        tx.put("n", str(int(value or b"0") + 1))

    db.write(body)
    assert calls == [10, 20]
    assert db.get("n")[0] == b"21"


def test_gives_up_with_conflict_error(path: Path) -> None:
    with etch.open(path, write_attempts=3) as db:
        attempts: List[int] = []

        def always_conflicting(tx: etch.WriteTxn) -> None:
            tx.get("n")
            attempts.append(1)
            db.put("n", str(len(attempts)))
            tx.put("n", "mine")

        with pytest.raises(etch.ConflictError) as info:
            db.write(always_conflicting)
        assert info.value.attempts == 3
        assert len(attempts) == 3
        assert db.get("n")[0] == b"3"


def test_exception_aborts_without_writing(db: etch.Store) -> None:
    def fails(tx: etch.WriteTxn) -> None:
        tx.put("k", "v")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.write(fails)
    assert db.get("k") == (None, None)


def test_reads_see_own_writes_and_deletes(db: etch.Store) -> None:
    db.put("a", "1")

    def body(tx: etch.WriteTxn) -> None:
        tx.put("b", "2")
        assert tx.get("b")[0] == b"2"
        tx.delete("a")
        assert tx.get("a") == (None, None)

    db.write(body)
    assert db.get("a") == (None, None)
    assert db.get("b")[0] == b"2"


def test_range_read_conflicts_on_insert_into_the_range(db: etch.Store) -> None:
    db.put("q/1", "x")
    seen: List[int] = []

    def count_into_total(tx: etch.WriteTxn) -> None:
        n = len(list(tx.get_prefix("q/")))
        seen.append(n)
        if len(seen) == 1:
            db.put("q/2", "y")  # a new key inside the scanned range
        tx.put("total", str(n))

    db.write(count_into_total)
    assert seen == [1, 2]
    assert db.get("total")[0] == b"2"


def test_more_reads_than_max_txn_ops(path: Path) -> None:
    with etch.open(path, max_txn_ops=4) as db:
        for i in range(10):
            db.put(f"k{i}", str(i))

        def total(tx: etch.WriteTxn) -> int:
            s = sum(int(tx.get(f"k{i}")[0] or b"0") for i in range(10))
            tx.put("sum", str(s))
            return s

        assert db.write(total) == 45
        assert db.get("sum")[0] == b"45"


def test_transactional_decorator(db: etch.Store) -> None:
    @db.transactional
    def transfer(tx: etch.WriteTxn, src: str, dst: str, amount: int) -> None:
        a = int(tx.get(src)[0] or b"0")
        b = int(tx.get(dst)[0] or b"0")
        tx.put(src, str(a - amount))
        tx.put(dst, str(b + amount))

    db.put("alice", "100")
    transfer("alice", "bob", 30)
    assert (db.get("alice")[0], db.get("bob")[0]) == (b"70", b"30")
    assert transfer.__name__ == "transfer"


def test_with_block_commits_once_and_raises_on_conflict(db: etch.Store) -> None:
    with db.write() as tx:
        assert tx.revision == db.revision
        tx.put("k", "1")
    assert db.get("k")[0] == b"1"
    with pytest.raises(etch.ConflictError):
        with db.write() as tx:
            tx.get("k")
            db.put("k", "other")
            tx.put("k", "2")
    assert db.get("k")[0] == b"other"


def test_with_block_exception_aborts(db: etch.Store) -> None:
    with pytest.raises(KeyError):
        with db.write() as tx:
            tx.put("k", "v")
            raise KeyError("x")
    assert db.get("k") == (None, None)


def test_ended_attempt_refuses_use(db: etch.Store) -> None:
    with db.write() as tx:
        tx.put("k", "v")
    with pytest.raises(etch.ClosedError):
        tx.put("k", "again")
