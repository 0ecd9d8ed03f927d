"""The minmax op."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class MinmaxMixin(OpsBase[R]):
    """`minmax`: clip data and report its extremes."""

    def minmax(self, indata: Any, ndata: int, low_threshold: int, high_threshold: int) -> R:
        """Clip data to [low, high] and report the extremes of the data given.

        Args:
            indata: float64 values: bytes (of native-order doubles), a list or an array.
            ndata: how many values of `indata` to use (at least 1, at most its length).
            low_threshold: the lower clip bound.
            high_threshold: the upper clip bound (not below `low_threshold`).

        Returns:
            (clipped data, min, max): the data as bytes for bytes, a list for a list, an
            array for an array; min and max are those of the data before clipping.

        Raises:
            BadArgumentError: `indata` holds fewer than `ndata` values, or the bounds
                are reversed.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            >>> session.minmax([1.0, 5.0], 2, 0, 3)
            ([1.0, 3.0], 1.0, 5.0)
        """
        return self._op(OpType.MINMAX, indata, ndata, low_threshold, high_threshold)
