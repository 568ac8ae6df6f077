"""Optimistic read-write transactions (etcd's STM idea)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Iterator, List, Optional, Tuple, Type, Union

from etch import _etch
from etch._etch import ConflictError, KVMetadata, prefix_end

KeyLike = Union[bytes, bytearray, str]


def _encode(key: KeyLike) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise TypeError(f"keys and values must be bytes or str, not {type(key).__name__}")


def conflict(attempts: int) -> ConflictError:
    """The ConflictError for a transaction that conflicted ``attempts`` times."""
    err = ConflictError(
        f"transaction conflicted with concurrent writes {attempts} times; giving up"
    )
    err.attempts = attempts
    return err


class WriteTxn:
    """One attempt of an optimistic read-write transaction.

    Reads see one snapshot and are remembered; writes are buffered. At commit the writes apply
    atomically, at one revision, only if nothing read has changed meanwhile (keys read still
    have the mod revision seen, no key of a scanned range changed). See :meth:`etch.Store.write`.
    """

    def __init__(self, native: _etch.WriteTxn) -> None:
        self._native = native
        self._committed: Optional[int] = None

    @property
    def committed_revision(self) -> Optional[int]:
        """After a successful :meth:`commit` (or the end of a ``with store.write()`` block): the
        revision the writes were committed at, or the snapshot's revision if there was nothing
        to write. None before, or after a conflict or an abort."""
        return self._committed

    @property
    def revision(self) -> int:
        """Revision of the snapshot this attempt reads."""
        return int(self._native.revision)

    def get(self, key: KeyLike) -> Union[Tuple[bytes, KVMetadata], Tuple[None, None]]:
        """``(value, meta)`` of ``key`` or ``(None, None)``; a key written in this transaction
        reads back its new value (with zero revisions)."""
        return self._native.get(key)

    def get_range(self, range_start: KeyLike, range_end: KeyLike) -> Iterator[Tuple[bytes, KVMetadata]]:
        """``(value, meta)`` of every key in ``[range_start, range_end)`` as of the snapshot
        (this transaction's own writes are not merged in)."""
        return iter(self._native.get_range(range_start, range_end))

    def get_prefix(self, key_prefix: KeyLike) -> Iterator[Tuple[bytes, KVMetadata]]:
        """``(value, meta)`` of every key starting with ``key_prefix``, as :meth:`get_range`."""
        prefix = _encode(key_prefix)
        if not prefix:
            return self.get_range(b"\0", b"\0")
        return self.get_range(prefix, prefix_end(prefix))

    def put(self, key: KeyLike, value: KeyLike) -> None:
        """Buffers ``key = value``."""
        self._native.put(key, value)

    def delete(self, key: KeyLike) -> None:
        """Buffers the deletion of ``key``."""
        self._native.delete(key)

    def commit(self) -> Optional[int]:
        """Applies the writes unless a read changed. Returns the revision they were committed
        at (the snapshot's revision if there was nothing to write; a revision is never 0, so
        the result is true), or None on a conflict (nothing was written)."""
        revision = self._native.commit()
        self._committed = None if revision is None else int(revision)
        return self._committed

    def abort(self) -> None:
        """Ends the attempt without writing."""
        self._native.abort()


class WriteBlock(WriteTxn):
    """``with store.write() as tx:``: one attempt, committed when the block ends without an
    exception. A ``with`` body cannot be run again, so a conflict raises
    :class:`etch.ConflictError` instead of retrying; use ``store.write(fn)`` to retry."""

    def __enter__(self) -> WriteBlock:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        if self.commit() is None:
            raise conflict(1)

