"""watch / watch_prefix / watch_once / add_watch_callback / cancel_watch."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, List

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_watch_key_sees_put_and_delete(db: etch.Store) -> None:
    events, cancel = db.watch("k")
    rev = db.put("k", "v").revision
    db.put("other", "x")
    db.delete("k")
    put = next(events)
    assert isinstance(put, etch.PutEvent)
    assert (put.key, put.value, put.mod_revision, put.version) == (b"k", b"v", rev, 1)
    deleted = next(events)
    assert isinstance(deleted, etch.DeleteEvent)
    assert deleted.key == b"k" and deleted.mod_revision == rev + 2
    cancel()
    assert list(events) == []


def test_watch_prefix_with_prev_kv_and_filters(db: etch.Store) -> None:
    db.put("cfg/a", "old")
    events, cancel = db.watch_prefix("cfg/", prev_kv=True, no_delete=True)
    db.delete("cfg/a")
    db.put("cfg/a", "new")
    db.put("cfg/b", "x")
    db.put("other", "y")
    first, second = next(events), next(events)
    cancel()
    assert (first.key, first.value, first.prev_value) == (b"cfg/a", b"new", None)
    assert (second.key, second.value) == (b"cfg/b", b"x")


def test_watch_replays_history_from_start_revision(db: etch.Store) -> None:
    first = db.put("h", "1").revision
    db.put("h", "2")
    events, cancel = db.watch("h", start_revision=first)
    assert [next(events).value, next(events).value] == [b"1", b"2"]
    cancel()


def test_watch_past_compaction_raises_compacted(db: etch.Store) -> None:
    first = db.put("h", "1").revision
    now = db.put("h", "2").revision
    db.compact(now)
    events, _cancel = db.watch("h", start_revision=first)
    with pytest.raises(etch.CompactedError) as info:
        next(events)
    assert info.value.compact_revision == now


def test_cancel_from_another_thread_ends_blocked_iterator(db: etch.Store) -> None:
    events, cancel = db.watch("never")
    timer = threading.Timer(0.2, cancel)
    timer.start()
    started = time.monotonic()
    assert list(events) == []
    assert time.monotonic() - started < 5
    timer.join()


def test_close_ends_watch_iterators(path: Any) -> None:
    db = etch.open(path)
    events, _ = db.watch("k")
    threading.Timer(0.2, db.close).start()
    assert list(events) == []


def test_watch_once(db: etch.Store) -> None:
    writer = threading.Timer(0.1, lambda: db.put("once", "v"))
    writer.start()
    event = db.watch_once("once", timeout=5)
    assert (event.key, event.value) == (b"once", b"v")
    writer.join()  # a server's event can come before the put's reply
    with pytest.raises(etch.WatchTimedOut):
        db.watch_once("once", timeout=0.1)


def test_add_watch_callback_and_cancel_watch(db: etch.Store) -> None:
    got: "queue.Queue[Any]" = queue.Queue()
    watch_id = db.add_watch_callback("cb", got.put)
    db.put("cb", "1")
    resp = got.get(timeout=5)
    assert isinstance(resp, etch.WatchResponse)
    assert [e.value for e in resp.events] == [b"1"]
    assert resp.header_revision == db.revision
    db.cancel_watch(watch_id)
    db.put("cb", "2")
    time.sleep(0.2)
    assert got.empty()
    with pytest.raises(KeyError):
        db.cancel_watch(watch_id)


def test_add_watch_prefix_callback_gets_transaction_events_together(db: etch.Store) -> None:
    got: "queue.Queue[Any]" = queue.Queue()
    db.add_watch_prefix_callback("p/", got.put)
    t = db.transactions
    db.transaction(compare=[], success=[t.put("p/a", "1"), t.put("p/b", "2"), t.put("q", "3")])
    resp = got.get(timeout=5)
    assert [e.key for e in resp.events] == [b"p/a", b"p/b"]


def test_callback_receives_the_exception_on_error(db: etch.Store) -> None:
    first = db.put("e", "1").revision
    now = db.put("e", "2").revision
    db.compact(now)
    got: List[Any] = []
    done = threading.Event()

    def callback(item: Any) -> None:
        got.append(item)
        done.set()

    db.add_watch_callback("e", callback, start_revision=first)
    assert done.wait(5)
    assert isinstance(got[0], etch.CompactedError)


def test_watch_timeout_edge_values(db: etch.Store) -> None:
    with pytest.raises(etch.WatchTimedOut):
        db.watch_once("k", timeout=-1)
    with pytest.raises(ValueError):
        db.watch_once("k", timeout=float("nan"))


def test_watch_prefix_once(db: etch.Store) -> None:
    writer = threading.Timer(0.1, lambda: db.put("wp/x", "v"))
    writer.start()
    event = db.watch_prefix_once("wp/", timeout=5)
    assert event.key == b"wp/x"
    writer.join()  # a server's event can come before the put's reply


# A server's progress interval is its own (10 minutes on etcd); the option only turns it on.
@pytest.mark.backends('local', 'member')
def test_progress_notify_reaches_callbacks(db: etch.Store) -> None:
    got: "queue.Queue[Any]" = queue.Queue()
    watch_id = db.add_watch_callback("quiet", got.put, progress_notify=0.05)
    resp = got.get(timeout=5)
    assert isinstance(resp, etch.WatchResponse)
    assert resp.events == [] and resp.header_revision == db.revision
    db.cancel_watch(watch_id)
