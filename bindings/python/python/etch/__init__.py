"""etch: etcd's data model as an embeddable single-file store.

Open a file with :func:`open` and use it as python-etcd3 users use an etcd client::

    import etch

    with etch.open("app.etch") as db:
        db.put("svc/api", "10.0.0.7:8080")
        value, meta = db.get("svc/api")          # (b"10.0.0.7:8080", KVMetadata(...))
        for value, meta in db.get_prefix("svc/"):
            print(meta.key, value)

The same :class:`Store` lives on a remote ``etch serve`` or etcd server
(``etch.connect("127.0.0.1:2379")``, or python-etcd3's ``etch.client(host, port)``) or in an
in-process cluster member (``etch.open(path, cluster={...})``).

Keys and values are bytes; ``str`` is accepted and encoded as UTF-8; anything else raises
``TypeError``. Every error etch raises is an :class:`Error`.
"""

from __future__ import annotations

from etch._etch import (
    CheckReport,
    ClosedError,
    ClusterError,
    DeadlineExceededError,
    CompactedError,
    ConflictError,
    CorruptError,
    DeleteResponse,
    DuplicateKeyError,
    EmptyKeyError,
    Error,
    FutureRevisionError,
    InvalidOptionError,
    InvalidRequestError,
    KeyNotFoundError,
    KeyTooLargeError,
    KVMetadata,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseProvidedError,
    LockedError,
    NewerFormatError,
    NoSpaceError,
    NotEtchFileError,
    PoisonedError,
    PutResponse,
    QuotaExceededError,
    ReadOnlyError,
    RequestTooLargeError,
    ServerError,
    Status,
    StorageError,
    TooManyOpsError,
    TooManyRequestsError,
    UnavailableError,
    UnsupportedError,
    ValueProvidedError,
    WalRepair,
)
from etch._lease import Lease, LeaseInfo
from etch._lock import Lock
from etch._store import ClusterConfig, Store, client, connect, open, restore
from etch._transactions import Compare, Op, Transactions
from etch._watch import DeleteEvent, Event, PutEvent, WatchResponse, WatchTimedOut
from etch._write import WriteBlock, WriteTxn

__version__ = "0.1.0"

__all__ = [
    "CheckReport",
    "ClosedError",
    "ClusterConfig",
    "ClusterError",
    "ConnectionFailedError",
    "ConnectionTimeoutError",
    "DeadlineExceededError",
    "Etcd3Exception",
    "CompactedError",
    "Compare",
    "ConflictError",
    "CorruptError",
    "DeleteEvent",
    "DeleteResponse",
    "DuplicateKeyError",
    "EmptyKeyError",
    "Error",
    "Event",
    "FutureRevisionError",
    "InvalidOptionError",
    "InvalidRequestError",
    "KVMetadata",
    "KeyNotFoundError",
    "KeyTooLargeError",
    "Lease",
    "LeaseInfo",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "Lock",
    "LockedError",
    "NewerFormatError",
    "NoSpaceError",
    "NotEtchFileError",
    "Op",
    "PoisonedError",
    "PutEvent",
    "PutResponse",
    "QuotaExceededError",
    "ReadOnlyError",
    "RevisionCompactedError",
    "RequestTooLargeError",
    "ServerError",
    "Status",
    "StorageError",
    "Store",
    "TooManyOpsError",
    "TooManyRequestsError",
    "Transactions",
    "UnavailableError",
    "UnsupportedError",
    "ValueProvidedError",
    "WalRepair",
    "WatchResponse",
    "WatchTimedOut",
    "WriteBlock",
    "WriteTxn",
    "client",
    "connect",
    "open",
    "restore",
]

# Public classes defined in submodules present themselves as etch.X (reprs, pickling, docs).
for _cls in (Compare, DeleteEvent, Event, Lease, LeaseInfo, Lock, Op, PutEvent, Store,
             Transactions, WatchResponse, WatchTimedOut, WriteBlock, WriteTxn):
    _cls.__module__ = "etch"
del _cls

#: python-etcd3's name for :class:`CompactedError` (which also has its ``compacted_revision``).
RevisionCompactedError = CompactedError

#: python-etcd3's names for the network errors and the base class.
ConnectionFailedError = UnavailableError
ConnectionTimeoutError = DeadlineExceededError
Etcd3Exception = Error
