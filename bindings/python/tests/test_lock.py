"""lock(name, ttl): acquire / release / timeout / context manager / fencing."""

from __future__ import annotations

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_acquire_release(db: etch.Store) -> None:
    lock = db.lock("job", ttl=10)
    assert not lock.is_acquired() and lock.key is None
    assert lock.acquire() is True
    assert lock.is_acquired()
    assert lock.key is not None and lock.key.startswith(b"/locks/job/")
    assert db.get(lock.key)[0] == b""
    assert lock.release() is True
    assert lock.release() is False
    assert not lock.is_acquired()
    assert db.count_prefix("/locks/job/") == 0
    assert db.leases() == []  # the holding lease is revoked on release


def test_second_contender_times_out_then_gets_it(db: etch.Store) -> None:
    first, second = db.lock("x"), db.lock("x")
    assert first.acquire()
    assert second.acquire(timeout=0.2) is False
    assert db.count_prefix("/locks/x/") == 1  # the loser left the queue
    first.release()
    assert second.acquire(timeout=5) is True
    second.release()


def test_fencing_token_grows(db: etch.Store) -> None:
    tokens = []
    for _ in range(3):
        with db.lock("f") as lock:
            assert lock.revision is not None
            tokens.append(lock.revision)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_refresh_keeps_the_lease(db: etch.Store) -> None:
    with db.lock("r", ttl=7) as lock:
        assert lock.refresh() == 7


def test_different_names_do_not_block(db: etch.Store) -> None:
    with db.lock("a"):
        other = db.lock("ab")
        assert other.acquire(timeout=0.5)
        other.release()


def test_lock_name_must_be_str(db: etch.Store) -> None:
    with pytest.raises(TypeError):
        db.lock(b"bytes")  # type: ignore[arg-type]


def test_timeout_edge_values(db: etch.Store) -> None:
    lock = db.lock("t")
    with pytest.raises(ValueError):
        lock.acquire(timeout=float("nan"))
    assert db.leases() == []  # the lease granted for the failed attempt is gone
    assert lock.acquire(timeout=1e30) is True  # longer than a century: no limit
    other = db.lock("t")
    assert other.acquire(timeout=-1) is False  # negative: do not wait
    lock.release()
