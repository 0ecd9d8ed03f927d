"""The FPGA ops of vAccel's PYNQ example (computed for real by the numpy and pynq plugins)."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class FpgaMixin(OpsBase[R]):
    """Vector add, array copy, matrix multiply and parallel add/multiply."""

    def fpga_arraycopy(self, a: Any, *, out: Any = None) -> R:
        """Copy an array through the accelerator (the pynq plugin's arraycopy core).

        Args:
            a: int32 values: a list, a tuple or a NumPy array of integers in the int32
                range; not empty.
            out: a pyvaccel extension: a C-contiguous array of the result's dtype and size
                to write the result into (through an agent, it is received straight into
                it); `out` is then returned.

        Returns:
            A copy of `a`: a list for a list or tuple, an int32 array for an array.

        Raises:
            BadArgumentError: `a` is empty, not integers, or outside the int32 range.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.fpga_arraycopy([1, 2, 3])
            [1, 2, 3]
        """
        return self._op(OpType.FPGA_ARRAYCOPY, a, out=out)

    def fpga_mmult(self, a: Any, b: Any, *, out: Any = None) -> R:
        """Multiply two square float32 matrices, given flat in row-major order.

        Args:
            a: the n x n left matrix as n*n numbers (list, tuple or array).
            b: the n x n right matrix, as many numbers as `a`.
            out: a pyvaccel extension: a C-contiguous array of the result's dtype and size
                to write the result into (through an agent, it is received straight into
                it); `out` is then returned.

        Returns:
            The n*n elements of a @ b, row-major: a list for lists, a float32 array for
            arrays. The noop plugin accepts any length and returns vAccel's dummy values.

        Raises:
            BadArgumentError: the lengths differ, are not a square, or are zero.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.fpga_mmult([1, 2, 3, 4], [5, 6, 7, 8])
            [19.0, 22.0, 43.0, 50.0]
        """
        return self._op(OpType.FPGA_MMULT, a, b, out=out)

    def fpga_parallel(self, a: Any, b: Any) -> R:
        """Add and multiply two float32 vectors element by element, in one call.

        Args:
            a: float32 values (list, tuple or array); not empty.
            b: as many values as `a`.

        Returns:
            The pair (a + b, a * b): lists for lists, float32 arrays for arrays.

        Raises:
            BadArgumentError: the lengths differ, or `a` is empty or not numbers.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.fpga_parallel([1, 2], [3, 4])
            ([4.0, 6.0], [3.0, 8.0])
        """
        return self._op(OpType.FPGA_PARALLEL, a, b)

    def fpga_vadd(self, a: Any, b: Any, *, out: Any = None) -> R:
        """Add two float32 vectors element by element (the pynq plugin's vadd core).

        Args:
            a: float32 values (list, tuple or array); not empty.
            b: as many values as `a`.
            out: a pyvaccel extension: a C-contiguous array of the result's dtype and size
                to write the result into (through an agent, it is received straight into
                it); `out` is then returned.

        Returns:
            a + b: a list for lists (of the float32 sums as Python floats), a float32
            array for arrays. The noop plugin returns vAccel's dummy 9.1 per element.

        Raises:
            BadArgumentError: the lengths differ, or `a` is empty or not numbers.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.fpga_vadd([1.0, 2.0], [3.0, 4.0])
            [4.0, 6.0]
            >>> session.fpga_vadd(np.array([1, 2], np.float32), np.array([3, 4], np.float32))
            array([4., 6.], dtype=float32)
        """
        return self._op(OpType.FPGA_VECTORADD, a, b, out=out)
