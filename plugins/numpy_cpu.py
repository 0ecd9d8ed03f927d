"""The numpy plugin: every numeric op computed for real on the CPU.

vadd, arraycopy, mmult (square matrices), parallel (add and multiply), minmax, sgemm
with BLAS semantics (row-major, leading dimensions, alpha and beta), and exec of Python
callables named exactly `module:function` in the operator's allow-list
(VACCEL_EXEC_ALLOW). exec is code execution: allow only functions that are safe to
call with any arguments a client may send.

Large arrays are processed in chunks with a cancellation checkpoint between them, so a
call whose caller gave up (cancelled, past its deadline) stops within a chunk.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from vaccel.buffers import POOL
from vaccel.cancel import checkpoint
from vaccel.enums import OpType, PluginType
from vaccel.errors import BadArgumentError, NotFoundError, PermissionDeniedError, PluginError
from vaccel.opargs import plain_value, square_side
from vaccel.ops.blas import SgemmArgs
from vaccel.plugin import Impl, Plugin, SessionLike

#: Arrays up to this many elements are cheap enough to compute on the event loop.
INLINE_ELEMENTS = 1 << 15
#: Elements per chunk of the element-wise ops (about a millisecond of work).
CHUNK = 1 << 20
#: Multiply-adds per chunk of the matrix ops (tens of milliseconds at most).
MACS_PER_CHUNK = 1 << 25


def _chunked(n: int) -> range:
    return range(0, n, CHUNK)


def _elementwise(fn: Callable[..., Any], out: Any, *inputs: Any) -> Any:
    """out[...] = fn(*inputs), a chunk at a time, stopping if the call is cancelled."""
    if out.size <= CHUNK:
        fn(*inputs, out=out)
        return out
    flat_out = out.reshape(-1)
    flats = [x.reshape(-1) for x in inputs]
    for start in _chunked(flat_out.size):
        end = start + CHUNK
        fn(*(x[start:end] for x in flats), out=flat_out[start:end])
        checkpoint()
    return out


def noop(session: SessionLike) -> None:
    return None


def vadd(session: SessionLike, a: Any, b: Any) -> Any:
    return _elementwise(np.add, POOL.like(a.shape, a.dtype), a, b)


def _copy(src: Any, out: Any) -> None:
    np.copyto(out, src)


def arraycopy(session: SessionLike, a: Any) -> Any:
    return _elementwise(_copy, POOL.like(a.shape, a.dtype), a)


def parallel(session: SessionLike, a: Any, b: Any) -> tuple[Any, Any]:
    return _elementwise(np.add, POOL.like(a.shape, a.dtype), a, b), _elementwise(
        np.multiply, POOL.like(a.shape, a.dtype), a, b
    )


def mmult(session: SessionLike, a: Any, b: Any) -> Any:
    n = square_side(a, "numpy")
    square_side(b, "numpy")
    left, right = a.reshape(n, n), b.reshape(n, n)
    out = POOL.like((n, n), np.float32)
    rows = max(1, MACS_PER_CHUNK // (n * n))
    for start in range(0, n, rows):
        np.matmul(left[start : start + rows], right, out=out[start : start + rows])
        checkpoint()
    return out.reshape(a.shape)


def minmax(
    session: SessionLike, indata: Any, ndata: int, low: int, high: int
) -> tuple[Any, float, float]:
    """Clip the data to [low, high]; min and max are those of the input data."""
    out = POOL.like(indata.shape, indata.dtype)
    flat_in, flat_out = indata.reshape(-1), out.reshape(-1)
    for start in _chunked(flat_in.size):
        np.clip(flat_in[start : start + CHUNK], low, high, out=flat_out[start : start + CHUNK])
        checkpoint()
    return out, float(indata.min()), float(indata.max())


def _matrix(flat: Any, rows: int, cols: int, ld: int) -> Any:
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), np.float32)
    return as_strided(flat, shape=(rows, cols), strides=(ld * 4, 4), writeable=False)


def sgemm(session: SessionLike, *args: Any) -> Any:
    """Row-major C = alpha * A @ B + beta * C (`SgemmArgs`); returns C's m * n elements."""
    g = SgemmArgs(*args)
    out = g.initial_c()
    if g.m == 0 or g.n == 0:
        return out.reshape(-1)
    left, right = _matrix(g.a, g.m, g.k, g.lda), _matrix(g.b, g.k, g.n, g.ldb)
    rows = max(1, MACS_PER_CHUNK // max(1, g.n * g.k))
    for start in range(0, g.m, rows):
        block = out[start : start + rows]
        block[...] = (
            np.float32(g.alpha) * (left[start : start + rows] @ right) + np.float32(g.beta) * block
        )
        checkpoint()
    return out.reshape(-1)


def _inline_if_small(*args: Any) -> bool:
    return all(getattr(x, "size", 0) <= INLINE_ELEMENTS for x in args[1:])


def _exec_cost_key(session: SessionLike, library: str, symbol: str, *_: Any) -> tuple[str, str]:
    return library, symbol


class NumpyPlugin(Plugin):
    """Real CPU implementations; array work runs in the pool unless the arrays are small."""

    name = "numpy"
    type = PluginType.CPU | PluginType.SOFTWARE

    def init(self) -> None:
        wild = [a for a in self.config.exec_allow if "*" in a or ":" not in a]
        if wild:
            raise PluginError(
                message=f"VACCEL_EXEC_ALLOW takes exact module:function names; {wild[0]!r} is "
                "not one (wildcards are refused: exec runs code on this host)"
            )
        self.allowed = frozenset(self.config.exec_allow)

    def exec(
        self, session: SessionLike, library: str, symbol: str, read: list[Any], write: list[Any]
    ) -> list[Any]:
        """Call `library.symbol(*read)` if `library:symbol` is on the allow-list."""
        target = f"{library}:{symbol}"
        if target not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "nothing"
            raise PermissionDeniedError(
                message=f"exec target {target!r} is not on the allow-list of the runtime that "
                f"runs it (VACCEL_EXEC_ALLOW, set where the numpy plugin runs: on the agent "
                f"for remote calls); it allows {allowed}"
            )
        try:
            fn = getattr(importlib.import_module(library), symbol)
        except (ImportError, AttributeError) as exc:
            raise NotFoundError(message=f"exec target {target!r} not found: {exc}") from exc
        if not callable(fn):
            raise NotFoundError(message=f"exec target {target!r} is not callable")
        result = fn(*read)
        results = list(result) if isinstance(result, (tuple, list)) else [result]
        if write and len(results) != len(write):
            raise BadArgumentError(
                message=f"exec {target}: returned {len(results)} values for {len(write)} "
                "write arguments"
            )
        return [plain_value(v, f"result[{i}] of {target}") for i, v in enumerate(results)]

    def operations(self) -> dict[OpType, Impl]:
        def arrays(fn: Any) -> Impl:
            return Impl(fn, blocking=True, inline_if=_inline_if_small)

        return {
            OpType.NOOP: Impl(noop, blocking=False),
            OpType.BLAS_SGEMM: arrays(sgemm),
            OpType.EXEC: Impl(self.exec, blocking=True, cost_key=_exec_cost_key),
            OpType.MINMAX: arrays(minmax),
            OpType.FPGA_ARRAYCOPY: arrays(arraycopy),
            OpType.FPGA_VECTORADD: arrays(vadd),
            OpType.FPGA_PARALLEL: arrays(parallel),
            OpType.FPGA_MMULT: arrays(mmult),
        }
