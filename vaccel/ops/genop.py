"""The generic op: any op, named by number, with Arg lists in and out."""

from __future__ import annotations

from typing import Any

from ..opargs import genop_request
from .base import OpsBase, R


class GenopMixin(OpsBase[R]):
    """`genop`: vAccel's generic entry point."""

    def genop(self, arg_read: list[Any], arg_write: list[Any] | None = None) -> R:
        """Run the op named by `arg_read[0]` (an OpType) on the rest of `arg_read`.

        The op's results are written into `arg_write[i].buf` in order; returns None.

        Example: `session.genop([Arg(OpType.FPGA_VECTORADD), Arg(a), Arg(b)], [out])`
        leaves a + b in `out.buf`.
        """
        op, args = genop_request(arg_read)
        return self._op(op, *args, into=list(arg_write or []))
