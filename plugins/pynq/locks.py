"""The fabric's gate: calls share it, an overlay reload takes it alone.

Every call holds the gate shared for its whole run (besides its core's own lock, which
serialises calls on one core while calls on different cores run in parallel). A reload
reprograms the whole fabric, so it waits until no call is running and keeps new ones out
until it is done; waiting reloads go first, so a stream of calls cannot starve one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FabricGate:
    """A shared/exclusive lock with waiting exclusive holders served first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the gate along with other calls."""
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the gate alone (no call runs meanwhile)."""
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
