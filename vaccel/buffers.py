"""Warm memory for large arrays: a bounded pool of reusable, already-touched buffers.

Touching fresh pages is slow (on the VMs this project runs on, 0.3-1.8 GB/s, and a VM
hands freed memory back to its host within seconds), while reused warm buffers run at
memory speed. Message data received by clients and agents, and the outputs the numpy
plugin computes into, come from this pool: each large allocation is a view of a pooled
buffer, which returns to the pool once no view of it is left (its reference count says
so). The pool holds at most `limit` bytes; past that, allocations are plain ones.
"""

from __future__ import annotations

import contextvars
import math
import os
import sys
import threading
from typing import Any

import numpy as np

#: Allocations smaller than this come from malloc's own (warm) arenas, not the pool.
MIN_POOLED = 1 << 20
#: The default pool size (VACCEL_BUFFER_POOL bytes overrides it).
DEFAULT_LIMIT = 256 << 20


def _size_class(nbytes: int) -> int:
    """The pooled size for `nbytes`: eight classes per doubling, so a buffer wastes at
    most an eighth (a 128 MiB message plus its padding takes 144 MiB, not 256)."""
    if nbytes <= MIN_POOLED:
        return MIN_POOLED
    step = 1 << max(0, (nbytes - 1).bit_length() - 4)
    return -(-nbytes // step) * step


class BufferPool:
    """Reusable byte buffers of power-of-two sizes, at most `limit` bytes in all."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.held = 0
        self.reused = 0
        self.allocated = 0
        self._free: dict[int, list[np.ndarray[Any, Any]]] = {}
        self._lent: list[np.ndarray[Any, Any]] = []
        self._lock = threading.Lock()

    def array(self, nbytes: int) -> np.ndarray[Any, Any]:
        """A uint8 array of exactly `nbytes` (a view of a pooled buffer when large)."""
        if nbytes < MIN_POOLED:
            return np.empty(nbytes, np.uint8)
        size = _size_class(nbytes)
        with self._lock:
            self._reclaim()
            free = self._free.get(size)
            if free:
                buf = free.pop()
                self.reused += 1
            elif self.held + size <= self.limit:
                buf = np.empty(size, np.uint8)
                self.held += size
                self.allocated += 1
            else:
                return np.empty(nbytes, np.uint8)  # the pool is full: a plain allocation
            self._lent.append(buf)
        return buf[:nbytes]

    def like(self, shape: Any, dtype: Any) -> np.ndarray[Any, Any]:
        """An uninitialised array of `shape` and `dtype` from the pool."""
        dt = np.dtype(dtype)
        count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        nbytes = count * dt.itemsize
        if nbytes < MIN_POOLED:
            return np.empty(shape, dt)
        out: np.ndarray[Any, Any] = self.array(nbytes).view(dt).reshape(shape)
        return out

    def _reclaim(self) -> None:
        """Return buffers nobody holds a view of any more (the lock is held)."""
        keep = []
        for buf in self._lent:
            # One reference in the list, one in `buf`, one as getrefcount's argument.
            if sys.getrefcount(buf) <= 3:
                self._free.setdefault(buf.nbytes, []).append(buf)
            else:
                keep.append(buf)
        self._lent = keep

    def trim(self) -> int:
        """Release every free buffer (their memory goes back to the system); bytes freed."""
        with self._lock:
            self._reclaim()
            freed = sum(b.nbytes for bufs in self._free.values() for b in bufs)
            self._free.clear()
            self.held -= freed
            return freed


def _default_limit() -> int:
    raw = os.environ.get("VACCEL_BUFFER_POOL", "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_LIMIT


#: The process-wide pool (clients, the agent, the numpy plugin).
POOL = BufferPool(_default_limit())


#: The caller's output array of the call in progress (`out=`), for plugins that can
#: write or receive straight into it (the rpc plugin); others' results are copied in.
RECEIVE_INTO: contextvars.ContextVar[np.ndarray[Any, Any] | None] = contextvars.ContextVar(
    "vaccel_receive_into", default=None
)


def check_out(out: Any) -> np.ndarray[Any, Any]:
    """An `out=` argument: a writable, C-contiguous NumPy array."""
    from .errors import BadArgumentError

    if not isinstance(out, np.ndarray) or not out.flags.c_contiguous or not out.flags.writeable:
        raise BadArgumentError(
            message=f"out must be a writable, C-contiguous NumPy array; got {type(out).__name__}"
        )
    return out


def into_out(out: np.ndarray[Any, Any], result: Any, method: str) -> np.ndarray[Any, Any]:
    """Write an op's array result into the caller's `out` (unless it is already there)."""
    from .errors import BadArgumentError

    src = np.asarray(result)
    if result is out or (src.nbytes and src.ctypes.data == out.ctypes.data):
        return out  # received or computed straight into it
    if src.size != out.size or src.dtype != out.dtype:
        raise BadArgumentError(
            message=f"{method}: out holds {out.size} {out.dtype} values; the result has "
            f"{src.size} {src.dtype}"
        )
    out.reshape(-1)[...] = src.reshape(-1)
    return out
