"""A small typed program against etch's stubs; CI runs `mypy --strict` on it, then runs it.

    python examples/typed_example.py [path]
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional

import etch


def register(db: etch.Store, name: str, address: str) -> etch.Lease:
    """Registers a service instance under a lease, as service discovery does."""
    lease = db.lease(30)
    db.put(f"svc/{name}", address, lease=lease)
    return lease


def addresses(db: etch.Store) -> List[str]:
    """Every registered address."""
    return [value.decode() for value, _meta in db.get_prefix("svc/")]


def claim_leader(db: etch.Store, me: str) -> bool:
    """Becomes leader if nobody is (a compare-and-swap transaction)."""
    t = db.transactions
    won, _responses = db.transaction(
        compare=[t.version("leader") == 0],
        success=[t.put("leader", me)],
        failure=[t.get("leader")],
    )
    return won


def leader_via_transaction(db: etch.Store) -> Optional[str]:
    """The leader, read by a transaction's get (its response is a list of key-values)."""
    t = db.transactions
    _ok, responses = db.transaction(compare=[], success=[t.get("leader")])
    got = responses[0]
    if isinstance(got, list) and got:
        value, _meta = got[0]
        return value.decode()
    return None


def transfer(tx: etch.WriteTxn, src: str, dst: str, amount: int) -> int:
    """Moves `amount` from one balance to another; returns the new source balance."""
    a, _ = tx.get(src)
    b, _ = tx.get(dst)
    left = int(a or b"0") - amount
    tx.put(src, str(left))
    tx.put(dst, str(int(b or b"0") + amount))
    return left


def main(path: Path) -> None:
    with etch.open(path, durability="immediate", max_txn_ops=256) as db:
        lease = register(db, "api-1", "10.0.0.7:8080")
        register(db, "api-2", "10.0.0.8:8080")
        print("services:", addresses(db))
        print("leader claimed:", claim_leader(db, "api-1"), claim_leader(db, "api-2"))

        events, cancel = db.watch_prefix("cfg/")
        seen: List[etch.Event] = []
        watcher = threading.Thread(target=lambda: seen.extend([next(events), next(events)]))
        watcher.start()
        db.put("cfg/mode", "fast")
        db.delete("cfg/mode")
        watcher.join()
        cancel()
        print("events:", [(type(e).__name__, e.key, e.mod_revision) for e in seen])

        db.put("acct/alice", "100")
        left: int = db.write(transfer, "acct/alice", "acct/bob", 30)
        print("alice has", left)
        left, at = db.write_with_revision(transfer, "acct/alice", "acct/bob", 30)
        print("alice has", left, "as of revision", at)
        print("leader via a transaction:", leader_via_transaction(db))

        with db.lock("report", ttl=10) as lock:
            token: Optional[int] = lock.revision
            print("holding the lock, fencing token", token)

        value, meta = db.get("leader")
        if value is not None and meta is not None:
            print("leader:", value.decode(), "since revision", meta.create_revision)
        try:
            db.get("leader", revision=db.revision + 100)
        except etch.FutureRevisionError as err:
            print("future revision refused:", err.current)
        lease.revoke()
        status: etch.Status = db.status()
        print("revision", status.revision, "keys", status.key_count, "check", db.check().keys)


def cluster_settings(member: int, peers: Dict[int, str]) -> etch.ClusterConfig:
    """The settings of one member of a new cluster (member 1 starts it)."""
    return {"id": member, "peers": peers, "initialize": member == 1, "election_timeout": 0.5}


def on_any_backend(endpoint: Optional[str], path: Path) -> etch.Store:
    """The same Store from a server (`etch serve` or etcd) or from a local file."""
    if endpoint is not None:
        try:
            return etch.connect(endpoint, request_timeout=2.0)
        except etch.InvalidOptionError as err:
            print("bad endpoint:", err)
    return etch.open(path)


if __name__ == "__main__":
    endpoint = os.environ.get("ETCH_ENDPOINT")
    if endpoint is not None:
        with tempfile.TemporaryDirectory() as tmp, on_any_backend(endpoint, Path(tmp)) as remote:
            print(remote.kind, cluster_settings(1, {1: "127.0.0.1:2380"})["peers"])
            try:
                print("remote revision", remote.revision)
            except etch.UnavailableError as err:
                print("unreachable:", err.maybe_applied)
    elif len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "example.etch")
