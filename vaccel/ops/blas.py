"""BLAS ops."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class BlasMixin(OpsBase[R]):
    """Single-precision matrix multiply (row-major SGEMM)."""

    def sgemm(
        self,
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
        c: Any = None,
    ) -> R:
        """C = alpha * A[m x k] @ B[k x n] + beta * C, row-major with leading dimensions.

        Returns the m*n elements of C (a list for list inputs, an array for arrays). `c`,
        a pyvaccel extension, gives C's initial values (zeros otherwise).

        Example: `session.sgemm(2, 2, 2, 1.0, [1, 2, 3, 4], 2, [1, 0, 0, 1], 2, 0.0, 2)`
        gives `[1.0, 2.0, 3.0, 4.0]`.
        """
        return self._op(OpType.BLAS_SGEMM, m, n, k, alpha, a, lda, b, ldb, beta, ldc, c)
