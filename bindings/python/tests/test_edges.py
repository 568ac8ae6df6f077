"""Edge cases shared with the engine: empty and over-long keys in reads and watches, status
after a checkpoint, the revision a write committed at, a replay's caught_up signal, and the
types of transaction responses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import etch


def test_empty_key_reads_and_watches_raise_empty_key_error(db: etch.Store) -> None:
    db.put("k", "v")
    with pytest.raises(etch.EmptyKeyError):
        db.get("")
    with pytest.raises(etch.EmptyKeyError):
        db.get(b"", revision=db.revision)
    with pytest.raises(etch.EmptyKeyError):
        db.watch_once("", timeout=0.1)
    with pytest.raises(etch.EmptyKeyError):
        db.watch("")

    def read_empty(tx: etch.WriteTxn) -> None:
        tx.get("")

    with pytest.raises(etch.EmptyKeyError):
        db.write(read_empty)
    # Every key is still reachable the etcd way.
    assert [v for v, _ in db.get_prefix("")] == [b"v"]


def test_a_key_over_max_key_size_is_too_large_for_get(path: Path) -> None:
    with etch.open(path, max_key_size=16) as db:
        with pytest.raises(etch.KeyTooLargeError):
            db.put("k" * 17, "v")
        with pytest.raises(etch.KeyTooLargeError):
            db.get("k" * 17)
        with pytest.raises(etch.KeyTooLargeError):
            db.get("k" * 17, revision=db.revision)
        db.put("k" * 16, "v")
        assert db.get("k" * 16)[0] == b"v"


def test_checkpoint_empties_the_wal_in_status_at_once(path: Path) -> None:
    with etch.open(path, checkpoint_interval=3600.0) as db:
        for i in range(10):
            db.put(f"k{i}", "value")
        assert db.status().wal_size > 0
        db.checkpoint()
        assert db.status().wal_size == 0


def test_write_reports_the_revision_it_committed_at(db: etch.Store) -> None:
    db.put("a", "1")

    def copy(tx: etch.WriteTxn) -> bytes:
        value, _ = tx.get("a")
        assert value is not None
        tx.put("b", value)
        return value

    result, revision = db.write_with_revision(copy)
    assert result == b"1"
    assert revision == db.revision
    assert db.get("b")[1].mod_revision == revision  # type: ignore[union-attr]
    # A read-only function commits nothing: the revision it read at.
    _, read_at = db.write_with_revision(lambda tx: tx.get("a"))
    assert read_at == revision
    with db.write() as tx:
        tx.put("c", "3")
    assert tx.committed_revision == db.revision == revision + 1
    attempt = db.write()
    attempt.put("d", "4")
    committed = attempt.commit()
    assert committed == db.revision and attempt.committed_revision == committed


def test_commit_returns_none_on_conflict(db: etch.Store) -> None:
    db.put("n", "1")
    tx = db.write()
    tx.get("n")
    tx.put("n", "2")
    db.put("n", "other")
    assert tx.commit() is None
    assert tx.committed_revision is None


def test_a_replay_ends_with_one_caught_up_response(db: etch.Store) -> None:
    first = db.revision + 1
    for i in range(3):
        db.put(f"w/{i}", "x")
    responses, cancel = db.watch_responses("w/", "w0", start_revision=first)
    replayed = 0
    for resp in responses:
        replayed += len(resp.events)
        if resp.caught_up:
            break
    assert replayed == 3
    db.put("w/live", "y")
    live = next(responses)
    assert not live.caught_up and [e.key for e in live.events] == [b"w/live"]
    cancel()
    # Nothing in the history matches: the flag still comes, on an empty response.
    responses, cancel = db.watch_responses("none/", "none0", start_revision=1)
    resp = next(responses)
    assert resp.caught_up and resp.events == []
    cancel()


def test_callback_watches_see_caught_up(db: etch.Store) -> None:
    db.put("cb", "1")
    seen: list[etch.WatchResponse] = []
    done = threading.Event()

    def callback(resp: object) -> None:
        assert isinstance(resp, etch.WatchResponse)
        seen.append(resp)
        if resp.caught_up:
            done.set()

    watch_id = db.add_watch_callback("cb", callback, start_revision=1)
    assert done.wait(10)
    db.cancel_watch(watch_id)
    assert sum(len(r.events) for r in seen) == 1


def test_cancel_wakes_a_blocked_iterator_at_once(db: etch.Store) -> None:
    events, cancel = db.watch("quiet")
    ended = threading.Event()

    def consume() -> None:
        for _ in events:
            pass
        ended.set()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    cancel()
    assert ended.wait(5)
    t.join()


def test_transaction_responses_have_their_documented_types(db: etch.Store) -> None:
    tx = db.transactions
    db.put("x", "1")
    ok, responses = db.transaction(
        compare=[tx.version("x") > 0],
        success=[
            tx.put("y", "2"),
            tx.get("x"),
            tx.delete("x"),
            tx.txn([], [tx.get("y")]),
        ],
    )
    assert ok
    put, got, deleted, nested = responses
    assert isinstance(put, etch.PutResponse)
    assert isinstance(got, list) and got[0][0] == b"1"
    assert isinstance(deleted, etch.DeleteResponse) and deleted.deleted == 1
    assert isinstance(nested, tuple)
    nested_ok, nested_responses = nested
    assert nested_ok is True
    assert isinstance(nested_responses[0], list) and nested_responses[0][0][0] == b"2"
