"""The FPGA ops of vAccel's PYNQ example (computed for real by the numpy and pynq plugins)."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class FpgaMixin(OpsBase[R]):
    """Vector add, array copy, matrix multiply and parallel add/multiply."""

    def fpga_arraycopy(self, a: Any) -> R:
        """A copy of the int32 array `a`.

        Example: `session.fpga_arraycopy([1, 2, 3])` gives `[1, 2, 3]`.
        """
        return self._op(OpType.FPGA_ARRAYCOPY, a)

    def fpga_mmult(self, a: Any, b: Any) -> R:
        """The product of two square float32 matrices given flat (n*n elements each).

        The noop plugin accepts any length, as vAccel's does.

        Example: `session.fpga_mmult([1, 2, 3, 4], [5, 6, 7, 8])` gives
        `[19.0, 22.0, 43.0, 50.0]` with the numpy plugin.
        """
        return self._op(OpType.FPGA_MMULT, a, b)

    def fpga_parallel(self, a: Any, b: Any) -> R:
        """(a + b, a * b) of two float32 arrays of one length.

        Example: `session.fpga_parallel([1, 2], [3, 4])` gives `([4.0, 6.0], [3.0, 8.0])`.
        """
        return self._op(OpType.FPGA_PARALLEL, a, b)

    def fpga_vadd(self, a: Any, b: Any) -> R:
        """a + b of two float32 arrays of one length.

        Example: `session.fpga_vadd([5.0, 1.0], [-2.2, 1.1])` gives `[2.8, 2.1]` (float32).
        """
        return self._op(OpType.FPGA_VECTORADD, a, b)
