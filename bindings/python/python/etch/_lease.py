"""Leases, as python-etcd3's ``Lease``."""

from __future__ import annotations

from types import TracebackType
from typing import Any, List, Optional, Type

from etch import _etch
from etch._etch import LeaseNotFoundError


class LeaseInfo:
    """What :meth:`etch.Store.get_lease_info` reports, with the attribute names of etcd's
    ``LeaseTimeToLiveResponse`` (which python-etcd3 returns)."""

    __slots__ = {
        "ID": "The lease id.",
        "TTL": "Seconds left before it expires (rounded up).",
        "grantedTTL": "The TTL it was granted with.",
        "keys": "The keys attached to it.",
    }

    def __init__(self, lease_id: int, ttl: int, granted_ttl: int, keys: List[bytes]) -> None:
        self.ID = lease_id
        self.TTL = ttl
        self.grantedTTL = granted_ttl
        self.keys = keys

    def __repr__(self) -> str:
        return (
            f"LeaseInfo(ID={self.ID}, TTL={self.TTL}, grantedTTL={self.grantedTTL}, "
            f"keys={self.keys!r})"
        )


class Lease:
    """A granted lease. Keys put with it are deleted, at one revision, when it is revoked or
    expires without :meth:`refresh`. Usable as a context manager that revokes it on exit.

    Lease expiry runs on the store's background thread; as in etcd, a reopened store gives
    every lease its full TTL again.
    """

    def __init__(self, native: _etch.NativeStore, lease_id: int, ttl: int) -> None:
        self._native = native
        #: The lease id.
        self.id: int = lease_id
        #: The TTL, in seconds, it was granted with.
        self.ttl: int = ttl

    def revoke(self) -> None:
        """Revokes the lease, deleting its keys."""
        self._native.lease_revoke(self.id)

    def refresh(self) -> int:
        """Renews the lease for its full TTL (a keep-alive); returns the TTL."""
        return int(self._native.lease_keep_alive(self.id))

    @property
    def remaining_ttl(self) -> int:
        """Seconds left before it expires (rounded up)."""
        return int(self._native.lease_time_to_live(self.id, False)[0])

    @property
    def granted_ttl(self) -> int:
        """The TTL it was granted with."""
        return int(self._native.lease_time_to_live(self.id, False)[1])

    @property
    def keys(self) -> List[bytes]:
        """The keys attached to it."""
        return list(self._native.lease_time_to_live(self.id, True)[2])

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            self.revoke()
        except LeaseNotFoundError:
            pass  # expired or revoked already

    def __repr__(self) -> str:
        return f"Lease(id={self.id}, ttl={self.ttl})"
