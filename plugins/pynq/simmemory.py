"""The model's memory: a PYNQ-Z1's DDR, its CMA pool, the CPU's data cache, and buffers.

* DDR is 512 MiB at physical address 0. The CMA pool is 128 MiB at 0x1780_0000, of
  which the first 8 MiB are held by other users from boot: 120 MiB are left for
  `allocate`, which places page-aligned buffers first-fit and, when nothing fits, fails
  as pynq 3.x on XRT does (`RuntimeError: BO allocation failed: ...`). New buffers are
  zeroed, as the kernel's CMA allocations are.
* Freed memory is poisoned (0xDEADBEEF words); the slack between a buffer's size and
  its page-rounded end holds guard words (0xFEEDFACE), checked after every core run.
* Each buffer has a CPU view (what loads and stores see: the cache over DDR) and a
  shadow of what that view held at its last cache maintenance. A 32-byte line whose
  view differs from its shadow is dirty; dirty lines are written back to DDR at random
  moments (when a core starts or finishes using the buffer), as evictions do.
  `sync_to_device` writes the lines of its range back; `sync_from_device` discards them
  and reloads the range from DDR. Maintenance works on whole lines, as the CPU's does.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MiB = 1 << 20
DDR_SIZE = 512 * MiB
CMA_BASE = 0x1780_0000
CMA_SIZE = 128 * MiB
CMA_HELD = 8 * MiB  # taken at boot (framebuffer, other drivers): 120 MiB left
PAGE = 4096
LINE = 32
POISON = 0xDEADBEEF
GUARD = 0xFEEDFACE


class SimViolation(AssertionError):
    """The model saw something that corrupts memory or breaks the core's protocol."""


@dataclass(eq=False)
class Allocation:
    """One contiguous buffer: where it lives, its CPU view and the view's clean shadow."""

    id: int
    address: int
    size: int  # page-rounded
    nbytes: int  # as requested
    cpu: np.ndarray[Any, np.dtype[np.uint8]]
    shadow: np.ndarray[Any, np.dtype[np.uint8]]
    freed: bool = False
    users: dict[str, int] = field(default_factory=dict)  # core name -> runs using it

    @property
    def end(self) -> int:
        return self.address + self.size

    def describe(self) -> str:
        return f"buffer #{self.id} ({self.nbytes} bytes at {self.address:#x})"


class SimMemory:
    """DDR with a CMA pool, allocation by first fit, and the cache model."""

    def __init__(
        self,
        lock: threading.RLock,
        violate: Callable[[str], None],
        rng: np.random.Generator,
        cma_bytes: int = CMA_SIZE - CMA_HELD,
    ) -> None:
        self.lock = lock
        self.violate = violate
        self.rng = rng
        self.ddr = np.zeros(DDR_SIZE, np.uint8)  # pages are only backed once touched
        self.pool_start = CMA_BASE + CMA_SIZE - cma_bytes
        self.pool_end = CMA_BASE + CMA_SIZE
        self.live: dict[int, Allocation] = {}
        self._starts: list[int] = []
        self.freed: dict[int, Allocation] = {}  # address -> the last buffer freed there
        self._ids = 0
        self._pristine = self.pool_start  # DDR from here on was never written: still zero
        # Set by the board: move the clock (slow runs complete), and do so after raising
        # if the board has seen a violation.
        self.advance: Callable[[], None] = lambda: None
        self.tick: Callable[[], None] = lambda: None

    # --- allocation ------------------------------------------------------------------

    def cma_free(self) -> int:
        """Bytes of the pool not allocated (what /proc/meminfo's CmaFree would say)."""
        return self.pool_end - self.pool_start - sum(a.size for a in self.live.values())

    def alloc(self, nbytes: int) -> Allocation:
        """A zeroed, page-aligned buffer; RuntimeError (as pynq's) when none fits."""
        size = max(PAGE, -(-nbytes // PAGE) * PAGE)
        pos = self.pool_start
        for start in self._starts:
            if start - pos >= size:
                break
            pos = max(pos, self.live[start].end)
        if pos + size > self.pool_end:
            raise RuntimeError(
                f"BO allocation failed: cannot allocate {size} bytes of contiguous memory "
                f"(CMA: {self.cma_free()} bytes free)"
            )
        self._ids += 1
        alloc = Allocation(
            self._ids, pos, size, nbytes, np.zeros(size, np.uint8), np.zeros(size, np.uint8)
        )
        region = self.ddr[pos : pos + size]
        if pos < self._pristine:
            region[: min(nbytes, self._pristine - pos)] = 0
        self._pristine = max(self._pristine, pos + size)
        _fill(region[nbytes:], GUARD, pos + nbytes)
        _fill(alloc.cpu[nbytes:], GUARD, pos + nbytes)
        alloc.shadow[nbytes:] = alloc.cpu[nbytes:]
        self.live[pos] = alloc
        bisect.insort(self._starts, pos)
        return alloc

    def free(self, alloc: Allocation, how: str = "freed") -> None:
        """Give a buffer back; its memory is poisoned. Freeing one in use is a violation."""
        if alloc.freed:
            self.violate(f"{alloc.describe()} freed twice")
            return
        alloc.freed = True
        del self.live[alloc.address]
        self._starts.remove(alloc.address)
        self.freed[alloc.address] = alloc
        _fill(self.ddr[alloc.address : alloc.end], POISON, alloc.address)
        if alloc.users:
            self.violate(
                f"{alloc.describe()} {how} while core(s) {', '.join(sorted(alloc.users))} "
                "still use it (use after free)"
            )

    def find(self, address: int) -> Allocation | None:
        """The live buffer holding `address`, if any."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            alloc = self.live[self._starts[i]]
            if address < alloc.end:
                return alloc
        return None

    def where(self, address: int) -> str:
        """Words for what lies at `address`, for violation messages."""
        alloc = self.find(address)
        if alloc is not None:
            return alloc.describe()
        if address >= DDR_SIZE:
            return "no memory (outside the 512 MiB of DDR: a decode error)"
        if self.pool_start <= address < self.pool_end:
            before = [a for a in self.freed.values() if a.address <= address < a.end]
            return f"free CMA memory{' (was ' + before[0].describe() + ')' if before else ''}"
        return "memory the kernel owns (outside the CMA pool)"

    # --- what cores see ----------------------------------------------------------------

    def read(self, address: int, nbytes: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The DDR bytes a core reads (0xFF past the end of DDR: a decode error)."""
        out = np.full(nbytes, 0xFF, np.uint8)
        stop = min(address + nbytes, DDR_SIZE)
        if address < stop:
            out[: stop - address] = self.ddr[address:stop]
        return out

    def write(self, address: int, data: np.ndarray[Any, Any]) -> None:
        """Store what a core writes; bytes past the end of DDR are lost."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        stop = min(address + raw.size, DDR_SIZE)
        if address < stop:
            self.ddr[address:stop] = raw[: stop - address]
            if address < self.pool_end and stop > self._pristine:
                self._pristine = min(stop, self.pool_end)

    def guards_intact(self, alloc: Allocation) -> bool:
        """Whether the guard words past the buffer's size are as the model left them."""
        if alloc.freed:
            return True
        slack = self.ddr[alloc.address + alloc.nbytes : alloc.end]
        expect = np.empty_like(slack)
        _fill(expect, GUARD, alloc.address + alloc.nbytes)
        return bool(np.array_equal(slack, expect))

    # --- the CPU's cache ---------------------------------------------------------------

    def flush(self, alloc: Allocation, start: int, stop: int) -> None:
        """Write back the lines of [start, stop) (offsets in the buffer)."""
        lo, hi = _lines(start, stop, alloc.size)
        self.ddr[alloc.address + lo : alloc.address + hi] = alloc.cpu[lo:hi]
        alloc.shadow[lo:hi] = alloc.cpu[lo:hi]

    def invalidate(self, alloc: Allocation, start: int, stop: int) -> None:
        """Drop the lines of [start, stop) (dirty data included) and reload them from DDR."""
        lo, hi = _lines(start, stop, alloc.size)
        alloc.cpu[lo:hi] = self.ddr[alloc.address + lo : alloc.address + hi]
        alloc.shadow[lo:hi] = alloc.cpu[lo:hi]

    def evict_some(self, alloc: Allocation, start: int, stop: int, chance: float = 0.5) -> int:
        """Write back a random share of the dirty lines in [start, stop); returns how many."""
        lo, hi = _lines(start, stop, alloc.size)
        cpu = alloc.cpu[lo:hi].reshape(-1, LINE)
        shadow = alloc.shadow[lo:hi].reshape(-1, LINE)
        dirty = np.flatnonzero((cpu != shadow).any(axis=1))
        if not dirty.size:
            return 0
        chosen = dirty[self.rng.random(dirty.size) < chance]
        ddr = self.ddr[alloc.address + lo : alloc.address + hi].reshape(-1, LINE)
        ddr[chosen] = cpu[chosen]
        shadow[chosen] = cpu[chosen]
        return int(chosen.size)


def _lines(start: int, stop: int, size: int) -> tuple[int, int]:
    return start // LINE * LINE, min(size, -(-stop // LINE) * LINE)


def _fill(region: np.ndarray[Any, np.dtype[np.uint8]], word: int, address: int) -> None:
    """Fill `region` (starting at physical `address`) with `word`, aligned on 4 bytes."""
    if not region.size:
        return
    pattern = np.frombuffer(np.array([word], "<u4").tobytes(), np.uint8)
    phase = address % 4
    reps = -(-(region.size + phase) // 4)
    region[...] = np.tile(pattern, reps)[phase : phase + region.size]


class SimBuffer(np.ndarray):  # type: ignore[type-arg]
    """What `pynq.allocate` returns: an array (the CPU view) with a physical address.

    Slices and views are buffers too, covering their part (pynq's PynqBuffer does the
    same); only the buffer `allocate` returned frees the memory (also when collected).
    """

    _alloc: Allocation | None
    _memory: SimMemory | None
    _root: bool

    def __array_finalize__(self, obj: Any) -> None:
        self._alloc = getattr(obj, "_alloc", None)
        self._memory = getattr(obj, "_memory", None)
        self._root = False

    @property
    def _offset(self) -> int:
        assert self._alloc is not None
        return int(
            self.__array_interface__["data"][0] - self._alloc.cpu.__array_interface__["data"][0]
        )

    @property
    def physical_address(self) -> int:
        """The bus address of the first element."""
        assert self._alloc is not None
        return self._alloc.address + self._offset

    device_address = physical_address

    def _range(self, what: str) -> tuple[SimMemory, Allocation, int, int]:
        memory, alloc = self._memory, self._alloc
        if memory is None or alloc is None:
            raise SimViolation(f"{what} on an array that is not a contiguous-memory buffer")
        if alloc.freed:
            memory.violate(f"{what} on {alloc.describe()} after it was freed")
        if not self.flags.c_contiguous:
            raise ValueError(f"{what} needs a contiguous buffer")
        start = self._offset
        return memory, alloc, start, start + self.nbytes

    def _maintain(self, what: str, op: Callable[[Allocation, int, int], None]) -> None:
        memory, alloc, start, stop = self._range(what)
        with memory.lock:
            memory.tick()
            if alloc.users:
                memory.violate(
                    f"{what} on {alloc.describe()} while core(s) "
                    f"{', '.join(sorted(alloc.users))} use it"
                )
            op(alloc, start, stop)

    def sync_to_device(self) -> None:
        """Flush: write the CPU's cached lines of this buffer back to DDR."""
        assert self._memory is not None
        self._maintain("sync_to_device", self._memory.flush)

    def sync_from_device(self) -> None:
        """Invalidate: drop the cached lines so that the CPU reads DDR again."""
        assert self._memory is not None
        self._maintain("sync_from_device", self._memory.invalidate)

    flush = sync_to_device
    invalidate = sync_from_device

    def freebuffer(self) -> None:
        """Free the memory (only the buffer `allocate` returned does anything)."""
        memory, alloc = self._memory, self._alloc
        if not self._root or memory is None or alloc is None or alloc.freed:
            return
        with memory.lock:
            memory.advance()
            memory.free(alloc)

    def __del__(self) -> None:
        memory, alloc = getattr(self, "_memory", None), getattr(self, "_alloc", None)
        if getattr(self, "_root", False) and memory is not None and alloc is not None:
            with memory.lock:
                if not alloc.freed:
                    with contextlib.suppress(SimViolation):  # recorded; a finaliser never raises
                        memory.free(alloc, how="garbage-collected")

    def __enter__(self) -> SimBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.freebuffer()


def new_buffer(memory: SimMemory, shape: Any, dtype: Any) -> SimBuffer:
    """Allocate a buffer of `shape` and `dtype` in the pool (pynq.allocate's contract)."""
    dt = np.dtype(dtype)
    scalar = isinstance(shape, (int, np.integer))
    shape_t = (int(shape),) if scalar else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape_t, dtype=np.int64)) * dt.itemsize
    with memory.lock:
        alloc = memory.alloc(nbytes)
    buf = alloc.cpu[:nbytes].view(dt).reshape(shape_t).view(SimBuffer)
    buf._alloc = alloc
    buf._memory = memory
    buf._root = True
    return buf  # type: ignore[no-any-return]
