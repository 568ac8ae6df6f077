"""Leases: grant, keys, remaining TTL, refresh, revoke, expiry, context manager."""

from __future__ import annotations

import time

import pytest

import etch

from conftest import ALL_BACKENDS

#: The core cases run on a file, a cluster member, etch serve and etcd (see conftest.py).
BACKENDS = ALL_BACKENDS


def test_lease_attributes_and_keys(db: etch.Store) -> None:
    lease = db.lease(30)
    assert lease.ttl == 30 and lease.granted_ttl == 30
    assert 29 <= lease.remaining_ttl <= 30
    db.put("a", "1", lease=lease)
    db.put("b", "2", lease=lease.id)
    assert sorted(lease.keys) == [b"a", b"b"]
    assert db.get("a")[1].lease_id == lease.id


def test_revoke_deletes_keys_at_one_revision(db: etch.Store) -> None:
    lease = db.lease(30)
    db.put("a", "1", lease=lease)
    db.put("b", "2", lease=lease)
    events, cancel = db.watch_prefix("")
    lease.revoke()
    a, b = next(events), next(events)
    cancel()
    assert isinstance(a, etch.DeleteEvent) and isinstance(b, etch.DeleteEvent)
    assert a.mod_revision == b.mod_revision
    assert db.get("a") == (None, None)
    with pytest.raises(etch.LeaseNotFoundError):
        lease.refresh()


def test_refresh_and_store_level_lease_calls(db: etch.Store) -> None:
    lease = db.lease(5, lease_id=4242)
    assert lease.id == 4242
    assert lease.refresh() == 5
    assert db.refresh_lease(4242) == 5
    assert [(l.id, l.ttl) for l in db.leases()] == [(4242, 5)]
    db.revoke_lease(4242)
    assert db.leases() == []


def test_lease_expires_and_takes_its_keys(db: etch.Store) -> None:
    lease = db.lease(1)
    db.put("short", "lived", lease=lease)
    deadline = time.monotonic() + 10
    while db.get("short") != (None, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert db.get("short") == (None, None)
    with pytest.raises(etch.LeaseNotFoundError):
        lease.remaining_ttl


def test_lease_context_manager_revokes(db: etch.Store) -> None:
    with db.lease(30) as lease:
        db.put("k", "v", lease=lease)
    assert db.get("k") == (None, None)
    with db.lease(30) as other:
        other.revoke()  # exiting after an explicit revoke is fine


def test_lease_argument_types(db: etch.Store) -> None:
    with pytest.raises(TypeError):
        db.put("k", "v", lease="12")  # type: ignore[arg-type]
