"""Blocking native waits that Ctrl-C can interrupt, without polling.

A native wait (a watch's ``recv``, a lock's queue) blocks in Rust with the GIL released until
the engine wakes it: the commit that publishes an event, the grant of a lock, a cancel, or the
store's close. Python runs signal handlers only in the main thread, and only when that thread
returns to the interpreter, so a main thread blocked in Rust would not see Ctrl-C. In the main
thread the native call therefore runs on a helper thread while the main thread waits on a
``threading.Event``: CPython's lock waits are interrupted by signals, so Ctrl-C raises
``KeyboardInterrupt`` at once, and the helper's completion wakes the main thread at once. Other
threads (where ``KeyboardInterrupt`` is never raised) call the native wait directly.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Generic, Optional, TypeVar, cast

T = TypeVar("T")


def wait_seconds(what: str, timeout: Optional[float]) -> Optional[float]:
    """A timeout as the native calls read it: None or beyond ``threading.TIMEOUT_MAX`` waits
    forever, a negative one does not wait, NaN is a ValueError."""
    if timeout is None:
        return None
    seconds = float(timeout)
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    if seconds > threading.TIMEOUT_MAX:
        return None
    return max(seconds, 0.0)


def in_main_thread() -> bool:
    """True in the thread where Python delivers signals (Ctrl-C)."""
    return threading.current_thread() is threading.main_thread()


class PendingCall(Generic[T]):
    """A blocking native call running on a daemon helper thread."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self._call = call
        self._done = threading.Event()
        self._result: Optional[T] = None
        self._error: Optional[BaseException] = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self._call()
        except BaseException as exc:  # handed to the waiter, raised there
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to ``timeout`` seconds (forever if None) for the call to finish; True if it
        has. Ctrl-C interrupts the wait (the call goes on)."""
        return self._done.wait(timeout)

    def result(self) -> T:
        """The call's result, or its exception raised here. Only after :meth:`wait` is True."""
        if self._error is not None:
            raise self._error
        return cast(T, self._result)


def call_interruptibly(call: Callable[[], T], name: str) -> T:
    """Runs the blocking ``call`` so that Ctrl-C in the main thread interrupts the wait for it
    (the call itself goes on in the background; its result is dropped)."""
    if not in_main_thread():
        return call()
    pending = PendingCall(call, name)
    pending.wait()
    return pending.result()
