"""The numpy plugin: every numeric op computed for real on the CPU.

vadd, arraycopy, mmult (square matrices), parallel (add and multiply), minmax, sgemm with
BLAS semantics (row-major, leading dimensions, alpha and beta), and exec of Python
callables named `module:function` that the configuration allows (VACCEL_EXEC_ALLOW).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from vaccel.enums import OpType, PluginType
from vaccel.errors import BadArgumentError, NotFoundError, PermissionDeniedError
from vaccel.opargs import plain_value
from vaccel.plugin import Impl, Plugin
from vaccel.session import SessionBase

#: Arrays up to this many elements are cheap enough to compute on the event loop.
INLINE_ELEMENTS = 1 << 15


def noop(session: SessionBase) -> None:
    return None


def vadd(session: SessionBase, a: Any, b: Any) -> Any:
    return np.add(a, b)


def arraycopy(session: SessionBase, a: Any) -> Any:
    return a.copy()


def parallel(session: SessionBase, a: Any, b: Any) -> tuple[Any, Any]:
    return np.add(a, b), np.multiply(a, b)


def mmult(session: SessionBase, a: Any, b: Any) -> Any:
    n = round(a.size**0.5)
    product = a.reshape(n, n) @ b.reshape(n, n)
    return product.reshape(a.shape)


def minmax(
    session: SessionBase, indata: Any, ndata: int, low: int, high: int
) -> tuple[Any, float, float]:
    """Clip the data to [low, high]; min and max are those of the input data."""
    return np.clip(indata, low, high), float(indata.min()), float(indata.max())


def _matrix(flat: Any, rows: int, cols: int, ld: int) -> Any:
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), np.float32)
    return as_strided(flat, shape=(rows, cols), strides=(ld * 4, 4), writeable=False)


def sgemm(
    session: SessionBase,
    m: int,
    n: int,
    k: int,
    alpha: float,
    a: Any,
    lda: int,
    b: Any,
    ldb: int,
    beta: float,
    ldc: int,
    c: Any,
) -> Any:
    """Row-major C = alpha * A @ B + beta * C, C returned as m * ldc elements."""
    out = np.zeros(m * ldc, np.float32) if c is None else c[: m * ldc].copy()
    if m == 0 or n == 0:
        return out
    c_view = out.reshape(m, ldc)[:, :n]
    product = _matrix(a, m, k, lda) @ _matrix(b, k, n, ldb)
    c_view[...] = np.float32(alpha) * product + np.float32(beta) * c_view
    return out


def _inline_if_small(*args: Any) -> bool:
    return all(getattr(x, "size", 0) <= INLINE_ELEMENTS for x in args[1:])


class NumpyPlugin(Plugin):
    """Real CPU implementations; array work runs in the pool unless the arrays are small."""

    name = "numpy"
    type = PluginType.CPU | PluginType.SOFTWARE

    def init(self) -> None:
        self.allowed = set(self.config.exec_allow)

    def exec(
        self, session: SessionBase, library: str, symbol: str, read: list[Any], write: list[Any]
    ) -> list[Any]:
        """Call `library.symbol(*read)` if `library:symbol` is on the allow-list."""
        target = f"{library}:{symbol}"
        if target not in self.allowed and f"{library}:*" not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "nothing (VACCEL_EXEC_ALLOW is empty)"
            raise PermissionDeniedError(
                message=f"exec target {target!r} is not on the allow-list; allowed: {allowed}"
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
            OpType.EXEC: Impl(self.exec, blocking=True),
            OpType.MINMAX: arrays(minmax),
            OpType.FPGA_ARRAYCOPY: arrays(arraycopy),
            OpType.FPGA_VECTORADD: arrays(vadd),
            OpType.FPGA_PARALLEL: arrays(parallel),
            OpType.FPGA_MMULT: arrays(mmult),
        }
