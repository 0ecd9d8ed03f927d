"""Contiguous (CMA) memory as a budget shared by every call: size classes, leases, LRU.

* Buffers come in a few size classes (pages up to 32 KiB, then four per octave), so a
  chunk's tail of any length reuses a buffer of its class instead of allocating anew.
* A call leases all the buffers it needs at once, and holds them until it returns: a
  leased buffer is never evicted, freed or handed to another call.
* Idle buffers are kept for reuse and evicted least recently used first, whenever a
  lease needs room under the budget or an allocation fails (pynq raises when CMA is
  exhausted or fragmented); then the allocation is retried. A lease that does not fit
  now but would once other calls return waits for them.
* A lease larger than the budget fails at once, naming VACCEL_PYNQ_CMA_BYTES.
* Buffers of a call whose core timed out are quarantined: they stay allocated and are
  never reused (the core may still write into them) until the overlay is reloaded.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vaccel import log
from vaccel.errors import PluginFailure, ResourceExhaustedError

PAGE = 4096
MIN_CLASS = 8192  # pynq on XRT allocates at least 8 KiB anyway
_ids = itertools.count(1)


def size_class(nbytes: int) -> int:
    """The buffer size used for `nbytes`: whole pages, then steps of 1/8 of the next power of 2."""
    n = max(int(nbytes), MIN_CLASS)
    top = 1 << (n - 1).bit_length()
    step = max(PAGE, top // 8)
    return -(-n // step) * step


def fmt_bytes(n: int) -> str:
    """Bytes in words (KiB and MiB), exact."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % (scale // 16) == 0:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


@dataclass(eq=False)
class Buffer:
    """One contiguous buffer of the pool: what `allocate` returned, as raw bytes."""

    raw: Any
    size: int
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def address(self) -> int:
        """Its physical (bus) address."""
        return int(self.raw.physical_address)

    def view(self, dtype: np.dtype[Any], count: int) -> Any:
        """The first `count` elements as `dtype`: a buffer too, with its own cache syncs."""
        return self.raw[: count * dtype.itemsize].view(dtype)


class _AllocationFailed(Exception):
    def __init__(self, nbytes: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.nbytes = nbytes
        self.cause = cause


def _is_allocation_failure(exc: BaseException) -> bool:
    return isinstance(exc, (RuntimeError, MemoryError, OSError))


class BufferPool:
    """Leases contiguous buffers under a byte budget; thread-safe."""

    def __init__(self, allocate: Callable[..., Any], budget: int) -> None:
        self._allocate = allocate
        self.budget = budget
        self._cond = threading.Condition()
        self._idle: OrderedDict[int, Buffer] = OrderedDict()  # oldest first
        self._leased: dict[int, Buffer] = {}
        self._quarantined: dict[int, Buffer] = {}
        self.allocated = 0  # bytes of every live buffer: idle, leased, quarantined
        self.allocations = 0
        self.evictions = 0
        self.retries = 0
        self.waits = 0

    # --- figures -------------------------------------------------------------------------

    @property
    def quarantined_bytes(self) -> int:
        """Bytes held by buffers a faulted core may still write into."""
        return sum(b.size for b in self._quarantined.values())

    @property
    def leased_bytes(self) -> int:
        """Bytes held by calls in progress."""
        return sum(b.size for b in self._leased.values())

    def fits_alone(self, sizes: Sequence[int]) -> bool:
        """Whether buffers of these sizes fit the budget together."""
        return sum(size_class(n) for n in sizes) <= self.budget

    # --- leases ----------------------------------------------------------------------------

    def lease(self, sizes: Sequence[int], what: str = "this call") -> list[Buffer]:
        """Buffers of at least `sizes` bytes, all or none; waits while other calls hold room."""
        classes = [size_class(n) for n in sizes]
        need = sum(classes)
        if need > self.budget:
            raise ResourceExhaustedError(
                message=f"pynq: {what} needs {fmt_bytes(need)} of contiguous memory at once "
                f"({len(classes)} buffers of {', '.join(fmt_bytes(c) for c in classes)}), more "
                f"than the budget VACCEL_PYNQ_CMA_BYTES={self.budget} ({fmt_bytes(self.budget)}) "
                "allows; raise it (the board's CMA permitting) or send smaller inputs"
            )
        failed_alone = 0
        with self._cond:
            while True:
                usable = self.budget - self.quarantined_bytes
                if need > usable:
                    raise ResourceExhaustedError(
                        message=f"pynq: {what} needs {fmt_bytes(need)} of contiguous memory, "
                        f"but {fmt_bytes(self.quarantined_bytes)} of the budget "
                        f"VACCEL_PYNQ_CMA_BYTES={self.budget} is quarantined by a faulted core; "
                        "reload the overlay (VACCEL_PYNQ_RELOAD_ON_FAULT=1) or restart the agent"
                    )
                taken = self._take_idle(classes)
                missing = [i for i, b in enumerate(taken) if b is None]
                room = sum(classes[i] for i in missing)
                while self.allocated + room > self.budget and self._idle:
                    self._evict_oldest()
                if self.allocated + room > self.budget:
                    self._give_back(taken)
                    self.waits += 1
                    self._cond.wait()
                    continue
                try:
                    for i in missing:
                        taken[i] = self._allocate_one(classes[i])
                except _AllocationFailed as exc:
                    self._give_back(taken)
                    if self._leased:
                        self.waits += 1
                        self._cond.wait()  # others will return room; try again then
                        continue
                    failed_alone += 1
                    if failed_alone < 2:
                        while self._idle:
                            self._evict_oldest()
                        continue
                    raise PluginFailure(
                        message=f"pynq: could not allocate {fmt_bytes(exc.nbytes)} of contiguous "
                        f"memory even with no other buffer held ({type(exc.cause).__name__}: "
                        f"{exc.cause}); the board has less free CMA than the budget "
                        f"VACCEL_PYNQ_CMA_BYTES={self.budget} assumes"
                    ) from None
                bufs = [b for b in taken if b is not None]
                for b in bufs:
                    self._leased[b.id] = b
                return bufs

    def release(self, bufs: Sequence[Buffer]) -> None:
        """Return leased buffers for reuse (most recently used last)."""
        self._end_lease(bufs, self._idle)

    def quarantine(self, bufs: Sequence[Buffer]) -> None:
        """Keep leased buffers allocated and out of use until `free_quarantined`."""
        self._end_lease(bufs, self._quarantined)

    def _end_lease(self, bufs: Sequence[Buffer], into: dict[int, Buffer]) -> None:
        """Move those of `bufs` still leased into `into` (last), and wake the waiters."""
        with self._cond:
            for b in bufs:
                if self._leased.pop(b.id, None) is not None:
                    into[b.id] = b
            self._cond.notify_all()

    def free_quarantined(self) -> int:
        """Free every quarantined buffer (after a reload stopped the cores); returns bytes."""
        with self._cond:
            freed = 0
            while self._quarantined:
                _, b = self._quarantined.popitem()
                self._free(b)
                freed += b.size
            self._cond.notify_all()
            return freed

    def evict_idle(self) -> None:
        """Free every idle buffer."""
        with self._cond:
            while self._idle:
                self._evict_oldest()
            self._cond.notify_all()

    def close(self) -> None:
        """Free idle and leased buffers; quarantined ones stay referenced (never reused)."""
        with self._cond:
            for b in [*self._idle.values(), *self._leased.values()]:
                self._free(b)
            self._idle.clear()
            self._leased.clear()

    # --- inside the lock ---------------------------------------------------------------------

    def _take_idle(self, classes: list[int]) -> list[Buffer | None]:
        taken: list[Buffer | None] = []
        for cls in classes:
            found = next((b for b in reversed(self._idle.values()) if b.size == cls), None)
            if found is not None:
                del self._idle[found.id]
            taken.append(found)
        return taken

    def _give_back(self, taken: list[Buffer | None]) -> None:
        for b in taken:
            if b is not None:
                self._idle[b.id] = b
                self._idle.move_to_end(b.id, last=False)  # not used: keep its age

    def _evict_oldest(self) -> None:
        _, b = self._idle.popitem(last=False)
        self._free(b)
        self.evictions += 1

    def _allocate_one(self, size: int) -> Buffer:
        while True:
            try:
                raw = self._allocate(shape=(size,), dtype=np.uint8)
            except Exception as exc:
                if not _is_allocation_failure(exc):
                    raise
                if not self._idle:
                    raise _AllocationFailed(size, exc) from None
                log.debug(f"[pynq] allocating {fmt_bytes(size)} failed ({exc}); evicting")
                self._evict_oldest()
                self.retries += 1
                continue
            self.allocated += size
            self.allocations += 1
            return Buffer(raw, size)

    def _free(self, b: Buffer) -> None:
        self.allocated -= b.size
        free = getattr(b.raw, "freebuffer", None)
        if free is not None:
            free()
