"""Threads: one Store shared by concurrent writers, watchers and lock contenders; the GIL is
released while a call blocks."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import List

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS

WRITERS = 8
PER_WRITER = 50


def test_concurrent_writers_lose_nothing(db: etch.Store) -> None:
    start = db.revision

    def writer(n: int) -> None:
        for i in range(PER_WRITER):
            db.put(f"w{n}/{i}", str(i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.count_prefix("w") == WRITERS * PER_WRITER
    assert db.revision == start + WRITERS * PER_WRITER


def test_concurrent_optimistic_increments_are_exact(path: Path) -> None:
    # Exactness is the point, not the retry budget: four threads contending on one key can
    # exceed the default 16 attempts on a loaded machine (seen once on CPython 3.9).
    db = etch.open(path, write_attempts=1000)

    def incr(tx: etch.WriteTxn) -> None:
        tx.put("ctr", str(int(tx.get("ctr")[0] or b"0") + 1))

    def worker() -> None:
        for _ in range(25):
            db.write(incr)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.get("ctr")[0] == b"100"
    db.close()


def test_watcher_thread_receives_events_while_main_writes(db: etch.Store) -> None:
    events, cancel = db.watch_prefix("live/")
    received: List[bytes] = []

    def consume() -> None:
        for ev in events:
            received.append(ev.value)
            if len(received) == 100:
                return

    t = threading.Thread(target=consume)
    t.start()
    for i in range(100):
        db.put(f"live/{i % 7}", str(i))
    t.join(10)
    cancel()
    assert not t.is_alive()
    assert received == [str(i).encode() for i in range(100)]


def test_lock_gives_mutual_exclusion_across_threads(db: etch.Store) -> None:
    inside = 0
    overlaps = 0
    total = 0
    guard = threading.Lock()

    def contender() -> None:
        nonlocal inside, overlaps, total
        for _ in range(5):
            with db.lock("shared", ttl=30):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.005)
                with guard:
                    inside -= 1
                    total += 1

    threads = [threading.Thread(target=contender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert total == 20
    assert overlaps == 0


def _progress_while(blocked: threading.Thread, seconds: float) -> int:
    """Counts loop turns of this thread while `blocked` runs for `seconds`."""
    turns = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        turns += 1
    return turns


def test_gil_released_while_waiting_for_a_lock(db: etch.Store) -> None:
    holder = db.lock("gil")
    assert holder.acquire()
    waiter = threading.Thread(target=lambda: db.lock("gil").acquire(timeout=1.5))
    waiter.start()
    time.sleep(0.05)
    turns = _progress_while(waiter, 0.3)
    # Had the waiting thread kept the GIL, this thread would only get to run after it gave up.
    assert waiter.is_alive()
    assert turns > 1000
    waiter.join()
    holder.release()


def test_gil_released_while_waiting_for_watch_events(db: etch.Store) -> None:
    events, cancel = db.watch("quiet")
    waiter = threading.Thread(target=lambda: list(events))
    waiter.start()
    turns = _progress_while(waiter, 0.3)
    assert waiter.is_alive() and turns > 1000
    db.put("other", "x")  # writes proceed while a watcher waits
    cancel()
    waiter.join(5)
    assert not waiter.is_alive()
