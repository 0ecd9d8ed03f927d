"""A register-level model of the four HLS cores, their AXI-Lite registers and DDR.

It stands in for a board in the tests (and for trying the plugin without one): the
plugin's driver runs unchanged against it. The model is strict where hardware is:

* buffers have a CPU view and a device view; data crosses only on
  `sync_to_device()` / `sync_from_device()` (a forgotten cache flush gives stale data);
* a core computes only when AP_START is written, reading its arguments from the
  registers it was given; every pointer must lie inside an allocated buffer with room
  for the length, else the core records a fault and never raises AP_DONE (a bus
  error hangs real hardware too);
* AP_DONE is clear-on-read; a core can be made to hang (never finish) for timeout tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registers import AP_DONE, AP_IDLE, AP_READY, AP_START, CORES, CTRL, CoreSpec

BASE_ADDRESS = 0x1000_0000
ALIGN = 4096


class SimMemory:
    """Device-side DDR: one array, first-fit allocation of page-aligned regions."""

    def __init__(self, size: int = 1 << 30) -> None:
        self.device = np.zeros(size, np.uint8)  # pages are only touched when used
        self.regions: dict[int, int] = {}  # offset -> size

    def alloc(self, nbytes: int) -> int:
        size = max(ALIGN, -(-nbytes // ALIGN) * ALIGN)
        pos = 0
        for off in sorted(self.regions):
            if off - pos >= size:
                break
            pos = off + self.regions[off]
        if pos + size > self.device.size:
            raise MemoryError(f"simulated CMA exhausted: {nbytes} bytes requested")
        self.regions[pos] = size
        return pos

    def free(self, offset: int) -> None:
        self.regions.pop(offset, None)

    def region(self, address: int, nbytes: int) -> np.ndarray[Any, Any] | None:
        """The device bytes at a physical address, if an allocated buffer holds them all."""
        off = address - BASE_ADDRESS
        for start, size in self.regions.items():
            if start <= off and off + nbytes <= start + size:
                return self.device[off : off + nbytes]
        return None


class SimBuffer(np.ndarray):  # type: ignore[type-arg]
    """What `pynq.allocate` returns: an array with a physical address and cache syncs."""

    physical_address: int
    _memory: SimMemory | None
    _offset: int

    def sync_to_device(self) -> None:
        assert self._memory is not None
        raw = np.ascontiguousarray(self).view(np.uint8).reshape(-1)
        self._memory.device[self._offset : self._offset + raw.size] = raw

    def sync_from_device(self) -> None:
        assert self._memory is not None
        raw = self.view(np.uint8).reshape(-1)
        raw[...] = self._memory.device[self._offset : self._offset + raw.size]

    def freebuffer(self) -> None:
        if self._memory is not None:
            self._memory.free(self._offset)
            self._memory = None


class SimCore:
    """One HLS core's register file and behaviour."""

    def __init__(self, spec: CoreSpec, memory: SimMemory, hang: bool = False) -> None:
        self.spec = spec
        self.memory = memory
        self.hang = hang
        self.regs: dict[int, int] = {}
        self.ctrl = AP_IDLE | AP_READY
        self.runs = 0
        self.faults: list[str] = []

    def read(self, offset: int = 0) -> int:
        if offset == CTRL:
            value = self.ctrl
            self.ctrl &= ~AP_DONE  # clear on read
            return value
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"register writes are 32-bit; got {value:#x}")
        if offset != CTRL:
            self.regs[offset] = value
            return
        if value & AP_START and self.ctrl & AP_IDLE:
            self.ctrl = AP_READY  # running
            if self.hang:
                return
            if self._compute():
                self.runs += 1
                self.ctrl = AP_DONE | AP_IDLE | AP_READY

    def _pointer(self, arg: str, count: int) -> np.ndarray[Any, Any] | None:
        off = self.spec.pointers[arg]
        address = self.regs.get(off, 0) | (self.regs.get(off + 4, 0) << 32)
        nbytes = count * self.spec.dtype.itemsize
        region = self.memory.region(address, nbytes)
        if region is None:
            self.faults.append(
                f"{self.spec.kernel}: {arg} at {address:#x} is not a buffer of {nbytes} bytes"
            )
            return None
        return region.view(self.spec.dtype)

    def _compute(self) -> bool:
        spec = self.spec
        if spec.kernel == "mmult":
            n = self.regs.get(spec.scalars["n"], 0)
            if not 1 <= n <= spec.max_len:
                self.faults.append(f"mmult: n={n} outside 1..{spec.max_len}")
                return False
            a, b, c = (self._pointer(p, n * n) for p in ("a", "b", "c"))
            if a is None or b is None or c is None:
                return False
            product = a.reshape(n, n) @ b.reshape(n, n)
            if self.regs.get(spec.scalars["accumulate"], 0):
                product += c.reshape(n, n)
            c[...] = product.reshape(-1)
            return True
        length = self.regs.get(spec.scalars["len"], 0)
        if not 1 <= length <= spec.max_len:
            self.faults.append(f"{spec.kernel}: len={length} outside 1..{spec.max_len}")
            return False
        views = {p: self._pointer(p, length) for p in spec.pointers}
        if any(v is None for v in views.values()):
            return False
        v: dict[str, Any] = views
        if spec.kernel == "vadd":
            np.add(v["a"], v["b"], out=v["c"])
        elif spec.kernel == "arraycopy":
            v["out"][...] = v["in"]
        else:
            np.add(v["a"], v["b"], out=v["add"])
            np.multiply(v["a"], v["b"], out=v["mult"])
        return True


class SimOverlay:
    """The parts of `pynq.Overlay` the plugin uses: `ip_dict` and IPs as attributes."""

    def __init__(self, cores: dict[str, SimCore]) -> None:
        self._cores = cores
        self.ip_dict = {
            name: {
                "type": f"xilinx.com:hls:{core.spec.kernel}:1.0",
                "phys_addr": 0x4000_0000 + 0x1_0000 * i,
            }
            for i, (name, core) in enumerate(cores.items())
        }

    def __getattr__(self, name: str) -> SimCore:
        try:
            return self.__dict__["_cores"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None


class SimBoard:
    """A simulated board: DDR, an overlay with the chosen cores, `allocate`."""

    def __init__(
        self, ips: list[str] | None = None, hang: set[str] | None = None, memory: int = 1 << 30
    ) -> None:
        self.memory = SimMemory(memory)
        names = ips if ips is not None else [spec.default_ip for spec in CORES.values()]
        cores = {}
        for name in names:
            kernel = name.rsplit("_", 1)[0]
            if kernel not in CORES:
                raise ValueError(f"the model has no core {kernel!r} (IP {name!r})")
            cores[name] = SimCore(CORES[kernel], self.memory, hang=name in (hang or set()))
        self.overlay = SimOverlay(cores)
        self.name = "register-level model"

    def allocate(self, shape: Any, dtype: Any = np.uint32, **_: Any) -> SimBuffer:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        offset = self.memory.alloc(count * dtype.itemsize)
        buf = np.zeros(shape, dtype).view(SimBuffer)
        buf.physical_address = BASE_ADDRESS + offset
        buf._memory = self.memory
        buf._offset = offset
        return buf

    def close(self) -> None:
        pass
