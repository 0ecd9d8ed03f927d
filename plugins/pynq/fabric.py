"""The fabric: the overlay's cores, the contiguous-memory pool, and calls made safe.

* Calls on one core are serialised by its lock; calls on different cores run in
  parallel. Every call leases its buffers from the pool for its whole run.
* A core that times out (or fails mid-run) is marked faulted, and the buffers of its
  call are quarantined: the core may still be writing into them. With
  VACCEL_PYNQ_RELOAD_ON_FAULT the overlay is programmed again once no call runs, which
  resets every core; then the quarantine is freed and the core serves again. Without
  it, calls to the core fail with a clear "unusable" error.
* A call cancelled or past its deadline stops between runs, or while waiting for its
  core (`vaccel.cancel`). A core cannot be stopped mid-run, so a run its caller gave up on
  keeps its buffers (as `Slot.pending`) until the next call on that core has waited for
  it to finish (`HlsCore.settle`, bounded by the core's timeout; past it, the core is
  faulted as above).
* Inputs are checked for what the fabric cannot do (empty arrays) before anything is
  allocated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import numpy as np

from vaccel import log
from vaccel.errors import (
    BadArgumentError,
    CancelledError,
    DeadlineExceededError,
    PluginError,
    PluginFailure,
    ResourceExhaustedError,
)

from .board import open_board
from .driver import CoreNotIdle, CoreTimeout, HlsCore, mmult, stream_op
from .locks import FabricGate
from .memory import Buffer, BufferPool, fmt_bytes, size_class
from .regcheck import check_registers
from .registers import CORES
from .settings import PynqSettings, default_budget, read_settings

T = TypeVar("T")

#: The pointer arguments that are inputs (the rest are outputs) and the op names.
STREAMS = {
    "vadd": (("a", "b"), ("c",), "fpga_vadd"),
    "arraycopy": (("in",), ("out",), "fpga_arraycopy"),
    "parallel": (("a", "b"), ("add", "mult"), "fpga_parallel"),
}


@dataclass(eq=False)
class Slot:
    """One core and what guards it."""

    kernel: str
    ip: str
    core: HlsCore
    lock: threading.Lock
    fault: str | None = None
    fault_generation: int = 0  # the reload generation the fault belongs to (-1: none helps)
    #: The buffers of a run its caller gave up on, still leased: the core may write them.
    pending: list[Buffer] = field(default_factory=list)


class Fabric:
    """The cores of one overlay, shared by every session and thread of the process."""

    def __init__(self, board: Any, settings: PynqSettings) -> None:
        self.board = board
        self.settings = settings
        found = dict(board.overlay.ip_dict)
        self.slots: dict[str, Slot] = {}
        for kernel, ip in settings.cores.items():
            if ip is None:
                continue
            spec = CORES[kernel]
            if ip not in found:
                raise PluginError(
                    message=f"pynq: the overlay has no IP core {ip!r} for {kernel} (it has: "
                    f"{', '.join(sorted(found)) or 'none'}); build it in (hls/README.md) or "
                    f"map or drop the op with VACCEL_PYNQ_CORES={kernel}=NAME"
                )
            vlnv = str(found[ip].get("type", ""))
            if f":hls:{kernel}:" not in vlnv:
                raise PluginError(
                    message=f"pynq: IP {ip!r} is {vlnv or 'of unknown type'}, not the HLS "
                    f"{kernel} core this plugin drives"
                )
            problem = check_registers(ip, spec, found[ip])
            if problem:
                raise PluginError(message=problem)
            core = HlsCore(getattr(board.overlay, ip), ip, spec, settings.timeout)
            self.slots[kernel] = Slot(kernel, ip, core, threading.Lock())
        if not self.slots:
            raise PluginError(message="pynq: VACCEL_PYNQ_CORES leaves no core to use")
        reported = board.cma_free()
        budget = settings.cma_bytes or default_budget(reported)
        if settings.cma_bytes and reported is not None and settings.cma_bytes > reported:
            log.warning(
                f"[pynq] VACCEL_PYNQ_CMA_BYTES={settings.cma_bytes} is more than the "
                f"{reported} bytes of contiguous memory the board reports free"
            )
        self.pool = BufferPool(board.allocate, budget)
        self.gate = FabricGate()
        self.generation = 0

    @property
    def cores(self) -> dict[str, HlsCore]:
        """The core serving each op."""
        return {k: s.core for k, s in self.slots.items()}

    def close(self) -> None:
        """Free the buffers and release the board."""
        try:
            self.pool.close()
        finally:
            self.board.close()

    # --- the ops -----------------------------------------------------------------------------

    def vadd(self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """c = a + b."""
        return self._stream("vadd", {"a": a, "b": b})["c"]

    def arraycopy(self, a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """A copy of a, made by the core."""
        return self._stream("arraycopy", {"in": a})["out"]

    def parallel(
        self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(a + b, a * b) in one pass."""
        out = self._stream("parallel", {"a": a, "b": b})
        return out["add"], out["mult"]

    def mmult(self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """A @ B for square matrices (flat n*n or n x n)."""
        n = round(a.size**0.5)
        if n == 0:
            raise BadArgumentError(
                message="fpga_mmult: a and b are empty (0 x 0); the fabric multiplies "
                "matrices of at least 1 x 1"
            )
        for m in (a, b):
            if n * n != m.size or m.ndim not in (1, 2) or (m.ndim == 2 and m.shape != (n, n)):
                raise BadArgumentError(
                    message="fpga_mmult: the pynq plugin multiplies square matrices of one "
                    f"size (n*n elements, flat or n x n); got shapes {a.shape} and {b.shape}"
                )
        spec = CORES["mmult"]
        t = min(spec.max_len, n)
        nbytes = t * t * spec.dtype.itemsize
        return self._call(
            "mmult",
            "fpga_mmult",
            {"a": nbytes, "b": nbytes, "c": nbytes},
            lambda core, bufs: mmult(core, bufs, np.asarray(a), np.asarray(b), t),
        )

    def _stream(
        self, kernel: str, inputs: Mapping[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        _, outputs, what = STREAMS[kernel]
        spec = CORES[kernel]
        total = next(iter(inputs.values())).size
        if total == 0:
            raise BadArgumentError(
                message=f"{what}: the input arrays are empty; the fabric needs at least one element"
            )
        chunk = self._chunk(kernel, what)
        nbytes = min(chunk, total) * spec.dtype.itemsize
        return self._call(
            kernel,
            what,
            dict.fromkeys(spec.pointers, nbytes),
            lambda core, bufs: stream_op(core, bufs, inputs, list(outputs), chunk),
        )

    def _chunk(self, kernel: str, what: str) -> int:
        """Elements per run: the core's limit, VACCEL_PYNQ_CHUNK, and what the budget holds."""
        spec = CORES[kernel]
        limit = min(spec.max_len, self.settings.chunk or spec.max_len)
        per_buffer = self.pool.budget // len(spec.pointers)
        lo, hi = 0, limit
        while lo < hi:  # the largest count whose buffers fit the budget together
            mid = (lo + hi + 1) // 2
            if size_class(mid * spec.dtype.itemsize) <= per_buffer:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            least = len(spec.pointers) * size_class(spec.dtype.itemsize)
            raise ResourceExhaustedError(
                message=f"pynq: {what} needs at least {fmt_bytes(least)} of contiguous memory "
                f"at once ({len(spec.pointers)} buffers), more than the budget "
                f"VACCEL_PYNQ_CMA_BYTES={self.pool.budget} ({fmt_bytes(self.pool.budget)}) "
                "allows; raise it"
            )
        return lo

    # --- running a call safely ---------------------------------------------------------------

    def _call(
        self,
        kernel: str,
        what: str,
        sizes: dict[str, int],
        body: Callable[[HlsCore, dict[str, Buffer]], T],
    ) -> T:
        """Run `body` on the kernel's core with leased buffers, handling faults."""
        slot = self.slots[kernel]
        for _attempt in range(2):
            try:
                with self.gate.shared(), slot.lock:
                    if slot.fault is None:
                        try:
                            return self._run(slot, what, sizes, body)
                        except _Faulted:
                            pass  # a run given up on never finished: the slot is faulted now
                    if not self.settings.reload_on_fault or slot.fault_generation < 0:
                        raise PluginFailure(
                            message=f"pynq: core {slot.ip} is unusable: {slot.fault}. Its "
                            "buffers stay quarantined, since it may still write into them; "
                            "set VACCEL_PYNQ_RELOAD_ON_FAULT=1 to reload the overlay after a "
                            "fault, or restart the agent"
                        )
                    generation = slot.fault_generation
            except _Reload as exc:  # this call timed out: reload, then report the timeout
                self._reload(exc.generation)
                raise DeadlineExceededError(message=exc.message) from None
            self._reload(generation)  # another call's fault: reload, then try again
        raise PluginFailure(message=f"pynq: core {slot.ip} faulted again after a reload")

    def _run(
        self,
        slot: Slot,
        what: str,
        sizes: dict[str, int],
        body: Callable[[HlsCore, dict[str, Buffer]], T],
    ) -> T:
        """Lease, run, release; on a failure mid-run, fault the core and quarantine."""
        core = slot.core
        if core.abandoned:
            self._settle(slot)
        bufs = self.pool.lease(list(sizes.values()), what)
        try:
            result = body(core, dict(zip(sizes, bufs, strict=True)))
        except BaseException as exc:
            if core.abandoned:  # given up on mid-run: the core runs on, into these buffers
                slot.pending = bufs
                raise
            if not (core.in_flight or isinstance(exc, CoreNotIdle)):
                self.pool.release(bufs)
                raise
            self._fault(slot, bufs, exc)
        self.pool.release(bufs)
        return result

    def _settle(self, slot: Slot) -> None:
        """Wait for the run an earlier call gave up on; then its buffers are free again."""
        try:
            slot.core.settle()
        except BaseException as exc:
            if isinstance(exc, (CancelledError, DeadlineExceededError)) and not isinstance(
                exc, CoreTimeout
            ):
                raise  # this call was given up on too, while it waited: the run stays pending
            bufs, slot.pending = slot.pending, []
            self._mark_faulted(slot, bufs, exc)
            raise _Faulted from None
        self.pool.release(slot.pending)
        slot.pending = []

    def _fault(self, slot: Slot, bufs: list[Buffer], exc: BaseException) -> NoReturn:
        """A core failed mid-run: fault it, quarantine `bufs`, and raise what the caller sees."""
        self._mark_faulted(slot, bufs, exc)
        if not isinstance(exc, CoreTimeout):
            raise exc
        if self.settings.reload_on_fault:
            raise _Reload(
                f"{exc.message}. The overlay was reloaded (VACCEL_PYNQ_RELOAD_ON_FAULT) "
                f"and {slot.ip} serves again; this call's result is lost",
                slot.fault_generation,
            ) from None
        raise DeadlineExceededError(
            message=f"{exc.message}. The core is now marked faulted and unusable, its "
            "buffers quarantined; set VACCEL_PYNQ_RELOAD_ON_FAULT=1 to reload the "
            "overlay on a fault"
        ) from None

    def _mark_faulted(self, slot: Slot, bufs: list[Buffer], exc: BaseException) -> None:
        # The core may still be running and writing: its buffers are not ours again.
        slot.core.in_flight = slot.core.abandoned = False
        self.pool.quarantine(bufs)
        slot.fault = f"{type(exc).__name__}: {exc}"
        slot.fault_generation = self.generation
        log.error(
            f"[pynq] {slot.ip} faulted ({slot.fault}); "
            f"{fmt_bytes(sum(b.size for b in bufs))} of buffers quarantined"
        )

    def _reload(self, generation: int) -> None:
        """Program the overlay again once no call runs (unless another reload did already)."""
        with self.gate.exclusive():
            if self.generation != generation:
                return
            self.generation += 1
            try:
                self.pool.evict_idle()
                self.board.reload()
            except Exception as exc:
                why = f"reloading the overlay failed ({type(exc).__name__}: {exc})"
                for slot in self.slots.values():
                    slot.fault = why
                    slot.fault_generation = -1  # no further reload attempts
                raise PluginFailure(message=f"pynq: {why}; every core is now unusable") from None
            for slot in self.slots.values():
                slot.core.ip = getattr(self.board.overlay, slot.ip)
                slot.core.in_flight = slot.core.abandoned = False
                slot.fault = None
                self.pool.release(slot.pending)  # the reload stopped the run they served
                slot.pending = []
            freed = self.pool.free_quarantined()
            log.warning(f"[pynq] overlay reloaded after a fault; {fmt_bytes(freed)} unquarantined")


class _Faulted(Exception):
    """A run given up on by an earlier call never finished: its core is faulted now."""


class _Reload(Exception):
    """A timed-out call, to be reported once the overlay has been reloaded."""

    def __init__(self, message: str, generation: int) -> None:
        super().__init__(message)
        self.message = message
        self.generation = generation


def open_fabric(env: Mapping[str, str]) -> Fabric:
    """Read the settings, open the board, check the overlay: a fabric ready for calls."""
    settings = read_settings(env)
    board = open_board(env)
    try:
        return Fabric(board, settings)
    except BaseException:
        board.close()
        raise
