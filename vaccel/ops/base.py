"""The root of the op mixins: every op method is one call of `_op`.

An op method is written once and serves both `Session` and `AsyncSession`: it names
the op and passes the caller's arguments to `_op`, which checks them against the op
table (`vaccel.catalogue`), runs the op through the runtime and shapes the result.
`Session._op` returns the result; `AsyncSession._op` returns a coroutine of it. The
type parameter says which: `Ops[Any]` for the first, `Ops[Awaitable[Any]]` for the second.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..enums import OpType

R = TypeVar("R")


class OpsBase(Generic[R]):
    """What every op mixin calls: run op `op` on the caller's arguments."""

    def _op(self, op: OpType, *args: Any, into: list[Any] | None = None, out: Any = None) -> R:
        """Check `args`, run the op, shape its result (a coroutine in AsyncSession).

        With `into` (genop's write arguments) the results are stored into those `Arg`s
        and the op returns None. With `out` (an array), the result is written into it
        (received straight into it from an agent) and `out` is returned.
        """
        raise NotImplementedError
