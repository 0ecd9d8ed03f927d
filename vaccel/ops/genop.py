"""The generic op: any op, named by number, with Arg lists in and out."""

from __future__ import annotations

from typing import Any

from ..opargs import genop_request
from .base import OpsBase, R


class GenopMixin(OpsBase[R]):
    """`genop`: vAccel's generic entry point."""

    def genop(self, arg_read: list[Any], arg_write: list[Any] | None = None) -> R:
        """Run any op, named by number, on `Arg` lists (vAccel's generic entry point).

        Args:
            arg_read: `Arg(OpType.X)` first, then the op's arguments as `Arg`s, in the
                order of the op's method.
            arg_write: `Arg`s that receive the op's results, in order (`Arg.buf`).

        Returns:
            None: the results are in `arg_write`.

        Raises:
            BadArgumentError: the first item names no op, or the op's arguments are
                wrong (as for the op's own method).
            NotSupportedError: no loaded plugin implements the op.

        Examples:
            >>> out = Arg(np.zeros(2, np.float32))
            >>> a, b = np.array([1, 2], np.float32), np.array([3, 4], np.float32)
            >>> session.genop([Arg(OpType.FPGA_VECTORADD), Arg(a), Arg(b)], [out])
            >>> out.buf
            array([4., 6.], dtype=float32)
        """
        op, args = genop_request(arg_read)
        return self._op(op, *args, into=list(arg_write or []))
