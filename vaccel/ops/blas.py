"""BLAS ops, and sgemm's arguments as plugins get them."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

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


class SgemmArgs(NamedTuple):
    """sgemm's arguments as a plugin gets them, checked by the op table: the sizes and
    leading dimensions as ints, A, B and C as flat float32 arrays (C None when omitted).

    A plugin's sgemm takes `(session, *args)` and reads them as `SgemmArgs(*args)`.
    """

    m: int
    n: int
    k: int
    alpha: float
    a: np.ndarray[Any, Any]
    lda: int
    b: np.ndarray[Any, Any]
    ldb: int
    beta: float
    ldc: int
    c: np.ndarray[Any, Any] | None

    def initial_c(self) -> np.ndarray[Any, Any]:
        """C's initial values as a new m x n float32 matrix: zeros when C was omitted."""
        if self.c is None or self.m == 0:
            return np.zeros((self.m, self.n), np.float32)
        rows = self.c[: self.m * self.ldc].reshape(self.m, self.ldc)
        initial: np.ndarray[Any, Any] = rows[:, : self.n].copy()
        return initial
