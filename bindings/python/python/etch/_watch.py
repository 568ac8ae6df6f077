"""Watch events, the blocking event iterator, and callback watches."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List, Optional, Tuple

from etch import _etch
from etch._etch import CompactedError, Error, KVMetadata
from etch._wait import PendingCall, in_main_thread, wait_seconds


class WatchTimedOut(Error, TimeoutError):
    """:meth:`etch.Store.watch_once` saw no event in time."""


class Event:
    """One change of a watched key (python-etcd3's ``Event``)."""

    __slots__ = {
        "key": "The key.",
        "value": "The value after the change (empty for a delete).",
        "meta": "Metadata after the change; for a delete only mod_revision is set.",
        "prev_value": "The value before the change, if prev_kv was asked for and it existed.",
        "prev_meta": "Metadata before the change, as prev_value.",
    }

    def __init__(
        self,
        value: bytes,
        meta: KVMetadata,
        prev: Optional[Tuple[bytes, KVMetadata]],
    ) -> None:
        self.key: bytes = meta.key
        self.value: bytes = value
        self.meta: KVMetadata = meta
        self.prev_value: Optional[bytes] = prev[0] if prev else None
        self.prev_meta: Optional[KVMetadata] = prev[1] if prev else None

    @property
    def create_revision(self) -> int:
        """Revision of the key's creation (0 for a delete)."""
        return self.meta.create_revision

    @property
    def mod_revision(self) -> int:
        """Revision of this change."""
        return self.meta.mod_revision

    @property
    def version(self) -> int:
        """The key's version after the change (0 for a delete)."""
        return self.meta.version

    @property
    def lease_id(self) -> int:
        """The key's lease after the change (0 for none)."""
        return self.meta.lease_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, value={self.value!r}, mod_revision={self.mod_revision})"


class PutEvent(Event):
    """A key was created or updated."""


class DeleteEvent(Event):
    """A key was deleted."""


class WatchResponse:
    """One batch of events (all of one transaction are always together), for callbacks and
    :meth:`etch.Store.watch_responses`."""

    __slots__ = {
        "header_revision": "Store revision when the response was made.",
        "events": "The events, in revision order (all of one transaction together).",
        "caught_up": (
            "True in the one response that completes the replay of a watch started at a past "
            "revision: every matching change up to the revision current when the watch was "
            "created has then been delivered, and what follows is live. It may carry the last "
            "replayed events or none. Never set for a watch from now."
        ),
    }

    def __init__(self, header_revision: int, events: List[Event], caught_up: bool = False) -> None:
        self.header_revision = header_revision
        self.events = events
        self.caught_up = caught_up

    def __repr__(self) -> str:
        return (
            f"WatchResponse(header_revision={self.header_revision}, events={self.events!r}, "
            f"caught_up={self.caught_up})"
        )


def _event(raw: Tuple[bool, bytes, KVMetadata, Any]) -> Event:
    is_put, value, meta, prev = raw
    return (PutEvent if is_put else DeleteEvent)(value, meta, prev)


def _response(raw: Tuple[int, List[Any], bool, int, bool]) -> WatchResponse:
    header, events, canceled, compact_revision, caught_up = raw
    if canceled:
        err = CompactedError(
            f"watch cancelled: the revisions it needed were compacted "
            f"(compact revision {compact_revision})"
        )
        err.compact_revision = compact_revision
        err.compacted_revision = compact_revision  # python-etcd3's spelling
        raise err
    return WatchResponse(header, [_event(e) for e in events], caught_up)


RawResponse = Tuple[int, List[Any], bool, int, bool]


class Receiver:
    """Receives a native watcher's responses; in the main thread the wait can be interrupted
    by Ctrl-C (see ``etch._wait``), and a response that arrives after an interrupted or timed
    out wait is kept for the next :meth:`recv`, so none is lost."""

    def __init__(self, native: _etch.Watcher) -> None:
        self._native = native
        self._pending: Optional[PendingCall[Optional[RawResponse]]] = None

    def recv(self, timeout: Optional[float] = None) -> Optional[RawResponse]:
        """The next raw response within ``timeout`` seconds (forever if None), or None on
        timeout, cancellation or close."""
        if self._pending is None and not in_main_thread():
            return self._native.recv(timeout)
        wait = wait_seconds("timeout", timeout)
        if self._pending is None:
            # What is ready now needs no helper thread (a replay, a burst, a zero timeout).
            ready = self._native.recv(0)
            if ready is not None or wait == 0:
                return ready
            self._pending = PendingCall(lambda: self._native.recv(None), "etch-watch-recv")
        if not self._pending.wait(wait):
            return None
        pending, self._pending = self._pending, None
        return pending.result()


def responses(native: _etch.Watcher) -> Iterator[WatchResponse]:
    """Responses of a native watcher until it is cancelled or the store closes. Raises
    :class:`etch.CompactedError` if compaction overtook the watch."""
    receiver = Receiver(native)
    while True:
        raw = receiver.recv(None)
        if raw is None:
            return
        yield _response(raw)


def events(native: _etch.Watcher) -> Iterator[Event]:
    """Events of a native watcher, one by one."""
    for resp in responses(native):
        yield from resp.events


class CallbackWatch:
    """A watch whose responses are passed to a callback on a daemon thread."""

    def __init__(self, native: _etch.Watcher, callback: Callable[[Any], None], name: str) -> None:
        self._native = native
        self._callback = callback
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for resp in responses(self._native):
                self._callback(resp)
        except Exception as exc:  # handed to the callback, as python-etcd3 does
            self._callback(exc)

    def cancel(self) -> None:
        """Stops the watch and waits for the callback thread (unless called from it)."""
        self._native.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join()
