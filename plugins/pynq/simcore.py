"""One HLS core of the model: its AXI-Lite registers, the ap_ctrl_hs handshake, its DMA.

The register map comes from `simlayout` (the kernels' C signatures), never from the
driver. Accesses are checked as pynq's MMIO checks them (negative or unaligned offsets,
values that are not a Python int or bytes, values wider than 32 bits) and as the core
would take them: a write to a reserved offset, or any write while the core runs, is a
violation. A run:

* starts when AP_START is written while the core is idle; ap_start then reads 1 until
  the core is ready, ap_idle reads 0;
* completes after `latency` reads of the control register (or, for a slow core, at the
  first access `slow` seconds after the start; a hung core never completes until the
  overlay is reloaded); then ap_done and ap_ready read 1 once each (clear on read);
* reads and writes memory as the C source does, whatever the pointers: a bad pointer
  completes and corrupts, and the model reports where the core read or wrote (freed,
  reallocated or foreign memory, past a buffer's end, outside DDR);
* flushes subnormal floats to zero, inputs and results, as the floating-point cores do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .simlayout import ArgRegisters, KernelLayout
from .simmemory import Allocation, SimMemory, SimViolation

AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 1, 2, 4, 8, 0x80
ADDR_RANGE = 0x1_0000  # the s_axilite window of each core in the .hwh
MAX_LEN = 1 << 22  # vadd.cpp, arraycopy.cpp, parallel.cpp
N_MAX = 64  # mmult.cpp


def ftz(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Flush subnormal float32 values to (signed) zero."""
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x)


@dataclass(eq=False)
class Run:
    """A started run: when, and which buffer each pointer pointed into at the start."""

    started: float
    reads_left: float
    owners: dict[str, Allocation | None] = field(default_factory=dict)


class Dma:
    """A core's memory accesses during one run, checked against what it was given."""

    def __init__(self, core: SimCore, run: Run) -> None:
        self.core = core
        self.run = run
        self.problems: list[str] = []

    def _check(self, arg: str, address: int, nbytes: int, verb: str) -> None:
        memory = self.core.memory
        first = self.run.owners.get(arg)
        now = memory.find(address)
        name = self.core.name
        if first is not None and first.freed:
            where = "memory reallocated as " + now.describe() if now else "freed memory"
            self.problems.append(
                f"{name} {verb} {arg} at {address:#x} in {where}: {first.describe()} was "
                "freed while the core ran"
            )
        elif first is None:
            self.problems.append(
                f"{name} {verb} {arg} at {address:#x}, which is {memory.where(address)}, "
                "not a buffer it was given"
            )
        elif address + nbytes > first.address + first.nbytes:
            end = first.address + first.nbytes
            into = "its guard words" if end < first.end else memory.where(end)
            self.problems.append(
                f"{name} {verb} {arg} past the end of {first.describe()}: {nbytes} bytes "
                f"from {address:#x}, into {into}"
            )

    def read(self, arg: str, count: int, dtype: str) -> np.ndarray[Any, Any]:
        """`count` elements at pointer `arg`."""
        dt = np.dtype(dtype)
        address = self.core.pointer(arg, self.problems)
        nbytes = count * dt.itemsize
        data = self.core.memory.read(address, nbytes).view(dt)
        self._check(arg, address, nbytes, "read")
        return data

    def write(self, arg: str, data: np.ndarray[Any, Any]) -> None:
        """Store `data` at pointer `arg` (whatever lies there)."""
        address = self.core.pointer(arg, self.problems)
        self.core.memory.write(address, data)
        self._check(arg, address, data.nbytes, "wrote")


def _vadd(dma: Dma, s: dict[str, int]) -> None:
    n = min(s["len"], MAX_LEN)
    if n > 0:
        a, b = ftz(dma.read("a", n, "float32")), ftz(dma.read("b", n, "float32"))
        dma.write("c", ftz(a + b))


def _arraycopy(dma: Dma, s: dict[str, int]) -> None:
    n = min(s["len"], MAX_LEN)
    if n > 0:
        dma.write("out", dma.read("in", n, "int32"))


def _parallel(dma: Dma, s: dict[str, int]) -> None:
    n = min(s["len"], MAX_LEN)
    if n > 0:
        a, b = ftz(dma.read("a", n, "float32")), ftz(dma.read("b", n, "float32"))
        dma.write("add", ftz(a + b))
        dma.write("mult", ftz(a * b))


def _mmult(dma: Dma, s: dict[str, int]) -> None:
    n = min(s["n"], N_MAX)
    if n < 1:
        return
    a = ftz(dma.read("a", n * n, "float32")).reshape(n, n)
    b = ftz(dma.read("b", n * n, "float32")).reshape(n, n)
    c = np.zeros((n, n), np.float32)
    if s["accumulate"]:
        c = ftz(dma.read("c", n * n, "float32")).reshape(n, n)
    dma.write("c", ftz(c + a @ b).reshape(-1))


BEHAVIOUR: dict[str, Callable[[Dma, dict[str, int]], None]] = {
    "vadd": _vadd,
    "arraycopy": _arraycopy,
    "parallel": _parallel,
    "mmult": _mmult,
}


class SimCore:
    """An HLS core as its driver sees it: `read(offset)` and `write(offset, value)`."""

    def __init__(
        self,
        name: str,
        layout: KernelLayout,
        memory: SimMemory,
        lock: threading.RLock,
        tick: Callable[[], None],
        latency: int = 3,
        hang: bool = False,
        slow: float | None = None,
    ) -> None:
        self.name = name
        self.tick = tick
        self.layout = layout
        self.memory = memory
        self.lock = lock
        self.latency = latency
        self.hang = hang
        self.slow = slow
        self.writable = layout.writable()
        self.regs: dict[int, int] = {}
        self.gie = self.ier = self.isr = 0
        self.auto_restart = 0
        self.run: Run | None = None
        self.done = False
        self.ready = True
        self.runs = 0

    # --- the MMIO interface (pynq's DefaultIP.read/write) --------------------------------

    def read(self, offset: int = 0) -> int:
        """Read a 32-bit register, as pynq's MMIO.read does."""
        _check_offset(offset, "read")
        with self.lock:
            self.tick()
            if offset == 0x00:
                if self.run is not None:
                    self.run.reads_left -= 1
                    if self.run.reads_left <= 0:
                        self._complete()
                value = self._ctrl()
                self.done = self.ready = False  # clear on read
                return value
            if offset == 0x04:
                return self.gie
            if offset == 0x08:
                return self.ier
            if offset == 0x0C:
                return self.isr
            return self.regs.get(offset, 0)

    def write(self, offset: int, value: Any) -> None:
        """Write a 32-bit register, as pynq's MMIO.write does, then as the core takes it."""
        _check_offset(offset, "write")
        if type(value) is bytes:
            if len(value) % 4:
                raise MemoryError("Unaligned write: data length must be multiple of 4.")
            for i, word in enumerate(np.frombuffer(value, "<u4")):
                self.write(offset + 4 * i, int(word))
            return
        if type(value) is not int:
            raise ValueError("Data type must be int or bytes.")
        if not 0 <= value <= 0xFFFF_FFFF:
            raise OverflowError(f"Python integer {value} out of bounds for uint32")
        with self.lock:
            self.tick()
            if offset not in self.writable:
                self.memory.violate(
                    f"{self.name}: write of {value:#x} to reserved offset {offset:#x} "
                    f"(its registers: {_describe(self.layout)})"
                )
            if self.run is not None:
                self.memory.violate(
                    f"{self.name}: write of {value:#x} to {offset:#x} while the core is busy"
                )
            if offset == 0x00:
                self.auto_restart = value & AUTO_RESTART
                if value & AP_START:
                    self._start()
            elif offset == 0x04:
                self.gie = value & 1
            elif offset == 0x08:
                self.ier = value & 3
            elif offset == 0x0C:
                self.isr ^= value & 3  # toggle on write
            else:
                self.regs[offset] = value

    # --- behaviour ---------------------------------------------------------------------

    def _ctrl(self) -> int:
        value = self.auto_restart
        if self.run is not None:
            value |= AP_START  # held until the core is ready
        else:
            value |= AP_IDLE
        if self.done:
            value |= AP_DONE
        if self.ready and self.run is None:
            value |= AP_READY
        return value

    def pointer(self, arg: str, problems: list[str]) -> int:
        """The address in a pointer's registers (32 bits: the HP ports drop the rest)."""
        words = self.layout.arg(arg).words
        address = self.regs.get(words[0], 0)
        if len(words) == 2:
            high = self.regs.get(words[1], 0)
            if high:
                problems.append(
                    f"{self.name}: {arg}'s high address word is {high:#x}; a Zynq-7000 HP "
                    "port carries 32 address bits, so the core would use "
                    f"{address:#x} instead"
                )
        return address

    def scalar(self, placed: ArgRegisters) -> int:
        """A scalar argument's value, as the C `int` it is."""
        raw = self.regs.get(placed.words[0], 0)
        return raw - (1 << 32) if raw & 0x8000_0000 else raw

    def _start(self) -> None:
        if self.auto_restart:
            self.memory.violate(f"{self.name}: auto_restart is not supported by the plugin")
        reads = float("inf") if self.hang or self.slow is not None else float(self.latency)
        run = Run(time.monotonic(), reads)
        for placed in self.layout.args:
            if placed.arg.pointer:
                address = self.regs.get(placed.words[0], 0)  # 32 bits reach the HP port
                owner = self.memory.find(address)
                run.owners[placed.arg.name] = owner
                if owner is not None:
                    others = sorted(set(owner.users) - {self.name})
                    if others:
                        self.memory.violate(
                            f"{self.name} was given {placed.arg.name} in {owner.describe()}, "
                            f"which core(s) {', '.join(others)} still use"
                        )
                    owner.users[self.name] = owner.users.get(self.name, 0) + 1
                    # evictions before the core reads: unflushed data may or may not be there
                    self.memory.evict_some(owner, 0, owner.size)
        self.run = run
        self.done = self.ready = False

    def _complete(self) -> None:
        run = self.run
        assert run is not None
        self.run = None
        scalars = {p.arg.name: self.scalar(p) for p in self.layout.args if not p.arg.pointer}
        dma = Dma(self, run)
        BEHAVIOUR[self.layout.kernel](dma, scalars)
        for owner in run.owners.values():
            if owner is None:
                continue
            left = owner.users.get(self.name, 0) - 1
            if left > 0:
                owner.users[self.name] = left
            else:
                owner.users.pop(self.name, None)
            if not owner.freed:
                # evictions during and after the run: stale dirty lines land on the results
                self.memory.evict_some(owner, 0, owner.size)
                if not self.memory.guards_intact(owner):
                    dma.problems.append(
                        f"{self.name}: the guard words past {owner.describe()} were overwritten"
                    )
        self.runs += 1
        self.done = self.ready = True
        if dma.problems:
            self.memory.violate("; ".join(dict.fromkeys(dma.problems)))

    def tick_self(self) -> None:
        """Let the model's clock move for this core: a slow run that is due completes now."""
        run, slow = self.run, self.slow
        due = run is not None and slow is not None and time.monotonic() - run.started >= slow
        if due and not self.hang:
            self._complete()

    def reset(self) -> None:
        """What a reload of the overlay does to the core: stop it, clear its registers."""
        if self.run is not None:
            for owner in self.run.owners.values():
                if owner is not None:
                    owner.users.pop(self.name, None)
        self.run = None
        self.regs.clear()
        self.gie = self.ier = self.isr = self.auto_restart = 0
        self.done = False
        self.ready = True
        self.hang = False


def _check_offset(offset: Any, verb: str) -> None:
    if offset < 0:
        raise ValueError("Offset cannot be negative.")
    if offset % 4:
        raise MemoryError(f"Unaligned {verb}: offset must be multiple of 4.")
    if offset >= ADDR_RANGE:
        raise IndexError(
            f"index {offset >> 2} is out of bounds for axis 0 with size {ADDR_RANGE >> 2}"
        )


def _describe(layout: KernelLayout) -> str:
    parts = []
    for placed in layout.args:
        words = "/".join(f"{w:#x}" for w in placed.words)
        parts.append(f"{placed.arg.name} {words}")
    return ", ".join(parts)


__all__ = ["SimCore", "SimViolation"]
