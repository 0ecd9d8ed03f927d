"""Driving one HLS core: its registers, the ap_ctrl_hs handshake, and the data paths.

The driver is written against what `pynq` provides (an IP's `read(offset)` and
`write(offset, int)`; buffers with `physical_address`, `sync_to_device()` and
`sync_from_device()`), so it runs unchanged on a board and on the register-level model.
Buffers come leased from the pool (`memory.BufferPool`); the functions here only fill,
flush, run and invalidate them.

Cancellation (`vaccel.cancel`): the chunk and tile loops check between runs, and the
wait for ap_done checks while it polls. An ap_ctrl_hs core cannot be stopped, so a call
given up on mid-run leaves its core running: the core is marked `abandoned` and the
fabric keeps the call's buffers until `settle()` sees that run done.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vaccel import log
from vaccel.cancel import checkpoint
from vaccel.errors import DeadlineExceededError, PluginFailure, VaccelError

from .memory import Buffer
from .registers import AP_DONE, AP_IDLE, AP_START, CTRL, CoreSpec


class CoreTimeout(DeadlineExceededError):
    """A core did not finish in time: it may still be running, and writing to memory."""


class CoreNotIdle(PluginFailure):
    """A core was found running before a start: its state is unknown."""


class HlsCore:
    """One IP core of the overlay: write arguments, start, wait for done."""

    def __init__(self, ip: Any, name: str, spec: CoreSpec, timeout: float) -> None:
        self.ip = ip
        self.name = name
        self.spec = spec
        self.timeout = timeout
        self.runs = 0
        #: A run was started and not yet seen done: the core may be writing to memory.
        self.in_flight = False
        #: The run in flight was given up on by its caller (cancelled or past its deadline).
        self.abandoned = False
        self.started = 0.0

    def run(self, pointers: Mapping[str, Buffer], scalars: Mapping[str, int]) -> None:
        """One run: inputs must already be flushed; outputs are to be invalidated after."""
        ctrl = self.ip.read(CTRL)
        if not ctrl & AP_IDLE:
            raise CoreNotIdle(
                message=f"pynq: core {self.name} is not idle before a start (ctrl=0x{ctrl:x})"
            )
        for arg, buf in pointers.items():
            offset = self.spec.pointers[arg]
            address = buf.address
            self.ip.write(offset, address & 0xFFFF_FFFF)
            self.ip.write(offset + 4, (address >> 32) & 0xFFFF_FFFF)
        for arg, value in scalars.items():
            self.ip.write(self.spec.scalars[arg], int(value) & 0xFFFF_FFFF)
        self.in_flight = True
        self.started = time.monotonic()
        self.ip.write(CTRL, AP_START)
        self._wait_done()
        self.in_flight = False
        self.runs += 1

    def settle(self) -> None:
        """Wait until the abandoned run is done (within the timeout, counted from its start).

        The caller's own cancellation still reaches this wait; the run stays abandoned then.
        """
        self._wait_done(abandoned=True)
        self.abandoned = self.in_flight = False
        self.runs += 1

    def _wait_done(self, abandoned: bool = False) -> None:
        deadline = self.started + self.timeout
        spins = 0
        while True:
            ctrl = self.ip.read(CTRL)
            if ctrl & AP_DONE:  # clear on read: this read is the only one that sees it
                return
            spins += 1
            if spins > 200:
                if time.monotonic() > deadline:
                    given_up = " (a run its caller gave up on)" if abandoned else ""
                    raise CoreTimeout(
                        message=f"pynq: core {self.name} did not raise ap_done within "
                        f"{self.timeout:g} s{given_up} (ctrl=0x{ctrl:x}; check that the "
                        "bitstream is loaded and the core clocked)"
                    )
                try:
                    checkpoint()
                except VaccelError:
                    self.abandoned = True  # the core runs on: its buffers are not free yet
                    raise
                time.sleep(20e-6)


def stream_op(
    core: HlsCore,
    bufs: Mapping[str, Buffer],
    inputs: Mapping[str, np.ndarray[Any, Any]],
    outputs: list[str],
    chunk: int,
) -> dict[str, np.ndarray[Any, Any]]:
    """Run an element-wise core over arrays of any length, `chunk` elements per run."""
    dtype = core.spec.dtype
    first = next(iter(inputs.values()))
    total = first.size
    results = {name: np.empty(total, dtype) for name in outputs}
    flat = {name: np.ascontiguousarray(a, dtype).reshape(-1) for name, a in inputs.items()}
    for start in range(0, total, chunk):
        checkpoint()  # between runs: the core is idle, the buffers are ours
        count = min(chunk, total - start)
        for name, array in flat.items():
            view = bufs[name].view(dtype, count)
            np.copyto(view, array[start : start + count])
            view.sync_to_device()
        core.run(bufs, {"len": count})
        for name in outputs:
            view = bufs[name].view(dtype, count)
            view.sync_from_device()
            results[name][start : start + count] = view
    if log.enabled(log.DEBUG):
        log.debug(f"[pynq] {core.name}: {total} elements in {-(-total // chunk)} run(s)")
    return {name: r.reshape(first.shape) for name, r in results.items()}


def mmult(
    core: HlsCore,
    bufs: Mapping[str, Buffer],
    a: np.ndarray[Any, Any],
    b: np.ndarray[Any, Any],
    tile: int,
) -> np.ndarray[Any, Any]:
    """C = A @ B for square n x n matrices, `tile` x `tile` at a time, accumulating over k."""
    n = round(a.size**0.5)
    t = tile
    A = a.reshape(n, n)
    B = b.reshape(n, n)
    C = np.empty((n, n), np.float32)
    tiles = -(-n // t)
    dtype = core.spec.dtype
    ta, tb, tc = (bufs[k].view(dtype, t * t) for k in ("a", "b", "c"))
    for i in range(tiles):
        for j in range(tiles):
            for k in range(tiles):
                checkpoint()
                _load_tile(ta, A, i, k, t)
                _load_tile(tb, B, k, j, t)
                core.run(bufs, {"n": t, "accumulate": int(k > 0)})
            tc.sync_from_device()
            rows = min(t, n - i * t)
            cols = min(t, n - j * t)
            C[i * t : i * t + rows, j * t : j * t + cols] = tc.reshape(t, t)[:rows, :cols]
    result: np.ndarray[Any, Any] = C.reshape(a.shape)
    return result


def _load_tile(buf: Any, M: np.ndarray[Any, Any], bi: int, bj: int, t: int) -> None:
    """Copy tile (bi, bj) of M into buf (t x t, zero-padded at the edges), then flush."""
    tile = M[bi * t : (bi + 1) * t, bj * t : (bj + 1) * t]
    view = np.asarray(buf).reshape(t, t)
    if tile.shape != (t, t):
        view[...] = 0
    view[: tile.shape[0], : tile.shape[1]] = tile
    buf.sync_to_device()
