"""Shared fixtures: a fresh store in a temporary directory, on one of several backends.

A test module that sets ``BACKENDS = ALL_BACKENDS`` runs each of its tests that take ``db``
once per backend:

- ``local``: ``etch.open(path)``, a file;
- ``member``: a follower of a fresh 3-member cluster running in this process
  (``etch.open(path, cluster=...)``, QUIC on loopback);
- ``remote``: ``etch.connect`` to a fresh ``etch serve`` process (the ``etch`` binary from
  ``$ETCH_BIN``, or ``release/etch`` in ``$CARGO_TARGET_DIR`` or the repository's ``target``),
  stopped by pid after the test;
- ``etcd``: ``etch.connect`` to a fresh etcd (``$ETCD_BIN``, ``/usr/bin/etcd`` or ``etcd`` on
  the PATH), stopped by pid after the test.

A test about something one backend does not have is marked
``@pytest.mark.backends("local", ...)`` with the reason beside it. ``remote`` and ``etcd`` are skipped when their
binary is missing, unless ``ETCH_REQUIRE_TOOLS=1`` (then they fail).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

import etch

ALL_BACKENDS = ("local", "member", "remote", "etcd")

#: The repository root (tests/ is bindings/python/tests).
ROOT = Path(__file__).resolve().parents[3]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run the test only on these of the module's backends"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db" not in metafunc.fixturenames:
        return
    backends = getattr(metafunc.module, "BACKENDS", ("local",))
    only = metafunc.definition.get_closest_marker("backends")
    if only is not None:
        backends = tuple(b for b in backends if b in only.args)
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The backend ``db`` lives on (parametrized by ``pytest_generate_tests``)."""
    return str(getattr(request, "param", "local"))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Path of a store file that does not exist yet."""
    return tmp_path / "test.etch"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port free right now (TCP, or UDP for QUIC)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(env: str, *candidates: str) -> Optional[str]:
    """The first existing executable of ``$env`` and ``candidates`` (paths or names)."""
    for c in (os.environ.get(env), *candidates):
        if c and (os.path.isfile(c) or shutil.which(c)):
            return c if os.path.isfile(c) else shutil.which(c)
    return None


def require(what: str, found: Optional[str]) -> str:
    if found is None:
        if os.environ.get("ETCH_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{what} not found and ETCH_REQUIRE_TOOLS=1")
        pytest.skip(f"{what} not found")
    return found


def wait_ready(store: etch.Store, proc: subprocess.Popen[bytes], what: str) -> None:
    """Waits (at most 20 s) until the server answers a status request."""
    deadline = time.monotonic() + 20
    while True:
        try:
            store.status()
            return
        except etch.UnavailableError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def cargo_target() -> Path:
    """Where cargo put the repository's binaries: ``$CARGO_TARGET_DIR`` (relative to the
    repository when relative) or the repository's ``target``."""
    custom = os.environ.get("CARGO_TARGET_DIR")
    return ROOT / custom if custom else ROOT / "target"


def serve_etch(tmp: Path) -> tuple[List[str], str]:
    binary = require("the etch binary", tool("ETCH_BIN", str(cargo_target() / "release" / "etch")))
    url = f"http://127.0.0.1:{free_port()}"
    args = [binary, "serve", "--db", str(tmp / "served.etch"), "--listen-client-urls", url,
            "--advertise-client-urls", url]
    return args, url


def serve_etcd(tmp: Path) -> tuple[List[str], str]:
    binary = require("etcd", tool("ETCD_BIN", "/usr/bin/etcd", "etcd"))
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    args = [binary, "--data-dir", str(tmp / "etcd"), "--listen-client-urls", client,
            "--advertise-client-urls", client, "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer, "--initial-cluster", f"default={peer}",
            "--heartbeat-interval", "10", "--election-timeout", "100"]
    return args, client


def server_store(tmp: Path, start: Callable[[Path], tuple[List[str], str]],
                 what: str) -> Iterator[etch.Store]:
    args, url = start(tmp)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = etch.connect(url, request_timeout=10)
        wait_ready(store, proc, what)
        yield store
        store.close()
    finally:
        proc.kill()
        proc.wait()


def start_cluster(tmp: Path) -> List[etch.Store]:
    """Three members of a new cluster in this process (QUIC on loopback, fast elections),
    returned once they agree on a leader. The caller closes them."""
    ids = (1, 2, 3)
    peers = {i: f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}" for i in ids}
    members: List[etch.Store] = []
    try:
        # The initializing member campaigns at once: open it last, so that its first vote
        # requests find the others listening (opened first, it would wait out an election
        # timeout to campaign again).
        for i in sorted(ids, key=lambda i: i == 1):
            members.append(etch.open(tmp / f"member{i}.etch", cluster={
                "id": i, "peers": peers, "initialize": i == 1,
                "heartbeat": 0.05, "election_timeout": 0.3,
            }))
        deadline = time.monotonic() + 20
        while True:
            leaders = {m.leader for m in members}
            if len(leaders) == 1 and None not in leaders:
                return members
            assert time.monotonic() < deadline, "no leader within 20 s"
            time.sleep(0.01)
    except BaseException:
        close_all(members)
        raise


def close_all(members: List[etch.Store]) -> None:
    """Closes members in parallel: each one's QUIC endpoint waits up to a second for its peers
    to hang up (close releases the GIL)."""
    closers = [threading.Thread(target=m.close) for m in members]
    for t in closers:
        t.start()
    for t in closers:
        t.join()


def cluster_store(tmp: Path) -> Iterator[etch.Store]:
    members = start_cluster(tmp)
    try:
        leader = members[0].leader
        # A follower: its writes go through the leader, its reads and watches are its own.
        yield next(m for m in members if m.member_id != leader)
    finally:
        # The next test does not wait for the QUIC endpoints to wind down (each cluster has
        # its own ports and files); the interpreter waits for these threads at exit.
        threading.Thread(target=close_all, args=(members,)).start()


@pytest.fixture
def db(backend: str, path: Path, tmp_path: Path) -> Iterator[etch.Store]:
    """A fresh, empty store on ``backend``, closed after the test."""
    if backend == "local":
        store = etch.open(path)
        yield store
        store.close()
    elif backend == "member":
        yield from cluster_store(tmp_path)
    elif backend == "remote":
        yield from server_store(tmp_path, serve_etch, "etch serve")
    elif backend == "etcd":
        yield from server_store(tmp_path, serve_etcd, "etcd")
    else:
        raise ValueError(backend)
