"""Where a call runs: inline on the caller's thread, or in the runtime's pool.

A hop to the pool costs tens of microseconds, which doubles a cheap op; running a
slow op inline would stall an event loop. The decision is made per call from what the
plugin declares (`Impl.blocking`, `Impl.inline_if`) and from measurement: the time of
each call is recorded per (plugin, op, cost key, size class), and a blocking op whose
calls of that class take under `INLINE_BELOW` seconds runs inline.

A class measured cheap is no promise for the next call: exec's cost depends on its
arguments' values, which its class does not see. An inline call that takes longer than
`INLINE_OVERRUN` is a strike; `STRIKES` of them send the class to the pool for good
(while the class is remembered), so a caller who warms a class up with cheap calls holds
the loop at most that many times, not every time. One strike alone (a GC pause, the
thread preempted on a busy machine) costs a cheap class nothing lasting: its smoothed
cost sends it to the pool until cheap calls bring the average back down.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from .plugin import Impl

#: Calls measured to take less than this run inline (seconds).
INLINE_BELOW = 50e-6
#: An inline call that took longer than this (seconds) held its caller's loop: its class
#: never runs inline again.
INLINE_OVERRUN = 5e-3
#: Overruns after which a class never runs inline again.
STRIKES = 2
#: Calls measured before the measurement is trusted.
SAMPLES = 4
#: Cost classes remembered (least recently used ones are forgotten).
MAX_CLASSES = 1024
_SMOOTHING = 0.25


def size_class(args: tuple[Any, ...]) -> int:
    """Calls of one op whose inputs are within a factor of two in size cost alike."""
    total = 0
    for arg in args:
        nbytes = getattr(arg, "nbytes", None)
        if nbytes is not None:
            total += int(nbytes)
        elif isinstance(arg, (bytes, bytearray, str)):
            total += len(arg)
    return total.bit_length()


class CostModel:
    """Measured call times, and the inline-or-pool decision they support."""

    def __init__(self) -> None:
        #: class -> [smoothed seconds, calls measured, inline calls that overran]
        self._costs: OrderedDict[Hashable, list[float]] = OrderedDict()

    def key(
        self, plugin: str, op: int, impl: Impl, session: Any, args: tuple[Any, ...]
    ) -> Hashable:
        """The cost class of one call."""
        extra = impl.cost_key(session, *args) if impl.cost_key is not None else None
        return (plugin, op, extra, size_class(args))

    def inline(self, impl: Impl, key: Hashable, session: Any, args: tuple[Any, ...]) -> bool:
        """Whether this call runs inline."""
        if not impl.blocking:
            return True
        seen = self._costs.get(key)
        return (
            seen is not None and seen[2] < STRIKES and seen[1] >= SAMPLES and seen[0] < INLINE_BELOW
        )

    def record(self, key: Hashable, seconds: float, inline: bool = False) -> None:
        """One call of class `key` took `seconds` (`inline`: on its caller's loop)."""
        overran = 1.0 if inline and seconds > INLINE_OVERRUN else 0.0
        seen = self._costs.get(key)
        if seen is None:
            self._costs[key] = [seconds, 1.0, overran]
            if len(self._costs) > MAX_CLASSES:
                self._costs.popitem(last=False)
            return
        self._costs.move_to_end(key)
        seen[0] += _SMOOTHING * (seconds - seen[0])
        seen[1] += 1
        seen[2] += overran
