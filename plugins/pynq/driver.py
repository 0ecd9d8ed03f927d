"""Driving one HLS core: buffers in contiguous memory, registers, the ap_ctrl handshake.

The driver is written against what `pynq` provides (an IP's `read(offset)` and
`write(offset, value)`; `allocate(shape, dtype)` buffers with `physical_address`,
`sync_to_device()` and `sync_from_device()`), so it runs unchanged on a board and on
the register-level model in `sim.py`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from vaccel import log
from vaccel.errors import DeadlineExceededError, PluginFailure

from .registers import AP_DONE, AP_IDLE, AP_START, CTRL, CoreSpec

Allocate = Callable[..., Any]


class BufferCache:
    """Contiguous buffers kept between calls: same role and size, same buffer."""

    def __init__(self, allocate: Allocate, keep: int = 16) -> None:
        self._allocate = allocate
        self._keep = keep
        self._buffers: OrderedDict[tuple[str, int, str], Any] = OrderedDict()
        self.allocations = 0

    def get(self, role: str, count: int, dtype: np.dtype[Any]) -> Any:
        key = (role, count, dtype.str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._allocate(shape=(count,), dtype=dtype)
            self.allocations += 1
            self._buffers[key] = buf
            while len(self._buffers) > self._keep:
                _, old = self._buffers.popitem(last=False)
                _free(old)
        else:
            self._buffers.move_to_end(key)
        return buf

    def close(self) -> None:
        for buf in self._buffers.values():
            _free(buf)
        self._buffers.clear()


def _free(buf: Any) -> None:
    free = getattr(buf, "freebuffer", None)
    if free is not None:
        free()


class HlsCore:
    """One IP core of the overlay: write arguments, start, wait for done."""

    def __init__(self, ip: Any, name: str, spec: CoreSpec, timeout: float) -> None:
        self.ip = ip
        self.name = name
        self.spec = spec
        self.timeout = timeout
        self.runs = 0

    def _set_pointer(self, arg: str, buf: Any) -> None:
        offset = self.spec.pointers[arg]
        address = int(buf.physical_address)
        self.ip.write(offset, address & 0xFFFFFFFF)
        self.ip.write(offset + 4, address >> 32)

    def run(self, pointers: dict[str, Any], scalars: dict[str, int]) -> None:
        """One run: inputs must already be synced to the device; outputs are synced after."""
        ctrl = self.ip.read(CTRL)
        if not ctrl & AP_IDLE:
            raise PluginFailure(message=f"pynq: core {self.name} is busy (ctrl=0x{ctrl:x})")
        for arg, buf in pointers.items():
            self._set_pointer(arg, buf)
        for arg, value in scalars.items():
            self.ip.write(self.spec.scalars[arg], int(value) & 0xFFFFFFFF)
        self.ip.write(CTRL, AP_START)
        self._wait_done()
        self.runs += 1

    def _wait_done(self) -> None:
        deadline = time.monotonic() + self.timeout
        spins = 0
        while True:
            ctrl = self.ip.read(CTRL)
            if ctrl & AP_DONE:
                return
            spins += 1
            if spins > 200:
                if time.monotonic() > deadline:
                    raise DeadlineExceededError(
                        message=f"pynq: core {self.name} did not raise ap_done within "
                        f"{self.timeout:g} s (ctrl=0x{ctrl:x}); is the bitstream loaded "
                        "and the core clocked?"
                    )
                time.sleep(20e-6)


def stream_op(
    core: HlsCore, cache: BufferCache, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
) -> dict[str, np.ndarray[Any, Any]]:
    """Run an element-wise core over arrays of any length, in chunks of its max_len."""
    spec = core.spec
    first = next(iter(inputs.values()))
    total = first.size
    results = {name: np.empty(total, spec.dtype) for name in outputs}
    flat = {name: np.ascontiguousarray(a, spec.dtype).reshape(-1) for name, a in inputs.items()}
    for start in range(0, max(total, 1), spec.max_len):
        count = min(spec.max_len, total - start)
        if count <= 0:
            break
        bufs: dict[str, Any] = {}
        for name, array in flat.items():
            buf = cache.get(f"{core.name}.{name}", count, spec.dtype)
            np.copyto(buf, array[start : start + count])
            buf.sync_to_device()
            bufs[name] = buf
        for name in outputs:
            bufs[name] = cache.get(f"{core.name}.{name}", count, spec.dtype)
        core.run(bufs, {"len": count})
        for name in outputs:
            bufs[name].sync_from_device()
            results[name][start : start + count] = bufs[name]
    if log.enabled(log.DEBUG):
        log.debug(f"[pynq] {core.name}: {total} elements in {-(-total // spec.max_len)} run(s)")
    return {name: r.reshape(first.shape) for name, r in results.items()}


def mmult(
    core: HlsCore, cache: BufferCache, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """C = A @ B for square n x n matrices, tile by tile (tiles of the core's max n)."""
    n = round(a.size**0.5)
    t = min(core.spec.max_len, n)
    A = a.reshape(n, n)
    B = b.reshape(n, n)
    C = np.empty((n, n), np.float32)
    tiles = -(-n // t)
    ta = cache.get(f"{core.name}.a", t * t, core.spec.dtype)
    tb = cache.get(f"{core.name}.b", t * t, core.spec.dtype)
    tc = cache.get(f"{core.name}.c", t * t, core.spec.dtype)
    for i in range(tiles):
        for j in range(tiles):
            for k in range(tiles):
                _load_tile(ta, A, i, k, t)
                _load_tile(tb, B, k, j, t)
                core.run({"a": ta, "b": tb, "c": tc}, {"n": t, "accumulate": int(k > 0)})
            tc.sync_from_device()
            rows = min(t, n - i * t)
            cols = min(t, n - j * t)
            C[i * t : i * t + rows, j * t : j * t + cols] = tc.reshape(t, t)[:rows, :cols]
    return C.reshape(a.shape)


def _load_tile(buf: Any, M: np.ndarray[Any, Any], bi: int, bj: int, t: int) -> None:
    """Copy tile (bi, bj) of M into buf (t x t, zero-padded at the edges), then flush."""
    tile = M[bi * t : (bi + 1) * t, bj * t : (bj + 1) * t]
    view = np.asarray(buf).reshape(t, t)
    if tile.shape != (t, t):
        view[...] = 0
    view[: tile.shape[0], : tile.shape[1]] = tile
    buf.sync_to_device()
