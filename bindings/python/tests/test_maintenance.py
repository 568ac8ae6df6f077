"""compact / snapshot / restore / defrag / status / check / hash_kv / sync / reopen."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import etch


def test_context_manager_closes_and_data_survives_reopen(path: Path) -> None:
    with etch.open(path) as db:
        db.put("k", "v")
        rev = db.revision
    assert db.closed
    with etch.open(str(path)) as again:
        assert again.get("k")[0] == b"v"
        assert again.revision == rev
        assert again.path == str(path)


def test_reopen_keeps_history_and_leases(path: Path) -> None:
    with etch.open(path) as db:
        first = db.put("k", "1").revision
        db.put("k", "2")
        lease = db.lease(100)
        db.put("leased", "x", lease=lease)
    with etch.open(path) as db:
        assert db.get("k", revision=first)[0] == b"1"
        assert [l.id for l in db.leases()] == [lease.id]
        assert db.get("leased")[1].lease_id == lease.id


def test_relaxed_durability_and_sync(path: Path) -> None:
    with etch.open(path, durability="relaxed", relaxed_sync_interval=0.05) as db:
        db.put("k", "v")
        db.sync()
        db.checkpoint()
    with etch.open(path) as db:
        assert db.get("k")[0] == b"v"


def test_compact(db: etch.Store) -> None:
    first = db.put("k", "1").revision
    second = db.put("k", "2").revision
    assert db.compact(second) == second
    assert db.status().compact_revision == second
    with pytest.raises(etch.CompactedError):
        db.get("k", revision=first)
    assert db.get("k")[0] == b"2"


def test_status_and_check(db: etch.Store) -> None:
    db.put("a", "1")
    db.put("b", "2")
    st = db.status()
    assert isinstance(st, etch.Status)
    assert st.revision == db.revision and st.key_count == 2
    assert st.db_size > 0 and st.page_size == 4096
    report = db.check()
    assert isinstance(report, etch.CheckReport)
    assert report.keys == 2 and report.tree_pages > 0


def test_snapshot_to_path_and_restore(db: etch.Store, tmp_path: Path) -> None:
    for i in range(50):
        db.put(f"k{i}", str(i))
    revision, size = db.snapshot(tmp_path / "snap.etch")
    assert revision == db.revision and size == (tmp_path / "snap.etch").stat().st_size
    with pytest.raises(etch.Error):
        db.snapshot(tmp_path / "snap.etch")  # the target must not exist
    restored = etch.restore(tmp_path / "snap.etch", tmp_path / "restored.etch")
    with restored:
        assert restored.revision == revision
        assert restored.hash_kv() == db.hash_kv()
        assert restored.get("k7")[0] == b"7"


def test_snapshot_into_file_object(db: etch.Store, tmp_path: Path) -> None:
    db.put("k", "v")
    buf = io.BytesIO()
    revision, size = db.snapshot(buf)
    assert len(buf.getvalue()) == size
    (tmp_path / "from-buffer.etch").write_bytes(buf.getvalue())
    with etch.restore(tmp_path / "from-buffer.etch", tmp_path / "out.etch") as restored:
        assert restored.revision == revision
        assert restored.get("k")[0] == b"v"


def test_defrag_shrinks_after_deletes(db: etch.Store) -> None:
    for i in range(2000):
        db.put(f"key/{i:05}", b"x" * 200)
    db.delete_prefix("key/")
    db.compact(db.revision)
    before, after = db.defrag()
    assert after < before
    assert db.status().db_size == after
    db.check()


def test_hash_kv_tracks_content(db: etch.Store) -> None:
    db.put("k", "v")
    rev = db.revision
    h = db.hash_kv()
    db.put("k", "w")
    assert db.hash_kv() != h
    assert db.hash_kv(rev) == h


def test_auto_compaction_options(path: Path) -> None:
    with etch.open(path, auto_compaction_mode="off") as db:
        db.put("k", "v")
    with etch.open(path, auto_compaction_mode="revision", auto_compaction_retention=10) as db:
        db.put("k", "v")
    with etch.open(path, auto_compaction_mode="periodic", auto_compaction_retention=3600.0) as db:
        db.put("k", "v")
    with etch.open(path, quota_bytes=None, random_access=True, max_txn_ops=256,
                   wal_capacity=2 << 20, checkpoint_interval=5, checkpoint_wal_fraction=0.5,
                   max_key_size=100, page_size=4096, max_request_bytes=1 << 20) as db:
        assert db.get("k")[0] == b"v"


def test_repr(db: etch.Store) -> None:
    assert "etch.Store" in repr(db)
    db.put("k", "v")
    assert "KVMetadata(key=b'k'" in repr(db.get("k")[1])
