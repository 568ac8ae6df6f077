"""Latency and throughput of etch's Python remote client (``etch.connect``) against
``etch serve`` and etcd 3.4, in one run, with 1 and 64 concurrent callers.

    python bindings/python/bench/remote_client.py [--ops N] [--etch PATH] [--etcd PATH]

Each server runs on loopback in a fresh temporary directory, with its default durability
(a write is acknowledged once it is on disk). Per target and caller count the script puts
and then gets ``--ops`` keys (16-byte keys, 100-byte values), spread over the callers
(threads sharing one ``Store``), and prints a Markdown table: the median and 99th percentile
latency of one call as the caller saw it, and calls per second over the whole phase. A local
file store (``etch.open``) is measured too, as the no-network reference. The servers are
stopped by pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import etch

VALUE = b"v" * 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: List[str], url: str, what: str) -> Tuple[subprocess.Popen[bytes], etch.Store]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = etch.connect(url, request_timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            store.status()
            return proc, store
        except etch.UnavailableError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.05)


def run(callers: int, ops: int, call: Callable[[int], object]) -> Tuple[List[float], float]:
    """Runs ``call(i)`` for i in range(ops) spread over ``callers`` threads; returns each
    call's latency and the wall time of the whole phase."""
    latencies: List[List[float]] = [[] for _ in range(callers)]

    def worker(w: int) -> None:
        mine = latencies[w]
        for i in range(w, ops, callers):
            t = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(callers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for part in latencies for x in part], time.perf_counter() - started


def measure(store: etch.Store, callers: int, ops: int, tag: str) -> Dict[str, Tuple[float, float, float]]:
    out: Dict[str, Tuple[float, float, float]] = {}
    keys = [f"bench/{tag}/{callers}/{i:08d}".encode() for i in range(ops)]
    for op, call in (
        ("put", lambda i: store.put(keys[i], VALUE)),
        ("get", lambda i: store.get(keys[i])),
    ):
        lat, wall = run(callers, ops, call)
        lat.sort()
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        out[op] = (p50 * 1e6, p99 * 1e6, len(lat) / wall)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=2000, help="calls per phase")
    ap.add_argument("--etch", default=os.environ.get("ETCH_BIN") or shutil.which("etch"),
                    help="the etch binary (default: $ETCH_BIN, then etch on the PATH)")
    ap.add_argument("--etcd", default=os.environ.get("ETCD_BIN") or shutil.which("etcd")
                    or "/usr/bin/etcd", help="the etcd binary")
    a = ap.parse_args()
    if not a.etch or not os.path.exists(a.etch):
        print("the etch binary was not found (--etch or $ETCH_BIN)", file=sys.stderr)
        return 2
    rows: List[Tuple[str, int, str, Tuple[float, float, float]]] = []
    procs: List[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="etch-bench-") as tmp:
        try:
            targets: List[Tuple[str, etch.Store]] = []
            local = etch.open(os.path.join(tmp, "local.etch"))
            targets.append(("local file (etch.open)", local))
            url = f"http://127.0.0.1:{free_port()}"
            proc, store = start([a.etch, "serve", "--db", os.path.join(tmp, "served.etch"),
                                 "--listen-client-urls", url, "--advertise-client-urls", url],
                                url, "etch serve")
            procs.append(proc)
            targets.append(("etch serve", store))
            if os.path.exists(a.etcd):
                client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
                proc, store = start([a.etcd, "--data-dir", os.path.join(tmp, "etcd"),
                                     "--listen-client-urls", client, "--advertise-client-urls",
                                     client, "--listen-peer-urls", peer,
                                     "--initial-advertise-peer-urls", peer, "--initial-cluster",
                                     f"default={peer}"], client, "etcd")
                procs.append(proc)
                targets.append(("etcd 3.4", store))
            for callers in (1, 64):
                for name, store in targets:
                    for op, figures in measure(store, callers, a.ops, name.split()[0]).items():
                        rows.append((name, callers, op, figures))
            for _, store in targets:
                store.close()
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print(f"{a.ops} calls per row; latency in µs as the calling thread saw it\n")
    print("| target | callers | op | p50 µs | p99 µs | calls/s |")
    print("|---|---:|---|---:|---:|---:|")
    for name, callers, op, (p50, p99, rate) in rows:
        print(f"| {name} | {callers} | {op} | {p50:.0f} | {p99:.0f} | {rate:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
