"""The distributed lock, as python-etcd3's ``Lock``, on the engine's lock recipe."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional, Type

from etch import _etch
from etch._etch import LeaseNotFoundError, LockGuard
from etch._wait import call_interruptibly

#: Lock keys live under this prefix, as python-etcd3's.
LOCK_PREFIX = "/locks/"


class Lock:
    """A lock named ``name`` held with a lease of ``ttl`` seconds.

    Contenders queue in order (the engine's lock recipe: one key per contender, each waiting
    for the deletion of the key created just before it). While held, keep the lease alive with
    :meth:`refresh` more often than every ``ttl`` seconds, or the lock lapses. As a context
    manager it waits for the lock (without a time limit) and releases it on exit.

    One ``Lock`` object stands for one contender: give each thread its own (``store.lock(name)``
    is cheap); the store behind it is shared safely.

    A wait ends the moment the lock is granted (the engine wakes it on the release, no polling).
    Ctrl-C interrupts it with ``KeyboardInterrupt`` and leaves the line (the place's lease is
    revoked); closing the store ends it with :class:`etch.ClosedError`.
    """

    def __init__(self, native: _etch.NativeStore, name: str, ttl: int = 60) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a lock name must be a non-empty str")
        self._native = native
        #: The lock's name.
        self.name = name
        #: The TTL of the lease that holds it.
        self.ttl = ttl
        self._lease_id: Optional[int] = None
        self._guard: Optional[LockGuard] = None

    @property
    def key(self) -> Optional[bytes]:
        """The key holding the lock while it is acquired, else None."""
        return self._guard.key if self._guard else None

    @property
    def revision(self) -> Optional[int]:
        """A fencing token while acquired (the lock key's create revision, growing with every
        new holder), else None."""
        return self._guard.revision if self._guard else None

    def acquire(self, timeout: Optional[float] = 10) -> bool:
        """Waits up to ``timeout`` seconds (forever if None) for the lock. Returns True if it
        is now held, False if the time ran out. The GIL is released while waiting."""
        if self._guard is not None:
            return True
        lease_id, _ = self._native.lease_grant(self.ttl)
        try:
            native, key = self._native, LOCK_PREFIX + self.name
            guard = call_interruptibly(
                lambda: native.lock(key, lease_id, timeout), "etch-lock-wait"
            )
        except BaseException:
            self._revoke(lease_id)
            raise
        if guard is None:
            self._revoke(lease_id)
            return False
        self._lease_id, self._guard = lease_id, guard
        return True

    def release(self) -> bool:
        """Releases the lock; returns False if it was not held."""
        guard, lease_id = self._guard, self._lease_id
        self._guard = self._lease_id = None
        if guard is None or lease_id is None:
            return False
        released = bool(guard.unlock())
        self._revoke(lease_id)
        return released

    def refresh(self) -> int:
        """Keeps the holding lease alive for another ``ttl`` seconds; returns the TTL."""
        if self._lease_id is None:
            raise ValueError(f"lock {self.name!r} is not acquired")
        return int(self._native.lease_keep_alive(self._lease_id))

    def is_acquired(self) -> bool:
        """True if this lock is held (its key exists and its lease has not lapsed)."""
        return self._guard is not None and bool(self._guard.is_held())

    def _revoke(self, lease_id: int) -> None:
        try:
            self._native.lease_revoke(lease_id)
        except LeaseNotFoundError:
            pass  # already expired

    def __enter__(self) -> Lock:
        self.acquire(timeout=None)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lock(name={self.name!r}, ttl={self.ttl}, acquired={self._guard is not None})"
