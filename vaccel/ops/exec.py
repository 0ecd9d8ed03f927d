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
        """Call the function `symbol` of `library` on the read arguments.

        **This is code execution** where the plugin runs (on the agent, for remote
        calls): the numpy plugin calls only the exact `module:function` names listed in
        `VACCEL_EXEC_ALLOW` there, and refuses everything else.

        Args:
            library: the library: a path (`str` or `Path`) for vAccel's C plugins, a
                Python module name for the numpy plugin.
            symbol: the function's name.
            arg_read: the inputs; items that are not `Arg`s are wrapped (`Arg.wrap`: a
                list of ints becomes int32[], floats float32[], bytes a buffer, ...).
            arg_write: the outputs; the function's results are stored into them in
                order (`Arg.buf`).

        Returns:
            The values stored into `arg_write`, or None when there is none.

        Raises:
            PermissionDeniedError: the function is not on the allow-list.
            NotFoundError: the library or the function does not exist.
            BadArgumentError: an argument cannot be passed.
            PluginFailure: the function raised.

        Examples:
            With `VACCEL_EXEC_ALLOW=math:hypot` where the numpy plugin runs:

            >>> session.exec("math", "hypot", [3.0, 4.0], [Arg(0.0)])
            [5.0]
        """
        return self._op(OpType.EXEC, library, symbol, arg_read, arg_write)

    def exec_with_resource(
        self,
        resource: Any,
        symbol: str,
        arg_read: list[Any] | None = None,
        arg_write: list[Any] | None = None,
    ) -> R:
        """`exec` of a function of a library given as a registered LIB resource.

        Args:
            resource: a `Resource` of type LIB registered with this session (its file
                is the library; through an agent it is shipped there).
            symbol: the function's name.
            arg_read: the inputs, as for `exec`.
            arg_write: the outputs, as for `exec`.

        Returns:
            The values stored into `arg_write`, or None when there is none.

        Raises:
            PermissionDeniedError: the resource is not registered with this session, or
                the function is not allowed.
            BadArgumentError: the resource is not a LIB resource, or an argument cannot
                be passed.
            NotSupportedError: no loaded plugin implements it.

        Examples:
            ```python
            lib = Resource("libmytestlib.so", ResourceType.LIB)
            session.register_resource(lib)
            session.exec_with_resource(lib, "mytestfunc", [Arg(10, ArgType.INT32)],
                                       [Arg(0, ArgType.INT32)])
            ```
        """
        return self._op(OpType.EXEC_WITH_RESOURCE, resource, symbol, arg_read, arg_write)
