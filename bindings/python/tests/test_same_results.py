"""Model-based check of "one API": a random sequence of reads and writes gives the same results
on every backend as on a local file (the model). Revisions are compared relative to each
store's revision at the start, since a fresh server or cluster may begin elsewhere."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import etch

from conftest import ALL_BACKENDS

BACKENDS = ALL_BACKENDS

KEYS = [f"m/{c}" for c in "abcdef"] + ["n/x", "n/y"]


def step(db: etch.Store, base: int, op: Tuple[Any, ...]) -> Any:
    """Runs one operation and returns what it observed, with revisions made relative."""
    kind = op[0]
    t = db.transactions

    def rel(rev: int) -> int:
        return rev - base if rev else 0

    def kv(value: Any, meta: Any) -> Any:
        if value is None:
            return None
        return (meta.key, value, meta.version, rel(meta.create_revision), rel(meta.mod_revision))

    if kind == "put":
        return ("put", rel(db.put(op[1], op[2]).revision))
    if kind == "get":
        return ("get", kv(*db.get(op[1])))
    if kind == "delete":
        return ("delete", db.delete(op[1]))
    if kind == "delete_prefix":
        return ("delete_prefix", db.delete_prefix(op[1]).deleted)
    if kind == "prefix":
        return ("prefix", [kv(v, m) for v, m in db.get_prefix(op[1])])
    if kind == "cas":
        ok, _ = db.transaction(
            compare=[t.value(op[1]) == op[2]], success=[t.put(op[1], op[3])], failure=[]
        )
        return ("cas", ok)
    if kind == "create":
        return ("create", db.put_if_not_exists(op[1], op[2]))
    if kind == "txn_version":
        ok, responses = db.transaction(
            compare=[t.version(op[1]) > 1],
            success=[t.get(op[1]), t.delete(op[2])],
            failure=[t.put(op[2], "f"), t.get(op[2])],
        )
        shaped: List[Any] = []
        for r in responses:
            if isinstance(r, list):
                shaped.append([kv(v, m) for v, m in r])
            elif isinstance(r, etch.PutResponse):
                shaped.append(("put", rel(r.revision)))
            else:
                shaped.append(("deleted", r.deleted))
        return ("txn", ok, shaped)
    if kind == "write":
        def move(tx: etch.WriteTxn, src: str, dst: str) -> None:
            value, _ = tx.get(src)
            if value is not None:
                tx.delete(src)
                tx.put(dst, value)

        _, revision = db.write_with_revision(move, op[1], op[2])
        return ("write", rel(revision))
    raise ValueError(kind)


def ops(seed: int, n: int) -> List[Tuple[Any, ...]]:
    rng = random.Random(seed)
    out: List[Tuple[Any, ...]] = []
    for _ in range(n):
        k, k2 = rng.choice(KEYS), rng.choice(KEYS)
        v = rng.choice(["1", "2", "3"])
        out.append(rng.choice([
            ("put", k, v), ("put", k, v), ("get", k), ("delete", k), ("prefix", "m/"),
            ("prefix", ""), ("cas", k, v, rng.choice(["1", "2", "3"])), ("create", k, v),
            ("txn_version", k, k2), ("delete_prefix", "n/"), ("write", k, k2),
        ]))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_match_a_local_file(
    db: etch.Store, tmp_path: Path, seed: int
) -> None:
    with etch.open(tmp_path / "model.etch") as model:
        base, model_base = db.revision, model.revision
        for i, op in enumerate(ops(seed, 120)):
            got, want = step(db, base, op), step(model, model_base, op)
            assert got == want, f"operation {i} {op}: {got} != {want}"
