"""What the agent does for each method: a table from method name to handler.

A handler returns its result, or a coroutine for the connection to run as a task.
`op` is special: `parse_op` checks its arguments exactly as the local API does (the op
table's checker, the session's resource rules), and the connection then runs it
inline or in the pool (`vaccel.runtime.Runtime.route`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaccel import __version__
from vaccel.catalogue import CATALOGUE, OpSpec
from vaccel.enums import OpType
from vaccel.errors import BadArgumentError, NotSupportedError
from vaccel.session import AsyncSession

from .config import SETTINGS
from .sessions import OwnedObjects
from .state import AgentState
from .stats import snapshot


def args_of(args: Any, n: int, method: str) -> list[Any]:
    """The positional arguments of a request, checked for count."""
    if not isinstance(args, list) or len(args) != n:
        raise BadArgumentError(
            message=f"{method} takes {n} arguments; got "
            f"{len(args) if isinstance(args, list) else repr(args)}"
        )
    return args


_OPS = {int(op): op for op in CATALOGUE}


def parse_op(
    owned: OwnedObjects, args: Any
) -> tuple[AsyncSession, OpType, OpSpec, tuple[Any, ...]]:
    """An `op` request's session, op, table entry and checked arguments."""
    sid, op_num, op_args = args_of(args, 3, "op")
    session = owned.session(sid)
    op = _OPS.get(op_num) if isinstance(op_num, int) and not isinstance(op_num, bool) else None
    if op is None:
        raise NotSupportedError(message=f"op {op_num!r} is not an operation this agent knows")
    if not isinstance(op_args, list):
        raise BadArgumentError(message=f"arguments of {CATALOGUE[op].method} must be a list")
    spec, checked = session.prepare(op, tuple(op_args))
    return session, op, spec, checked


def _create_args(args: Any) -> list[Any]:
    """resource.create: [type, names, blobs] or [type, names, blobs, digest]."""
    if isinstance(args, list) and len(args) == 4:
        return args
    return args_of(args, 3, "resource.create")


async def _register(owned: OwnedObjects, args: Any, register: bool) -> None:
    sid, rid = args_of(args, 2, "resource.register" if register else "resource.unregister")
    session, resource = owned.session(sid), owned.resource(rid)
    if register:
        await session.register_resource(resource)
    else:
        await session.unregister_resource(resource)


def info(state: AgentState) -> dict[str, Any]:
    """What `vaccel info ADDR` shows: plugins and their ops, version, limits.

    Under `--processes N` the limits are each worker's share (see vaccel.server.workers).
    """
    c = state.config
    return {
        "agent": state.name,
        "version": __version__,
        "plugins": [
            [p.display_name, int(p.type), [int(op) for op in ops], p.version]
            for p, ops in state.runtime.operations()
        ],
        "limits": {
            s.name: getattr(c, s.attr)
            for s in SETTINGS
            if s.name.startswith("max-") or s.name.endswith("-timeout") or s.name == "min-rate"
        },
        "processes": c.processes,
    }


def health(state: AgentState) -> dict[str, str]:
    """SERVING, or NOT_SERVING (and why) while plugins load or the agent drains."""
    if state.draining:
        return {"status": "NOT_SERVING", "reason": "the agent is draining (shutting down)"}
    if not state.serving:
        return {"status": "NOT_SERVING", "reason": "the agent is starting (loading plugins)"}
    return {"status": "SERVING"}


Handler = Callable[[OwnedObjects, AgentState, Any], Any]

METHODS: dict[str, Handler] = {
    "session.create": lambda o, s, a: o.create_session(*args_of(a, 1, "session.create")),
    "session.destroy": lambda o, s, a: o.destroy_session(*args_of(a, 1, "session.destroy")),
    "resource.create": lambda o, s, a: o.create_resource(*_create_args(a)),
    "resource.find": lambda o, s, a: o.find_resource(*args_of(a, 2, "resource.find")),
    "resource.destroy": lambda o, s, a: o.destroy_resource(*args_of(a, 1, "resource.destroy")),
    "resource.register": lambda o, s, a: _register(o, a, True),
    "resource.unregister": lambda o, s, a: _register(o, a, False),
    "agent.info": lambda o, s, a: info(s),
    "agent.stats": lambda o, s, a: snapshot(s),
    "health.check": lambda o, s, a: health(s),
}
#: Methods answered before authentication and without a session.
PUBLIC = frozenset({"health.check"})


def handler_of(method: str) -> Handler:
    """The handler of `method`; NotSupportedError naming the methods served."""
    handler = METHODS.get(method)
    if handler is None:
        names = ", ".join(sorted([*METHODS, "op"]))
        raise NotSupportedError(message=f"unknown method {method!r}; this agent serves {names}")
    return handler
