"""The minmax op."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class MinmaxMixin(OpsBase[R]):
    """`minmax`: clip data and report its extremes."""

    def minmax(self, indata: Any, ndata: int, low_threshold: int, high_threshold: int) -> R:
        """Clip the first `ndata` doubles of `indata` to [low, high]; returns (data, min, max).

        `indata` may be bytes of float64 values (then data comes back as bytes), a list
        or an array. Example: `session.minmax([1.0, 5.0], 2, 0, 3)` gives
        `([1.0, 3.0], 1.0, 5.0)` with the numpy plugin.
        """
        return self._op(OpType.MINMAX, indata, ndata, low_threshold, high_threshold)
