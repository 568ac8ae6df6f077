"""store.transaction with the compare builder, as python-etcd3."""

from __future__ import annotations

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_success_branch_runs_when_all_compares_hold(db: etch.Store) -> None:
    db.put("k", "v")
    t = db.transactions
    ok, responses = db.transaction(
        compare=[t.value("k") == "v", t.version("k") > 0, t.create("k") != 0],
        success=[t.put("k", "new"), t.get("k"), t.delete("other")],
        failure=[t.put("k", "failed")],
    )
    assert ok is True
    put, got, deleted = responses
    assert isinstance(put, etch.PutResponse)
    assert [v for v, _ in got] == [b"new"]  # reads see earlier writes of the transaction
    assert isinstance(deleted, etch.DeleteResponse) and deleted.deleted == 0
    assert db.get("k")[0] == b"new"


def test_failure_branch_runs_otherwise(db: etch.Store) -> None:
    db.put("k", "v")
    t = db.transactions
    ok, responses = db.transaction(
        compare=[t.value("k") == "other"],
        success=[t.put("k", "success")],
        failure=[t.get("k")],
    )
    assert ok is False
    assert [v for v, _ in responses[0]] == [b"v"]
    assert db.get("k")[0] == b"v"


def test_every_compare_target_and_operator(db: etch.Store) -> None:
    lease = db.lease(30)
    rev = db.put("k", "b", lease=lease).revision
    t = db.transactions
    holds = [
        t.value("k") == "b", t.value("k") != "a", t.value("k") > "a", t.value("k") < "c",
        t.version("k") == 1, t.create("k") == rev, t.mod("k") == rev, t.mod("k") < rev + 1,
        t.lease("k") == lease.id, t.lease("k") != 0,
    ]
    for c in holds:
        assert db.transaction(compare=[c])[0] is True, c
    fails = [t.value("k") == "a", t.version("k") > 1, t.mod("k") > rev, t.lease("k") == 0,
             t.value("absent") == ""]
    for c in fails:
        assert db.transaction(compare=[c])[0] is False, c


def test_compare_over_a_range(db: etch.Store) -> None:
    db.put("r/a", "1")
    db.put("r/b", "1")
    t = db.transactions
    assert db.transaction(compare=[t.value("r/", "r0") == "1"])[0] is True
    db.put("r/c", "2")
    assert db.transaction(compare=[t.value("r/", "r0") == "1"])[0] is False


def test_put_with_lease_and_prev_kv_in_transaction(db: etch.Store) -> None:
    db.put("k", "old")
    lease = db.lease(30)
    t = db.transactions
    ok, (put,) = db.transaction(compare=[], success=[t.put("k", "new", lease=lease, prev_kv=True)])
    assert ok
    assert put.prev_kv is not None and put.prev_kv[0] == b"old"
    assert db.get("k")[1].lease_id == lease.id


def test_range_get_and_delete_ops(db: etch.Store) -> None:
    for k in ("a/1", "a/2", "b/1"):
        db.put(k, k)
    t = db.transactions
    ok, (got, deleted) = db.transaction(
        compare=[], success=[t.get("a/", "a0"), t.delete("a/", "a0", prev_kv=True)]
    )
    assert [m.key for _, m in got] == [b"a/1", b"a/2"]
    assert deleted.deleted == 2 and len(deleted.prev_kvs) == 2
    assert [m.key for _, m in db.get_all()] == [b"b/1"]


def test_nested_transaction(db: etch.Store) -> None:
    db.put("flag", "on")
    t = db.transactions
    ok, (nested,) = db.transaction(
        compare=[],
        success=[t.txn(compare=[t.value("flag") == "on"], success=[t.put("x", "1")],
                       failure=[t.put("x", "0")])],
    )
    assert ok is True
    assert nested[0] is True
    assert isinstance(nested[1][0], etch.PutResponse)
    assert db.get("x")[0] == b"1"


def test_all_writes_of_a_transaction_share_one_revision(db: etch.Store) -> None:
    t = db.transactions
    db.transaction(compare=[], success=[t.put("a", "1"), t.put("b", "2")])
    assert db.get("a")[1].mod_revision == db.get("b")[1].mod_revision


def test_compare_is_unhashable_builder_target(db: etch.Store) -> None:
    target = db.transactions.value("k")
    assert isinstance(target == "v", etch.Compare)
    assert "value" in repr(target == "v")
