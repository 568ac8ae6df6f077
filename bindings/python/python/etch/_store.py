"""The store: python-etcd3's method names over the native engine handle."""

from __future__ import annotations

import builtins
import functools
import itertools
import os
import random
import shutil
import tempfile
import threading
import time
from types import TracebackType
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypedDict,
    TypeVar,
    Union,
)

from etch import _etch
from etch._etch import (
    CheckReport,
    DeleteResponse,
    KVMetadata,
    PutResponse,
    Status,
    WalRepair,
    prefix_end,
)
from etch._lease import Lease, LeaseInfo
from etch._lock import Lock
from etch._transactions import Compare, Op, Transactions, _lease_id, _nested
from etch._watch import (
    CallbackWatch,
    Event,
    Receiver,
    WatchResponse,
    WatchTimedOut,
    _response,
    events,
    responses,
)
from etch._write import WriteBlock, WriteTxn, _encode, conflict

KeyLike = Union[bytes, bytearray, str]
PathLike = Union[str, "os.PathLike[str]"]


class ClusterConfig(TypedDict, total=False):
    """``etch.open``'s ``cluster`` settings (see :func:`open`): ``id`` and ``peers`` are
    required, the rest optional."""

    id: int
    peers: Mapping[int, str]
    token: str
    initialize: bool
    heartbeat: float
    election_timeout: float
    request_timeout: float
    peer_cert_file: Optional[PathLike]
    peer_key_file: Optional[PathLike]
    peer_trusted_ca_file: Optional[PathLike]
    peer_client_cert_auth: bool
    peer_auto_tls: bool


KV = Tuple[bytes, KVMetadata]
T = TypeVar("T")

#: First retry delay bound, in seconds, of :meth:`Store.write` (doubling per conflict).
_BACKOFF = 0.001

#: Extra keyword options of the range reads (python-etcd3's names).
_RANGE_FILTERS = {
    "min_mod_revision",
    "max_mod_revision",
    "min_create_revision",
    "max_create_revision",
    "serializable",
}

#: ``(start, end)`` for "every key" in etcd's range encoding.
_ALL = (b"\0", b"\0")


def _prefix_range(prefix: KeyLike) -> Tuple[bytes, bytes]:
    p = _encode(prefix)
    return (p, prefix_end(p)) if p else _ALL


def open(path: PathLike, cluster: Optional[ClusterConfig] = None, **options: Any) -> Store:
    """Opens (or creates) the store at ``path``; use it as a context manager to close it.

    With ``cluster``, the file is one member of a Raft cluster whose members talk QUIC to each
    other (etcd's peer port), running in this process; the returned :class:`Store` has the
    same methods, and every write is acknowledged once a majority of the members has it.
    ``cluster`` is a dict: ``id`` (this member's id, not 0), ``peers`` (``{id: "host:port"}``
    for every voting member, this one included: where each listens for its peers),
    ``initialize`` (True on one member, once, to start a new cluster of ``peers``; harmless when
    the file already belongs to the cluster), ``token`` (etcd's ``initial-cluster-token``),
    ``heartbeat``, ``election_timeout`` and ``request_timeout`` (seconds; etcd's 0.1, 1 and
    5 by default), and etcd's peer TLS settings ``peer_cert_file``, ``peer_key_file``,
    ``peer_trusted_ca_file``, ``peer_client_cert_auth``, ``peer_auto_tls`` (without them
    peer traffic is encrypted but nobody is authenticated). While no leader is reachable a
    call raises :class:`etch.UnavailableError` after ``request_timeout``.

    Options (all optional; the defaults are etcd's): ``durability`` (``"immediate"``: a write
    returns once it is on disk, or ``"relaxed"``: synced every ``relaxed_sync_interval``
    seconds), ``page_size``, ``max_key_size``, ``max_request_bytes``, ``max_txn_ops``,
    ``wal_capacity``, ``checkpoint_interval``, ``checkpoint_wal_fraction``, ``random_access``,
    ``write_attempts`` (for :meth:`Store.write`), ``auto_compaction_mode`` (``"revision"``,
    ``"periodic"`` or ``"off"``) with ``auto_compaction_retention`` (revisions, or seconds),
    and ``quota_bytes`` (None for no quota).

    ``read_only=True`` opens an existing file without ever writing to it (a file of mode 0444
    works): any number of read-only stores, in any processes, may hold it at once; every write
    raises :class:`etch.ReadOnlyError`. ``lock_timeout`` (seconds, default 0) waits that long
    for a file another store holds. A WAL damaged in the middle raises
    :class:`etch.CorruptError` (with ``offset``, ``last_good_seq``, ``records_after``) and
    changes nothing; ``repair_wal=True`` then keeps a copy of the WAL, recovers up to the damage
    and reports it in :attr:`Store.wal_repair`.

    Raises :class:`etch.LockedError` if the file is open elsewhere (past ``lock_timeout``),
    ``TypeError`` for an unknown option.
    """
    if cluster is None:
        return Store(_etch.open(path, **options))
    return Store(_etch.open(path, dict(cluster), **options))


def connect(
    endpoints: Union[str, Sequence[str]],
    *,
    dial_timeout: float = 2.0,
    request_timeout: float = 5.0,
    retries: Optional[int] = None,
    ca_cert: Optional[PathLike] = None,
    cert: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
    server_name: Optional[str] = None,
    write_attempts: int = 16,
) -> Store:
    """A :class:`Store` on remote servers: an ``etch serve`` cluster or etcd v3 (3.4 and
    later). ``endpoints`` is ``"host:port"`` (``http://`` or ``https://`` prefixes allowed), or
    a list of them: requests go round robin and fail over to the next endpoint. Nothing is
    dialed until the first call.

    ``dial_timeout`` bounds one connection attempt, ``request_timeout`` one call with its
    retries (seconds); ``retries`` is the number of extra rounds over the endpoints. TLS:
    ``ca_cert`` (PEM file of the CA that signed the servers), ``cert`` and ``key`` (a client
    certificate for servers that ask), ``server_name`` (the name to verify instead of the
    endpoint's host). ``write_attempts`` is as :func:`open`'s.

    The store has the local store's methods, results and exceptions; the GIL is released
    while waiting on the network. What only a network meets raises
    :class:`etch.UnavailableError` (no server answered; ``maybe_applied`` tells whether a write
    may have been applied nonetheless) or :class:`etch.DeadlineExceededError`. A watch resumes
    on another endpoint after a lost connection, from the revision after the last one it
    delivered. Operations on the server's files (:meth:`Store.checkpoint`,
    :meth:`Store.defrag`, :meth:`Store.check`) raise :class:`etch.UnsupportedError`.
    """
    eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    return Store(
        _etch.connect(
            eps,
            dial_timeout=dial_timeout,
            request_timeout=request_timeout,
            retries=retries,
            ca_cert=ca_cert,
            cert=cert,
            key=key,
            server_name=server_name,
            write_attempts=write_attempts,
        )
    )


def client(
    host: str = "localhost",
    port: int = 2379,
    ca_cert: Optional[PathLike] = None,
    cert_key: Optional[PathLike] = None,
    cert_cert: Optional[PathLike] = None,
    timeout: Optional[float] = None,
) -> Store:
    """python-etcd3's ``etcd3.client(host, port, ...)``: :func:`connect` to one server, with
    python-etcd3's argument names (``cert_cert`` and ``cert_key`` are the client certificate
    and its key; ``timeout`` the request timeout in seconds)."""
    scheme = "https://" if ca_cert is not None else ""
    return connect(
        f"{scheme}{host}:{port}",
        request_timeout=5.0 if timeout is None else timeout,
        ca_cert=ca_cert,
        cert=cert_cert,
        key=cert_key,
    )


def restore(snapshot: PathLike, output: PathLike, **options: Any) -> Store:
    """Copies the snapshot file ``snapshot`` (see :meth:`Store.snapshot`) to ``output`` (which
    must not exist), verifies the copy completely and returns it open, with ``options`` as
    :func:`open`."""
    return Store(_etch.restore(snapshot, output, **options))


class Store:
    """An open etch store. Safe to share between threads; every call that may block or sync
    releases the GIL. Obtain one with :func:`etch.open`."""

    def __init__(self, native: _etch.NativeStore) -> None:
        self._native = native
        #: The transaction builder (compares and operations for :meth:`transaction`).
        self.transactions = Transactions()
        self._watches: Dict[int, CallbackWatch] = {}
        self._watch_ids = itertools.count(1)
        self._watch_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """Path of the main file."""
        return str(self._native.path)

    @property
    def kind(self) -> str:
        """Where the store lives: ``"local"`` (:func:`open`), ``"member"`` (:func:`open` with
        ``cluster``) or ``"remote"`` (:func:`connect`)."""
        return str(self._native.kind)

    @property
    def member_id(self) -> Optional[int]:
        """A cluster member's id; None for a local or remote store."""
        return self._native.member_id

    @property
    def leader(self) -> Optional[int]:
        """The id of the leader a cluster member knows of (None while there is none, and for a
        local or remote store)."""
        return self._native.leader

    @property
    def revision(self) -> int:
        """The current revision."""
        return int(self._native.revision)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return bool(self._native.closed)

    @property
    def read_only(self) -> bool:
        """True if opened with ``read_only=True``: every write raises
        :class:`etch.ReadOnlyError`."""
        return bool(self._native.read_only)

    @property
    def wal_repair(self) -> Optional[WalRepair]:
        """What the open repaired in a damaged WAL (``repair_wal=True``): the damage's
        ``offset``, ``last_good_seq``, the dropped ``records_after`` and the ``copy`` it kept of
        the WAL; None if it repaired nothing."""
        return self._native.wal_repair

    def close(self) -> None:
        """Stops callback watches, checkpoints, removes the WAL (leaving one file) and releases
        the file. Later calls raise :class:`etch.ClosedError`; closing twice is harmless."""
        with self._watch_lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for w in watches:
            w.cancel()
        self._native.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "" if self.kind == "local" else f" {self.kind}"
        return f"<etch.Store{kind} {self.path!r}{' closed' if self.closed else ''}>"

    # -- reads -----------------------------------------------------------------------------

    def get(
        self, key: KeyLike, revision: Optional[int] = None, serializable: bool = False
    ) -> Union[KV, Tuple[None, None]]:
        """``(value, meta)`` of ``key`` (as of ``revision`` if given), or ``(None, None)``.
        ``serializable`` (python-etcd3's flag) changes nothing: every read of an embedded
        store is local and sees every acknowledged write."""
        kv = self._native.get(key, revision or 0)
        return (None, None) if kv is None else kv

    def _range(
        self,
        start: KeyLike,
        end: Optional[KeyLike],
        sort_order: Optional[str],
        sort_target: str,
        keys_only: bool,
        revision: Optional[int],
        limit: Optional[int],
        filters: Dict[str, Optional[int]],
    ) -> Iterator[KV]:
        unknown = set(filters) - _RANGE_FILTERS
        if unknown:
            raise TypeError(f"unknown range options: {', '.join(sorted(unknown))}")
        kvs, _more, _count, _rev = self._native.range(
            start,
            end,
            sort_order="none" if sort_order is None else sort_order,
            sort_target=sort_target,
            keys_only=keys_only,
            revision=revision or 0,
            limit=limit or 0,
            min_mod_revision=filters.get("min_mod_revision") or 0,
            max_mod_revision=filters.get("max_mod_revision") or 0,
            min_create_revision=filters.get("min_create_revision") or 0,
            max_create_revision=filters.get("max_create_revision") or 0,
        )
        return iter(kvs)

    def get_prefix(
        self,
        key_prefix: KeyLike,
        sort_order: Optional[str] = None,
        sort_target: str = "key",
        keys_only: bool = False,
        revision: Optional[int] = None,
        limit: Optional[int] = None,
        **filters: Optional[int],
    ) -> Iterator[KV]:
        """``(value, meta)`` of every key starting with ``key_prefix``, in key order unless
        ``sort_order`` (``"ascend"``/``"descend"``) and ``sort_target`` (``"key"``,
        ``"version"``, ``"create"``, ``"mod"``, ``"value"``) say otherwise. ``keys_only`` leaves
        values empty; ``revision`` reads the past; ``limit`` caps the count. Also accepted, as
        python-etcd3: ``min_mod_revision``, ``max_mod_revision``, ``min_create_revision``,
        ``max_create_revision`` and ``serializable`` (which changes nothing here)."""
        start, end = _prefix_range(key_prefix)
        return self._range(
            start, end, sort_order, sort_target, keys_only, revision, limit, filters
        )

    def get_range(
        self,
        range_start: KeyLike,
        range_end: KeyLike,
        sort_order: Optional[str] = None,
        sort_target: str = "key",
        keys_only: bool = False,
        revision: Optional[int] = None,
        limit: Optional[int] = None,
        **filters: Optional[int],
    ) -> Iterator[KV]:
        """``(value, meta)`` of every key in ``[range_start, range_end)``, options as
        :meth:`get_prefix`."""
        return self._range(
            range_start, range_end, sort_order, sort_target, keys_only, revision, limit, filters
        )

    def get_all(
        self,
        sort_order: Optional[str] = None,
        sort_target: str = "key",
        keys_only: bool = False,
        revision: Optional[int] = None,
        limit: Optional[int] = None,
        **filters: Optional[int],
    ) -> Iterator[KV]:
        """``(value, meta)`` of every key, options as :meth:`get_prefix`."""
        return self._range(
            *_ALL, sort_order, sort_target, keys_only, revision, limit, filters
        )

    def count_prefix(self, key_prefix: KeyLike, revision: Optional[int] = None) -> int:
        """Number of keys starting with ``key_prefix`` (without reading values)."""
        start, end = _prefix_range(key_prefix)
        _kvs, _more, count, _rev = self._native.range(
            start, end, count_only=True, revision=revision or 0
        )
        return int(count)

    # -- writes ----------------------------------------------------------------------------

    def put(
        self, key: KeyLike, value: KeyLike, lease: Union[Lease, int, None] = None,
        prev_kv: bool = False,
    ) -> PutResponse:
        """Puts ``key = value``, attached to ``lease`` (a :class:`Lease` or id) if given.
        Returns a :class:`etch.PutResponse` (``revision``, and ``prev_kv`` if asked for)."""
        return self._native.put(key, value, lease=_lease_id(lease), prev_kv=prev_kv)

    def put_if_not_exists(
        self, key: KeyLike, value: KeyLike, lease: Union[Lease, int, None] = None
    ) -> bool:
        """Puts ``key = value`` only if ``key`` does not exist; True if it was put."""
        ok, _ = self.transaction(
            compare=[self.transactions.create(key) == 0],
            success=[self.transactions.put(key, value, lease=lease)],
            failure=[],
        )
        return ok

    def replace(self, key: KeyLike, initial_value: KeyLike, new_value: KeyLike) -> bool:
        """Atomically replaces ``initial_value`` with ``new_value``; True if the key held
        ``initial_value`` (and now holds ``new_value``)."""
        ok, _ = self.transaction(
            compare=[self.transactions.value(key) == initial_value],
            success=[self.transactions.put(key, new_value)],
            failure=[],
        )
        return ok

    def delete(
        self, key: KeyLike, prev_kv: bool = False, return_response: bool = False
    ) -> Union[bool, DeleteResponse]:
        """Deletes ``key``; True if it existed (or the :class:`etch.DeleteResponse` if
        ``return_response``)."""
        resp: DeleteResponse = self._native.delete_range(key, None, prev_kv=prev_kv)
        return resp if return_response else resp.deleted > 0

    def delete_prefix(self, prefix: KeyLike, prev_kv: bool = False) -> DeleteResponse:
        """Deletes every key starting with ``prefix``, at one revision."""
        start, end = _prefix_range(prefix)
        return self._native.delete_range(start, end, prev_kv=prev_kv)

    def delete_range(
        self, range_start: KeyLike, range_end: KeyLike, prev_kv: bool = False
    ) -> DeleteResponse:
        """Deletes every key in ``[range_start, range_end)``, at one revision."""
        return self._native.delete_range(range_start, range_end, prev_kv=prev_kv)

    def transaction(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> Tuple[bool, List[Any]]:
        """Runs ``success`` if every compare holds, else ``failure``, atomically at one
        revision. Returns ``(succeeded, responses)``: per operation of the branch that ran, in
        order, a :class:`etch.PutResponse` for a put, a list of ``(value, meta)`` for a get, a
        :class:`etch.DeleteResponse` for a delete, or ``(succeeded, responses)`` for a nested
        ``txn``."""
        ok, responses = self._native.txn(*_nested(compare, success, failure))
        return bool(ok), list(responses)

    def write(self, fn: Optional[Callable[..., T]] = None, *args: Any, **kwargs: Any) -> Any:
        """An optimistic read-write transaction.

        ``store.write(fn, *args, **kwargs)`` calls ``fn(tx, *args, **kwargs)`` with a
        :class:`etch.WriteTxn`, commits its writes if nothing it read changed meanwhile, and
        otherwise calls ``fn`` again on a fresh snapshot (after a short random pause that
        grows with each conflict), up to the ``write_attempts`` option (default 16) times before
        raising :class:`etch.ConflictError`. Returns ``fn``'s result.
        ``fn`` may run more than once, so it must have no other side effects. An exception from
        ``fn`` aborts without writing.

        ``with store.write() as tx:`` makes one attempt, committed when the block ends; since a
        block cannot be re-run, a conflict raises :class:`etch.ConflictError` (no retry).
        """
        if fn is None:
            if args or kwargs:
                raise TypeError("write() without a function takes no other arguments")
            return WriteBlock(self._native.begin_write())
        return self.write_with_revision(fn, *args, **kwargs)[0]

    def write_with_revision(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Tuple[T, int]:
        """As ``store.write(fn, *args, **kwargs)``, returning ``(result, revision)``: ``fn``'s
        result and the revision its writes were committed at (the revision of the snapshot it
        read if it wrote nothing)."""
        attempts = int(self._native.write_attempts)
        for attempt in range(attempts):
            tx = WriteTxn(self._native.begin_write())
            try:
                result = fn(tx, *args, **kwargs)
            except BaseException:
                tx.abort()
                raise
            revision = tx.commit()
            if revision is not None:
                return result, revision
            # Back off (randomly, growing) so that contenders stop colliding in lockstep.
            time.sleep(random.uniform(0, _BACKOFF * (1 << min(attempt, 6))))
        raise conflict(attempts)

    def transactional(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Decorator: each call of the decorated ``fn(tx, ...)`` runs as :meth:`write`
        (retried on conflict)."""

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> T:
            return self.write(fn, *args, **kwargs)  # type: ignore[no-any-return]

        return run

    def compact(self, revision: int, physical: bool = True) -> int:
        """Drops history below ``revision``: reads before it then raise
        :class:`etch.CompactedError`. Compaction is always applied before this returns, so
        ``physical`` (python-etcd3's flag) changes nothing. Returns the store's current revision
        at the compaction (not ``revision``)."""
        return int(self._native.compact(revision))

    # -- watches ---------------------------------------------------------------------------

    def _watcher(
        self, key: KeyLike, range_end: Optional[KeyLike], **kwargs: Any
    ) -> _etch.Watcher:
        kwargs["start_revision"] = kwargs.get("start_revision") or 0
        return self._native.watch(key, range_end, **kwargs)

    def watch(
        self,
        key: KeyLike,
        range_end: Optional[KeyLike] = None,
        start_revision: Optional[int] = None,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: Optional[float] = None,
    ) -> Tuple[Iterator[Event], Callable[[], None]]:
        """Watches ``key`` (or ``[key, range_end)``) from now, or from ``start_revision`` to
        replay history first. Returns ``(events_iterator, cancel)``: the iterator blocks (GIL
        released) for each :class:`etch.PutEvent` / :class:`etch.DeleteEvent` and ends after
        ``cancel()`` (callable from any thread) or :meth:`close`. It raises
        :class:`etch.CompactedError` if compaction removed revisions it had yet to deliver.
        ``prev_kv`` fills each event's ``prev_value``/``prev_meta``; ``no_put``/``no_delete``
        leave out puts/deletes (etcd's filters); ``progress_notify`` (seconds) makes callback
        watches receive an empty :class:`etch.WatchResponse` after that long without events."""
        native = self._watcher(
            key, range_end, start_revision=start_revision, prev_kv=prev_kv,
            no_put=no_put, no_delete=no_delete, progress_notify=progress_notify,
        )
        return events(native), native.cancel

    def watch_responses(
        self, key: KeyLike, range_end: Optional[KeyLike] = None, **kwargs: Any
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """As :meth:`watch` (same options), but iterates whole :class:`etch.WatchResponse`
        batches. A watch with a past ``start_revision`` yields exactly one response with
        ``caught_up`` true, the one that completes the replay of history (with events, or
        empty if the end of the history held none that matched): the way to know when the past
        has been seen and what follows is live."""
        native = self._watcher(key, range_end, **kwargs)
        return responses(native), native.cancel

    def watch_response(
        self, key: KeyLike, range_end: Optional[KeyLike] = None, **kwargs: Any
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """python-etcd3's name for :meth:`watch_responses`."""
        return self.watch_responses(key, range_end, **kwargs)

    def watch_prefix_response(
        self, key_prefix: KeyLike, **kwargs: Any
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """As :meth:`watch_responses`, for every key starting with ``key_prefix`` (python-etcd3's
        ``watch_prefix_response``)."""
        start, end = _prefix_range(key_prefix)
        return self.watch_responses(start, range_end=end, **kwargs)

    def watch_prefix(
        self, key_prefix: KeyLike, **kwargs: Any
    ) -> Tuple[Iterator[Event], Callable[[], None]]:
        """As :meth:`watch`, for every key starting with ``key_prefix``."""
        start, end = _prefix_range(key_prefix)
        return self.watch(start, range_end=end, **kwargs)

    def watch_once(self, key: KeyLike, timeout: Optional[float] = None, **kwargs: Any) -> Event:
        """The next event on ``key`` (options as :meth:`watch`); raises
        :class:`etch.WatchTimedOut` if none comes within ``timeout`` seconds."""
        native = self._watcher(key, kwargs.pop("range_end", None), **kwargs)
        receiver = Receiver(native)
        try:
            raw = receiver.recv(timeout)
            while raw is not None:
                resp = _response(raw)
                if resp.events:
                    return resp.events[0]
                raw = receiver.recv(timeout)
            raise WatchTimedOut(f"no event on {key!r} within {timeout} s")
        finally:
            native.cancel()

    def watch_prefix_once(
        self, key_prefix: KeyLike, timeout: Optional[float] = None, **kwargs: Any
    ) -> Event:
        """As :meth:`watch_once`, for every key starting with ``key_prefix``."""
        start, end = _prefix_range(key_prefix)
        return self.watch_once(start, timeout, range_end=end, **kwargs)

    def add_watch_callback(
        self, key: KeyLike, callback: Callable[[Any], None], **kwargs: Any
    ) -> int:
        """Watches ``key`` (options as :meth:`watch`, including ``range_end``) and calls
        ``callback`` with each :class:`etch.WatchResponse` on a daemon thread; on an error it
        calls ``callback`` with the exception and stops. Returns a watch id for
        :meth:`cancel_watch`."""
        native = self._watcher(key, kwargs.pop("range_end", None), **kwargs)
        watch_id = next(self._watch_ids)
        with self._watch_lock:
            self._watches[watch_id] = CallbackWatch(native, callback, f"etch-watch-{watch_id}")
        return watch_id

    def add_watch_prefix_callback(
        self, key_prefix: KeyLike, callback: Callable[[Any], None], **kwargs: Any
    ) -> int:
        """As :meth:`add_watch_callback`, for every key starting with ``key_prefix``."""
        start, end = _prefix_range(key_prefix)
        return self.add_watch_callback(start, callback, range_end=end, **kwargs)

    def cancel_watch(self, watch_id: int) -> None:
        """Stops a callback watch (and waits for its thread, unless called from it)."""
        with self._watch_lock:
            w = self._watches.pop(watch_id, None)
        if w is None:
            raise KeyError(f"no watch with id {watch_id}")
        w.cancel()

    # -- leases and locks ------------------------------------------------------------------

    def lease(self, ttl: int, lease_id: Optional[int] = None) -> Lease:
        """Grants a lease of ``ttl`` seconds (with ``lease_id`` if given, else a fresh id)."""
        granted_id, granted_ttl = self._native.lease_grant(ttl, lease_id or 0)
        return Lease(self._native, granted_id, granted_ttl)

    def revoke_lease(self, lease_id: int) -> None:
        """Revokes a lease by id, deleting its keys."""
        self._native.lease_revoke(lease_id)

    def refresh_lease(self, lease_id: int) -> int:
        """Renews a lease by id for its full TTL; returns the TTL."""
        return int(self._native.lease_keep_alive(lease_id))

    def get_lease_info(self, lease_id: int) -> LeaseInfo:
        """A lease's remaining and granted TTL and its keys (python-etcd3's
        ``get_lease_info``, with the same attribute names). A lease that does not exist raises
        :class:`etch.LeaseNotFoundError`, as etcd's own client does."""
        ttl, granted, keys = self._native.lease_time_to_live(lease_id, True)
        return LeaseInfo(lease_id, int(ttl), int(granted), list(keys))

    def leases(self) -> List[Lease]:
        """Every lease."""
        return [Lease(self._native, i, ttl) for i, ttl in self._native.lease_list()]

    def lock(self, name: str, ttl: int = 60) -> Lock:
        """A :class:`etch.Lock` named ``name`` held with a lease of ``ttl`` seconds (not yet
        acquired: call ``acquire()`` or use it as a context manager)."""
        return Lock(self._native, name, ttl)

    # -- maintenance -----------------------------------------------------------------------

    def snapshot(self, file: Union[PathLike, IO[bytes]]) -> Tuple[int, int]:
        """Writes a consistent, compact copy of the store while writers go on: to a path (which
        must not exist), or into a binary file object as python-etcd3. Returns
        ``(revision, size)``: the revision the copy holds and its size in bytes. Restore it with
        :func:`etch.restore`."""
        if hasattr(file, "write"):
            with tempfile.TemporaryDirectory(prefix="etch-snapshot-") as tmp:
                path = os.path.join(tmp, "snapshot.etch")
                revision, size = self._native.snapshot(path)
                with builtins.open(path, "rb") as src:
                    shutil.copyfileobj(src, file)  # type: ignore[arg-type]
                return int(revision), int(size)
        revision, size = self._native.snapshot(file)
        return int(revision), int(size)

    def defrag(self) -> Tuple[int, int]:
        """Rewrites the file compactly so it shrinks after deletes and compaction; returns the
        file size ``(before, after)``. Writers wait while it runs."""
        before, after = self._native.defrag()
        return int(before), int(after)

    def defragment(self) -> Tuple[int, int]:
        """python-etcd3's name for :meth:`defrag`."""
        return self.defrag()

    def hash(self) -> int:
        """python-etcd3's name for :meth:`hash_kv` at the current revision."""
        return self.hash_kv()

    def status(self) -> Status:
        """Revisions, key count, file and WAL sizes."""
        return self._native.status()

    def check(self) -> CheckReport:
        """Full integrity check; raises :class:`etch.CorruptError` if anything is wrong."""
        return self._native.check()

    def hash_kv(self, revision: Optional[int] = None) -> int:
        """A hash of the keyspace at ``revision`` (default: current), for comparing copies."""
        return int(self._native.hash_kv(revision or 0))

    def sync(self) -> None:
        """Makes every commit so far durable (useful with ``durability="relaxed"``)."""
        self._native.sync()

    def checkpoint(self) -> None:
        """Copies the WAL into the main file now and empties it; returns None. Right after it,
        :meth:`status` reports ``wal_size`` 0."""
        self._native.checkpoint()


