"""Exec ops: run a named function of a library (code execution, see the README)."""

from __future__ import annotations

from typing import Any

from ..enums import OpType
from .base import OpsBase, R


class ExecMixin(OpsBase[R]):
    """`exec` and `exec_with_resource`: call a function the plugin allows."""

    def exec(
        self,
        library: Any,
        symbol: str,
        arg_read: list[Any] | None = None,
        arg_write: list[Any] | None = None,
    ) -> R:
        """Call `symbol` of `library` (a path or a module name) on the read arguments.

        Items that are not `Arg`s are wrapped (`Arg.wrap`). Results are written into the
        write arguments; returns their values, or None when there are none.

        Example: `session.exec("math", "hypot", [3.0, 4.0], [Arg(0.0)])` gives `[5.0]`
        with the numpy plugin and `VACCEL_EXEC_ALLOW=math:hypot`.
        """
        return self._op(OpType.EXEC, library, symbol, arg_read, arg_write)

    def exec_with_resource(
        self,
        resource: Any,
        symbol: str,
        arg_read: list[Any] | None = None,
        arg_write: list[Any] | None = None,
    ) -> R:
        """`exec` of a function in a registered LIB resource.

        Example: `session.exec_with_resource(lib, "f", [1], [Arg(bytearray(4))])`.
        """
        return self._op(OpType.EXEC_WITH_RESOURCE, resource, symbol, arg_read, arg_write)
