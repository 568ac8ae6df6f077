"""Type stubs of the native module etch._etch (use the etch package, not this)."""

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from etch import (
    CheckReport as CheckReport,
    ClosedError as ClosedError,
    ClusterError as ClusterError,
    DeadlineExceededError as DeadlineExceededError,
    CompactedError as CompactedError,
    ConflictError as ConflictError,
    CorruptError as CorruptError,
    DeleteResponse as DeleteResponse,
    DuplicateKeyError as DuplicateKeyError,
    EmptyKeyError as EmptyKeyError,
    Error as Error,
    FutureRevisionError as FutureRevisionError,
    InvalidOptionError as InvalidOptionError,
    InvalidRequestError as InvalidRequestError,
    KeyNotFoundError as KeyNotFoundError,
    KeyTooLargeError as KeyTooLargeError,
    KVMetadata as KVMetadata,
    LeaseExistsError as LeaseExistsError,
    LeaseNotFoundError as LeaseNotFoundError,
    LeaseProvidedError as LeaseProvidedError,
    LockedError as LockedError,
    NewerFormatError as NewerFormatError,
    NoSpaceError as NoSpaceError,
    NotEtchFileError as NotEtchFileError,
    PoisonedError as PoisonedError,
    PutResponse as PutResponse,
    QuotaExceededError as QuotaExceededError,
    ReadOnlyError as ReadOnlyError,
    RequestTooLargeError as RequestTooLargeError,
    ServerError as ServerError,
    Status as Status,
    StorageError as StorageError,
    TooManyOpsError as TooManyOpsError,
    TooManyRequestsError as TooManyRequestsError,
    UnavailableError as UnavailableError,
    UnsupportedError as UnsupportedError,
    ValueProvidedError as ValueProvidedError,
    WalRepair as WalRepair,
)

_Key = Union[bytes, bytearray, str]
_Path = Union[str, os.PathLike[str]]
_KV = Tuple[bytes, KVMetadata]
_RawEvent = Tuple[bool, bytes, KVMetadata, Optional[_KV]]

OPTION_NAMES: List[str]

def open(
    path: _Path, cluster: Optional[Dict[str, Any]] = ..., **options: Any
) -> NativeStore: ...
def connect(
    endpoints: List[str],
    *,
    dial_timeout: float = ...,
    request_timeout: float = ...,
    retries: Optional[int] = ...,
    ca_cert: Optional[_Path] = ...,
    cert: Optional[_Path] = ...,
    key: Optional[_Path] = ...,
    server_name: Optional[str] = ...,
    write_attempts: int = ...,
) -> NativeStore: ...
def restore(snapshot: _Path, output: _Path, **options: Any) -> NativeStore: ...
def prefix_end(prefix: _Key) -> bytes: ...

class Watcher:
    def recv(
        self, timeout: Optional[float] = ...
    ) -> Optional[Tuple[int, List[_RawEvent], bool, int, bool]]: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def caught_up(self) -> bool: ...

class LockGuard:
    @property
    def revision(self) -> int: ...
    @property
    def key(self) -> bytes: ...
    def is_held(self) -> bool: ...
    def unlock(self) -> bool: ...

class WriteTxn:
    @property
    def revision(self) -> int: ...
    def get(self, key: _Key) -> Union[_KV, Tuple[None, None]]: ...
    def get_range(self, key: _Key, range_end: _Key) -> List[_KV]: ...
    def put(self, key: _Key, value: _Key) -> None: ...
    def delete(self, key: _Key) -> None: ...
    def commit(self) -> Optional[int]: ...
    def abort(self) -> None: ...

class NativeStore:
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def member_id(self) -> Optional[int]: ...
    @property
    def leader(self) -> Optional[int]: ...
    @property
    def max_txn_ops(self) -> int: ...
    @property
    def write_attempts(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def wal_repair(self) -> Optional[WalRepair]: ...
    def get(self, key: _Key, revision: int = ...) -> Optional[_KV]: ...
    def range(
        self,
        key: _Key,
        range_end: Optional[_Key] = ...,
        *,
        limit: int = ...,
        revision: int = ...,
        sort_order: str = ...,
        sort_target: str = ...,
        keys_only: bool = ...,
        count_only: bool = ...,
        min_mod_revision: int = ...,
        max_mod_revision: int = ...,
        min_create_revision: int = ...,
        max_create_revision: int = ...,
    ) -> Tuple[List[_KV], bool, int, int]: ...
    def put(
        self,
        key: _Key,
        value: _Key,
        *,
        lease: int = ...,
        prev_kv: bool = ...,
        ignore_value: bool = ...,
        ignore_lease: bool = ...,
    ) -> PutResponse: ...
    def delete_range(
        self, key: _Key, range_end: Optional[_Key] = ..., *, prev_kv: bool = ...
    ) -> DeleteResponse: ...
    def txn(
        self, compare: Iterable[Any], success: Iterable[Any], failure: Iterable[Any]
    ) -> Tuple[bool, List[Any]]: ...
    def compact(self, revision: int) -> int: ...
    def lease_grant(self, ttl: int, id: int = ...) -> Tuple[int, int]: ...
    def lease_revoke(self, id: int) -> int: ...
    def lease_keep_alive(self, id: int) -> int: ...
    def lease_time_to_live(self, id: int, keys: bool = ...) -> Tuple[int, int, List[bytes]]: ...
    def lease_list(self) -> List[Tuple[int, int]]: ...
    def watch(
        self,
        key: _Key,
        range_end: Optional[_Key] = ...,
        *,
        start_revision: int = ...,
        prev_kv: bool = ...,
        no_put: bool = ...,
        no_delete: bool = ...,
        progress_notify: Optional[float] = ...,
    ) -> Watcher: ...
    def lock(self, name: str, lease: int, timeout: Optional[float] = ...) -> Optional[LockGuard]: ...
    def begin_write(self) -> WriteTxn: ...
    def snapshot(self, path: _Path) -> Tuple[int, int]: ...
    def hash_kv(self, revision: int = ...) -> int: ...
    def defrag(self) -> Tuple[int, int]: ...
    def status(self) -> Status: ...
    def check(self) -> CheckReport: ...
    def sync(self) -> None: ...
    def checkpoint(self) -> None: ...
    def close(self) -> None: ...
