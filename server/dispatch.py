"""What the agent does for each method; small ops are answered without a task.

`dispatch` checks a request's arguments exactly as the local API would (vaccel.opargs)
and either returns the result at once (a cheap op, run inline) or a coroutine for the
connection to run as a task (blocking work goes to the runtime's bounded pool).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from vaccel import opargs
from vaccel.catalogue import CATALOGUE
from vaccel.enums import OpType
from vaccel.errors import BadArgumentError, NotFoundError, NotSupportedError, VaccelError
from vaccel.runtime import Runtime

from .sessions import OwnedObjects


class Later:
    """A result still to be computed: the connection awaits `coro` in a task."""

    __slots__ = ("coro",)

    def __init__(self, coro: Awaitable[Any]) -> None:
        self.coro = coro


def _args(args: Any, n: int, method: str) -> list[Any]:
    if not isinstance(args, list) or len(args) != n:
        raise BadArgumentError(
            message=f"{method} takes {n} arguments; got "
            f"{len(args) if isinstance(args, list) else repr(args)}"
        )
    return args


_OPS = {int(op): op for op in OpType}


def _op(owned: OwnedObjects, args: Any) -> Any:
    sid, op_num, op_args = _args(args, 3, "op")
    session = owned.session(sid)
    try:
        op = _OPS[op_num]
        checker = opargs.CHECKERS[op]
    except (KeyError, TypeError):
        raise NotSupportedError(
            message=f"op {op_num!r} is not an operation this agent knows"
        ) from None
    if not isinstance(op_args, list):
        raise BadArgumentError(message=f"arguments of {CATALOGUE[op].method} must be a list")
    try:
        checked = checker(*op_args)
    except TypeError as exc:  # wrong number of arguments
        raise BadArgumentError(message=f"{CATALOGUE[op].method}: {exc}") from None
    if not session.opened:
        return Later(session.run_op(op, checked))
    plugin, impl, done, result = session.run_inline(op, checked)
    if done:
        return result
    return Later(session.call_impl(op, plugin, impl, checked))


async def _register(owned: OwnedObjects, args: Any, register: bool) -> None:
    sid, rid = _args(args, 2, "resource.register" if register else "resource.unregister")
    session, resource = owned.session(sid), owned.resource(rid)
    if register:
        await session.register_resource(resource)
    else:
        await session.unregister_resource(resource)


def _info(runtime: Runtime) -> dict[str, Any]:
    return {
        "plugins": [
            [p.display_name, int(p.type), [int(op) for op in ops]]
            for p, ops in runtime.operations()
        ]
    }


Handler = Callable[[OwnedObjects, Any], Any]

METHODS: dict[str, Handler] = {
    "op": _op,
    "session.create": lambda o, a: Later(o.create_session(*_args(a, 1, "session.create"))),
    "session.destroy": lambda o, a: Later(o.destroy_session(*_args(a, 1, "session.destroy"))),
    "resource.create": lambda o, a: o.create_resource(*_args(a, 3, "resource.create")),
    "resource.destroy": lambda o, a: o.destroy_resource(*_args(a, 1, "resource.destroy")),
    "resource.register": lambda o, a: Later(_register(o, a, True)),
    "resource.unregister": lambda o, a: Later(_register(o, a, False)),
    "agent.info": lambda o, a: _info(o.runtime),
}


def dispatch(owned: OwnedObjects, method: str, args: Any) -> Any:
    """The result, or `Later` with the coroutine computing it; VaccelError on a bad call."""
    handler = METHODS.get(method)
    if handler is None:
        raise NotSupportedError(
            message=f"unknown method {method!r}; this agent serves {', '.join(sorted(METHODS))}"
        )
    return handler(owned, args)


__all__ = ["METHODS", "Later", "NotFoundError", "VaccelError", "dispatch"]
