"""Type stubs of the etch package: etcd's data model as an embeddable single-file store."""

import os
from types import TracebackType
from typing import (
    IO,
    Any,
    Callable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypedDict,
    TypeVar,
    Union,
    overload,
)

__version__: str

_KeyLike = Union[bytes, bytearray, str]
_PathLike = Union[str, os.PathLike[str]]
_SortOrder = Optional[Literal["ascend", "descend", "none"]]
_SortTarget = Literal["key", "version", "create", "mod", "value"]
_T = TypeVar("_T")

# -- errors ---------------------------------------------------------------------------------

class Error(Exception):
    """Base class of every error etch raises."""

class InvalidRequestError(Error):
    """The request is malformed or over a limit; fix the request."""

class EmptyKeyError(InvalidRequestError):
    """A key was empty."""

class KeyTooLargeError(InvalidRequestError):
    """A key is longer than `max_key_size`."""
    len: int
    max: int

class RequestTooLargeError(InvalidRequestError):
    """The keys and values of one write exceed `max_request_bytes`."""
    size: int
    max: int

class TooManyOpsError(InvalidRequestError):
    """A transaction has more operations or compares than `max_txn_ops`."""
    count: int
    max: int

class DuplicateKeyError(InvalidRequestError):
    """One transaction branch writes the same key twice."""
    key: str

class KeyNotFoundError(InvalidRequestError):
    """`ignore_value` or `ignore_lease` was used on a key that does not exist."""

class ValueProvidedError(InvalidRequestError):
    """`ignore_value` was set together with a non-empty value."""

class LeaseProvidedError(InvalidRequestError):
    """`ignore_lease` was set together with a lease."""

class InvalidOptionError(InvalidRequestError):
    """An option or argument is out of range."""

class LeaseNotFoundError(Error):
    """No lease with this id exists."""
    id: int

class LeaseExistsError(Error):
    """A lease with this id already exists."""
    id: int

class CompactedError(Error):
    """The requested revision has been compacted."""
    requested: int
    compact_revision: int
    compacted_revision: int
    """The same as `compact_revision`, as python-etcd3 spells it."""

RevisionCompactedError = CompactedError
"""python-etcd3's name for `CompactedError`."""

class FutureRevisionError(Error):
    """The requested revision is newer than the current one."""
    requested: int
    current: int

class NotEtchFileError(Error):
    """The file is not an etch file."""
    path: str

class NewerFormatError(Error):
    """The file was written by a newer version of etch."""
    path: str

class CorruptError(Error):
    """The file or its WAL is damaged. For a WAL damaged in the middle (acknowledged records
    follow the damage; open with `repair_wal=True` to recover up to it) the attributes name the
    WAL, the offset of the damage, the last good sequence number and how many records follow;
    for other corruption they are None."""
    path: Optional[str]
    offset: Optional[int]
    last_good_seq: Optional[int]
    records_after: Optional[int]

class LockedError(Error):
    """Another process or Store has the file open."""
    path: str

class ReadOnlyError(Error):
    """The store was opened read-only and refuses every write."""
    path: str

class StorageError(Error):
    """An I/O error from the operating system."""
    errno: Optional[int]

class NoSpaceError(StorageError):
    """The disk is full."""

class PoisonedError(Error):
    """An earlier write or sync failed; reopen to recover."""

class ClosedError(Error):
    """The store (or this object's store) is closed."""

class QuotaExceededError(Error):
    """The store is past its space quota."""
    used: int
    quota: int

class ConflictError(Error):
    """An optimistic write transaction kept conflicting with concurrent writers."""
    attempts: int

class UnavailableError(Error):
    """No server or cluster leader could be reached in time."""
    maybe_applied: bool

class DeadlineExceededError(UnavailableError):
    """A request to a server or a cluster did not complete within its timeout."""

class TooManyRequestsError(UnavailableError):
    """The cluster is too busy to take the write now (etcd's "too many requests"); retry later."""

class ClusterError(Error):
    """A cluster member refused the request for a cluster reason."""

class ServerError(Error):
    """A server's error etch has no other class for."""
    code: str
    message: str

class UnsupportedError(Error):
    """This kind of store cannot do this."""

ConnectionFailedError = UnavailableError
ConnectionTimeoutError = DeadlineExceededError
Etcd3Exception = Error

class WatchTimedOut(Error, TimeoutError):
    """`Store.watch_once` saw no event in time."""

# -- results --------------------------------------------------------------------------------

class KVMetadata:
    """Metadata of a key, as python-etcd3's `KVMetadata`."""
    @property
    def key(self) -> bytes: ...
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def lease_id(self) -> int: ...

_KV = Tuple[bytes, KVMetadata]

class PutResponse:
    """Result of a put."""
    @property
    def revision(self) -> int: ...
    @property
    def prev_kv(self) -> Optional[_KV]: ...

class DeleteResponse:
    """Result of a delete."""
    @property
    def revision(self) -> int: ...
    @property
    def deleted(self) -> int: ...
    @property
    def prev_kvs(self) -> List[_KV]: ...

class Status:
    """Store status."""
    @property
    def revision(self) -> int: ...
    @property
    def compact_revision(self) -> int: ...
    @property
    def key_count(self) -> int: ...
    @property
    def db_size(self) -> int: ...
    @property
    def db_size_in_use(self) -> int: ...
    @property
    def wal_size(self) -> int: ...
    @property
    def page_size(self) -> int: ...
    @property
    def applied_index(self) -> int: ...

class WalRepair:
    """What an open with `repair_wal=True` found in a damaged WAL and did about it."""
    @property
    def offset(self) -> int: ...
    @property
    def last_good_seq(self) -> int: ...
    @property
    def records_after(self) -> int: ...
    @property
    def copy(self) -> str: ...

class CheckReport:
    """What an integrity check examined."""
    @property
    def tree_pages(self) -> int: ...
    @property
    def overflow_pages(self) -> int: ...
    @property
    def free_pages(self) -> int: ...
    @property
    def keys(self) -> int: ...
    @property
    def history_records(self) -> int: ...
    @property
    def log_records(self) -> int: ...

# -- transactions ---------------------------------------------------------------------------

class Compare:
    """One condition of a transaction."""
    key: _KeyLike
    range_end: Optional[_KeyLike]
    target: str
    op: str
    operand: Any

class _Target:
    __hash__: None  # type: ignore[assignment]
    def __eq__(self, other: Any) -> Compare: ...  # type: ignore[override]
    def __ne__(self, other: Any) -> Compare: ...  # type: ignore[override]
    def __lt__(self, other: Any) -> Compare: ...
    def __gt__(self, other: Any) -> Compare: ...

class Op:
    """An operation of a transaction branch."""

class Transactions:
    """Builds compares and operations for `Store.transaction`."""
    def value(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> _Target: ...
    def version(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> _Target: ...
    def create(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> _Target: ...
    def mod(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> _Target: ...
    def lease(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> _Target: ...
    def put(
        self, key: _KeyLike, value: _KeyLike, lease: Union[Lease, int, None] = ..., prev_kv: bool = ...
    ) -> Op: ...
    def get(self, key: _KeyLike, range_end: Optional[_KeyLike] = ...) -> Op: ...
    def delete(
        self, key: _KeyLike, range_end: Optional[_KeyLike] = ..., prev_kv: bool = ...
    ) -> Op: ...
    def txn(
        self, compare: Sequence[Compare], success: Sequence[Op] = ..., failure: Sequence[Op] = ...
    ) -> Op: ...

class WriteTxn:
    """One attempt of an optimistic read-write transaction."""
    @property
    def revision(self) -> int: ...
    @property
    def committed_revision(self) -> Optional[int]:
        """The revision `commit()` committed at; None before, after a conflict or an abort."""
    def get(self, key: _KeyLike) -> Union[_KV, Tuple[None, None]]: ...
    def get_range(self, range_start: _KeyLike, range_end: _KeyLike) -> Iterator[_KV]: ...
    def get_prefix(self, key_prefix: _KeyLike) -> Iterator[_KV]: ...
    def put(self, key: _KeyLike, value: _KeyLike) -> None: ...
    def delete(self, key: _KeyLike) -> None: ...
    def commit(self) -> Optional[int]:
        """The revision the writes were committed at (the snapshot's if nothing was written),
        or None on a conflict."""
    def abort(self) -> None: ...

class WriteBlock(WriteTxn):
    """`with store.write() as tx:` — one attempt, committed at the end of the block."""
    def __enter__(self) -> WriteBlock: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

# -- watches --------------------------------------------------------------------------------

class Event:
    """One change of a watched key."""
    key: bytes
    value: bytes
    meta: KVMetadata
    prev_value: Optional[bytes]
    prev_meta: Optional[KVMetadata]
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def lease_id(self) -> int: ...

class PutEvent(Event):
    """A key was created or updated."""

class DeleteEvent(Event):
    """A key was deleted."""

class WatchResponse:
    """One batch of events, for callbacks and `Store.watch_responses`."""
    header_revision: int
    events: List[Event]
    caught_up: bool
    """True in the one response that completes a replay of history (see
    `Store.watch_responses`)."""

_TxnOpResponse = Union[
    PutResponse, List[_KV], DeleteResponse, Tuple[bool, List["_TxnOpResponse"]]
]
"""One operation's result in `Store.transaction`: a put's `PutResponse`, a get's key-values,
a delete's `DeleteResponse`, or a nested transaction's `(succeeded, responses)`."""

# -- leases and locks -----------------------------------------------------------------------

class LeaseInfo:
    """`Store.get_lease_info`'s answer, named as etcd's `LeaseTimeToLiveResponse`."""
    ID: int
    TTL: int
    grantedTTL: int
    keys: List[bytes]

class Lease:
    """A granted lease; a context manager that revokes it on exit."""
    id: int
    ttl: int
    def revoke(self) -> None: ...
    def refresh(self) -> int: ...
    @property
    def remaining_ttl(self) -> int: ...
    @property
    def granted_ttl(self) -> int: ...
    @property
    def keys(self) -> List[bytes]: ...
    def __enter__(self) -> Lease: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class Lock:
    """A named lock held with a lease; a context manager."""
    name: str
    ttl: int
    @property
    def key(self) -> Optional[bytes]: ...
    @property
    def revision(self) -> Optional[int]: ...
    def acquire(self, timeout: Optional[float] = ...) -> bool: ...
    def release(self) -> bool: ...
    def refresh(self) -> int: ...
    def is_acquired(self) -> bool: ...
    def __enter__(self) -> Lock: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

# -- the store ------------------------------------------------------------------------------

class ClusterConfig(TypedDict, total=False):
    """`etch.open`'s `cluster` settings: `id` and `peers` are required."""
    id: int
    peers: Mapping[int, str]
    token: str
    initialize: bool
    heartbeat: float
    election_timeout: float
    request_timeout: float
    peer_cert_file: Optional[_PathLike]
    peer_key_file: Optional[_PathLike]
    peer_trusted_ca_file: Optional[_PathLike]
    peer_client_cert_auth: bool
    peer_auto_tls: bool

def open(
    path: _PathLike,
    cluster: Optional[ClusterConfig] = ...,
    *,
    durability: Literal["immediate", "relaxed"] = ...,
    page_size: int = ...,
    relaxed_sync_interval: float = ...,
    max_key_size: int = ...,
    max_request_bytes: int = ...,
    max_txn_ops: int = ...,
    wal_capacity: int = ...,
    checkpoint_interval: float = ...,
    checkpoint_wal_fraction: float = ...,
    random_access: bool = ...,
    write_attempts: int = ...,
    auto_compaction_mode: Literal["revision", "periodic", "off"] = ...,
    auto_compaction_retention: float = ...,
    quota_bytes: Optional[int] = ...,
    read_only: bool = ...,
    lock_timeout: float = ...,
    repair_wal: bool = ...,
) -> Store:
    """Opens (or creates) the store at `path`; with `cluster`, as an in-process member of a
    Raft cluster over QUIC."""

def connect(
    endpoints: Union[str, Sequence[str]],
    *,
    dial_timeout: float = ...,
    request_timeout: float = ...,
    retries: Optional[int] = ...,
    ca_cert: Optional[_PathLike] = ...,
    cert: Optional[_PathLike] = ...,
    key: Optional[_PathLike] = ...,
    server_name: Optional[str] = ...,
    write_attempts: int = ...,
) -> Store:
    """A store on remote servers: an `etch serve` cluster or etcd v3."""

def client(
    host: str = ...,
    port: int = ...,
    ca_cert: Optional[_PathLike] = ...,
    cert_key: Optional[_PathLike] = ...,
    cert_cert: Optional[_PathLike] = ...,
    timeout: Optional[float] = ...,
) -> Store:
    """python-etcd3's `etcd3.client(host, port, ...)`: `connect` to one server."""

def restore(snapshot: _PathLike, output: _PathLike, **options: Any) -> Store:
    """Restores a snapshot file to `output` and returns it open."""

class Store:
    """An open etch store; safe to share between threads."""
    transactions: Transactions
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> Literal["local", "member", "remote"]: ...
    @property
    def member_id(self) -> Optional[int]: ...
    @property
    def leader(self) -> Optional[int]: ...
    @property
    def revision(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def wal_repair(self) -> Optional[WalRepair]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Store: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def get(
        self, key: _KeyLike, revision: Optional[int] = ..., serializable: bool = ...
    ) -> Union[_KV, Tuple[None, None]]: ...
    def get_prefix(
        self,
        key_prefix: _KeyLike,
        sort_order: _SortOrder = ...,
        sort_target: _SortTarget = ...,
        keys_only: bool = ...,
        revision: Optional[int] = ...,
        limit: Optional[int] = ...,
        *,
        min_mod_revision: Optional[int] = ...,
        max_mod_revision: Optional[int] = ...,
        min_create_revision: Optional[int] = ...,
        max_create_revision: Optional[int] = ...,
        serializable: bool = ...,
    ) -> Iterator[_KV]: ...
    def get_range(
        self,
        range_start: _KeyLike,
        range_end: _KeyLike,
        sort_order: _SortOrder = ...,
        sort_target: _SortTarget = ...,
        keys_only: bool = ...,
        revision: Optional[int] = ...,
        limit: Optional[int] = ...,
        *,
        min_mod_revision: Optional[int] = ...,
        max_mod_revision: Optional[int] = ...,
        min_create_revision: Optional[int] = ...,
        max_create_revision: Optional[int] = ...,
        serializable: bool = ...,
    ) -> Iterator[_KV]: ...
    def get_all(
        self,
        sort_order: _SortOrder = ...,
        sort_target: _SortTarget = ...,
        keys_only: bool = ...,
        revision: Optional[int] = ...,
        limit: Optional[int] = ...,
        *,
        min_mod_revision: Optional[int] = ...,
        max_mod_revision: Optional[int] = ...,
        min_create_revision: Optional[int] = ...,
        max_create_revision: Optional[int] = ...,
        serializable: bool = ...,
    ) -> Iterator[_KV]: ...
    def count_prefix(self, key_prefix: _KeyLike, revision: Optional[int] = ...) -> int: ...
    def put(
        self,
        key: _KeyLike,
        value: _KeyLike,
        lease: Union[Lease, int, None] = ...,
        prev_kv: bool = ...,
    ) -> PutResponse: ...
    def put_if_not_exists(
        self, key: _KeyLike, value: _KeyLike, lease: Union[Lease, int, None] = ...
    ) -> bool: ...
    def replace(self, key: _KeyLike, initial_value: _KeyLike, new_value: _KeyLike) -> bool: ...
    @overload
    def delete(
        self, key: _KeyLike, prev_kv: bool = ..., return_response: Literal[False] = ...
    ) -> bool: ...
    @overload
    def delete(
        self, key: _KeyLike, prev_kv: bool = ..., *, return_response: Literal[True]
    ) -> DeleteResponse: ...
    def delete_prefix(self, prefix: _KeyLike, prev_kv: bool = ...) -> DeleteResponse: ...
    def delete_range(
        self, range_start: _KeyLike, range_end: _KeyLike, prev_kv: bool = ...
    ) -> DeleteResponse: ...
    def transaction(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = ...,
        failure: Sequence[Op] = ...,
    ) -> Tuple[bool, List[_TxnOpResponse]]:
        """`(succeeded, responses)`: whether every compare held, and one result per operation
        of the branch that ran, in order."""
    @overload
    def write(self) -> WriteBlock: ...
    @overload
    def write(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T: ...
    def write_with_revision(
        self, fn: Callable[..., _T], *args: Any, **kwargs: Any
    ) -> Tuple[_T, int]:
        """As `write(fn, ...)`; returns `(fn's result, revision committed at)`."""
    def transactional(self, fn: Callable[..., _T]) -> Callable[..., _T]: ...
    def compact(self, revision: int, physical: bool = ...) -> int:
        """Drops history below `revision`; returns the store's current revision at the
        compaction."""
    def watch(
        self,
        key: _KeyLike,
        range_end: Optional[_KeyLike] = ...,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Tuple[Iterator[Event], Callable[[], None]]: ...
    def watch_responses(
        self,
        key: _KeyLike,
        range_end: Optional[_KeyLike] = ...,
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """As `watch`, yielding whole responses; a replay of history ends with one whose
        `caught_up` is true."""
    def watch_response(
        self,
        key: _KeyLike,
        range_end: Optional[_KeyLike] = ...,
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """python-etcd3's name for `watch_responses`."""
    def watch_prefix_response(
        self,
        key_prefix: _KeyLike,
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Tuple[Iterator[WatchResponse], Callable[[], None]]:
        """`watch_responses` for every key starting with `key_prefix` (python-etcd3's name)."""
    def watch_prefix(
        self,
        key_prefix: _KeyLike,
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Tuple[Iterator[Event], Callable[[], None]]: ...
    def watch_once(
        self,
        key: _KeyLike,
        timeout: Optional[float] = ...,
        *,
        range_end: Optional[_KeyLike] = ...,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
    ) -> Event: ...
    def watch_prefix_once(
        self,
        key_prefix: _KeyLike,
        timeout: Optional[float] = ...,
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
    ) -> Event: ...
    def add_watch_callback(
        self,
        key: _KeyLike,
        callback: Callable[[Union[WatchResponse, Exception]], None],
        *,
        range_end: Optional[_KeyLike] = ...,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> int: ...
    def add_watch_prefix_callback(
        self,
        key_prefix: _KeyLike,
        callback: Callable[[Union[WatchResponse, Exception]], None],
        *,
        start_revision: Optional[int] = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> int: ...
    def cancel_watch(self, watch_id: int) -> None: ...
    def lease(self, ttl: int, lease_id: Optional[int] = ...) -> Lease: ...
    def revoke_lease(self, lease_id: int) -> None: ...
    def refresh_lease(self, lease_id: int) -> int: ...
    def get_lease_info(self, lease_id: int) -> LeaseInfo:
        """python-etcd3's `get_lease_info`; a missing lease raises `LeaseNotFoundError`."""
    def leases(self) -> List[Lease]: ...
    def lock(self, name: str, ttl: int = ...) -> Lock: ...
    def snapshot(self, file: Union[_PathLike, IO[bytes]]) -> Tuple[int, int]:
        """Writes a consistent copy; returns `(revision, size)`: the revision it holds and its
        size in bytes."""
    def defrag(self) -> Tuple[int, int]:
        """Rewrites the file compactly; returns its size in bytes `(before, after)`."""
    def defragment(self) -> Tuple[int, int]:
        """python-etcd3's name for `defrag`."""
    def status(self) -> Status: ...
    def check(self) -> CheckReport: ...
    def hash_kv(self, revision: Optional[int] = ...) -> int: ...
    def hash(self) -> int:
        """python-etcd3's name for `hash_kv()`."""
    def sync(self) -> None: ...
    def checkpoint(self) -> None:
        """Copies the WAL into the main file and empties it (then `status().wal_size` is 0);
        returns None."""
