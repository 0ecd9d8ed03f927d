"""Cancellation that reaches work already running in the pool.

A call run in the runtime's pool gets a `CallScope`. When its caller gives up (the
call is cancelled or passes its deadline), the scope is cancelled; the plugin notices
at its next `checkpoint()` (the numpy ops check between chunks, the pynq driver while
polling a core) and stops with `CancelledError`. Work that never started never runs.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import CancelledError, DeadlineExceededError

T = TypeVar("T")


class CallScope:
    """One call's cancellation flag and deadline, visible to the thread running it."""

    __slots__ = ("cancelled", "deadline", "reason")

    def __init__(self, deadline: float | None = None) -> None:
        self.cancelled = False
        #: time.monotonic() value after which the work should stop.
        self.deadline = deadline
        self.reason = "the call was cancelled"

    def cancel(self, reason: str = "the call was cancelled") -> None:
        """Ask the work to stop at its next checkpoint."""
        self.reason = reason
        self.cancelled = True

    def check(self) -> None:
        """Raise if the call was cancelled or its deadline passed."""
        if self.cancelled:
            raise CancelledError(message=self.reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceededError(message="the call passed its deadline while running")


_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "vaccel_call_scope", default=None
)


def checkpoint() -> None:
    """Stop here if the current call was cancelled (a no-op outside a scoped call)."""
    scope = _current.get()
    if scope is not None:
        scope.check()


def run_in_scope(scope: CallScope, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` with `scope` as the current call's scope (in a pool thread)."""
    scope.check()  # cancelled while queued: never start
    token = _current.set(scope)
    try:
        return fn(*args)
    finally:
        _current.reset(token)
