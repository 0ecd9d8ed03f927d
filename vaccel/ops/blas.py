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
        """Single-precision matrix multiply: C = alpha * A @ B + beta * C, row-major.

        Args:
            m: rows of A and C.
            n: columns of B and C.
            k: columns of A, rows of B.
            alpha: the factor of A @ B.
            a: A as float32 values, row i starting at element i * lda.
            lda: A's leading dimension (at least k).
            b: B as float32 values, row i starting at element i * ldb.
            ldb: B's leading dimension (at least n).
            beta: the factor of C's initial values.
            ldc: C's leading dimension (at least n).
            c: C's initial values, m * ldc of them (a pyvaccel extension; zeros when
                omitted, as in vaccel-python).

        Returns:
            C's m * ldc elements: a list for list inputs, a float32 array for arrays.

        Raises:
            BadArgumentError: a size is negative, a leading dimension too small, or an
                array holds fewer elements than the sizes need.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.sgemm(2, 2, 2, 1.0, [1, 2, 3, 4], 2, [1, 0, 0, 1], 2, 0.0, 2)
            [1.0, 2.0, 3.0, 4.0]
        """
        return self._op(OpType.BLAS_SGEMM, m, n, k, alpha, a, lda, b, ldb, beta, ldc, c)
