"""Sessions: the application API (vaccel-python compatible), sync and async.

Everything is written once. The op methods come from the mixins of `vaccel.ops`,
each a call of `_op`; `SessionBase.prepare` checks a call against the op table
(`vaccel.catalogue`); opening, closing and resource registration are *plans* (the
steps each plugin hook takes) in `SessionBase`. `Session` drives plans and runs ops
synchronously; `AsyncSession` awaits the same plans and ops, with blocking plugin work
in the runtime's pool.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from . import log
from .buffers import RECEIVE_INTO, check_out, into_out
from .catalogue import CATALOGUE, OpSpec, store_into
from .enums import OpType, PluginType
from .errors import BadArgumentError, PermissionDeniedError, VaccelError
from .ops.blas import BlasMixin
from .ops.exec import ExecMixin
from .ops.fpga import FpgaMixin
from .ops.genop import GenopMixin
from .ops.image import ImageMixin
from .ops.minmax import MinmaxMixin
from .ops.noop import NoopMixin
from .ops.tf import TFMixin
from .ops.tf.lite import TFLiteMixin
from .ops.torch import TorchMixin
from .resource import Resource
from .runtime import Runtime, default_runtime

_session_ids = itertools.count(1)
_RUNDIR_LOCK = threading.Lock()

#: One plugin hook to call: the sync function, its async twin, the arguments.
Step = tuple[Callable[..., Any], Callable[..., Awaitable[Any]], tuple[Any, ...]]
#: A plan yields steps; each step's exception is thrown back into it.
Plan = Generator[Step, None, None]


class SessionBase:
    """What sync and async sessions share: identity, hints, resources, plugin state."""

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise BadArgumentError(
                message=f"flags must be a PluginType or a non-negative int; got {flags!r}"
            )
        self.runtime = runtime if runtime is not None else default_runtime()
        self.id: int = next(_session_ids)
        self.hint: int = int(flags)
        #: The agent's id for this session when it lives on one (0 when local).
        self.remote_id: int = 0
        self.resources: dict[int, Resource] = {}
        #: Private per-plugin state (the rpc plugin keeps its connection and remote id here).
        self.plugin_state: dict[str, Any] = {}
        #: Per-op call counts and seconds, when profiling is enabled: {method: [n, s]}.
        self.profile: dict[str, list[float]] = {}
        self.closed = False
        self.opened = False
        self._rundir: str | None = None

    @property
    def flags(self) -> PluginType:
        """The hints the session was opened with."""
        return PluginType(self.hint)

    @property
    def is_remote(self) -> bool:
        """True when the session lives on an agent (vaccel-python: a remote session id)."""
        return self.remote_id != 0

    @property
    def rundir(self) -> str:
        """A directory for this session's files (results of image ops), removed at close."""
        if self._rundir is None:
            with _RUNDIR_LOCK:  # a plugin's pool thread and the agent may both ask first
                if self._rundir is None:
                    base = self.runtime.rundir or tempfile.gettempdir()
                    self._rundir = tempfile.mkdtemp(prefix=f"session.{self.id}.", dir=base)
        return self._rundir

    @property
    def remote_address(self) -> str | None:
        """The agent this session lives on (rpc plugin), or None when local."""
        for state in self.plugin_state.values():
            address = getattr(state, "address", None)
            if address is not None:
                return str(address)
        return None

    def has_resource(self, resource: Resource) -> bool:
        """Whether `resource` is registered with this session."""
        return self.resources.get(resource.id) is resource

    def resource(self, resource_id: int) -> Resource:
        """A registered resource by id; PermissionDeniedError (EPERM, as vAccel) otherwise."""
        try:
            return self.resources[resource_id]
        except KeyError:
            raise PermissionDeniedError(
                message=f"resource {resource_id} is not registered with session {self.id}"
            ) from None

    # ------------------------------------------------------------------ ops

    def prepare(self, op: OpType, args: tuple[Any, ...]) -> tuple[OpSpec, tuple[Any, ...]]:
        """Check a call as the op table says; the agent runs the same checks."""
        if self.closed:
            raise BadArgumentError(message=f"session {self.id} is closed")
        spec = CATALOGUE.get(op)
        if spec is None:
            raise BadArgumentError(message=f"op {op!r} is not an operation pyvaccel serves")
        try:
            checked = spec.check(*args)
        except TypeError as exc:  # wrong number of arguments
            raise BadArgumentError(message=f"{spec.method}: {exc}") from None
        if spec.resource is not None:
            resource = self.resource(checked[0])
            if resource.type != spec.resource:
                raise BadArgumentError(
                    message=f"{spec.method} needs a {spec.resource.name} resource; resource "
                    f"{resource.id} is {resource.type.name}"
                )
        if log.enabled(log.DEBUG):
            log.debug(f"session:{self.id} Looking for plugin implementing {spec.lookup}")
        return spec, checked

    @staticmethod
    def finish(spec: OpSpec, given: tuple[Any, ...], raw: Any, into: list[Any] | None) -> Any:
        """The caller's result of a call: shaped, or stored into genop's write arguments."""
        result = spec.shape(given, raw)
        if into is None:
            return result
        store_into(into, result)
        return None

    def found(self, plugin_name: str) -> None:
        """Log which plugin serves a call, as vAccel does."""
        if log.enabled(log.DEBUG):
            log.debug(f"Found implementation in {plugin_name} plugin")

    # ------------------------------------------------------------------ plans

    def _open_plan(self) -> Plan:
        done = []
        try:
            for plugin in self.runtime.plugins:
                yield plugin.session_init, plugin.session_init_async, (self,)
                done.append(plugin)
        except BaseException:
            for plugin in reversed(done):
                yield plugin.session_free, plugin.session_free_async, (self,)
            self.closed = True
            raise
        self.opened = True
        self.runtime.closeables.add(self)
        log.debug(f"session:{self.id} New session")

    def _close_plan(self) -> Plan:
        errors: list[VaccelError] = []
        for resource in list(self.resources.values()):
            try:
                yield from self._unregister_plan(resource)
            except VaccelError as exc:
                errors.append(exc)
        for plugin in reversed(self.runtime.plugins):
            try:
                yield plugin.session_free, plugin.session_free_async, (self,)
            except VaccelError as exc:
                errors.append(exc)
        self.closed = True
        self.runtime.closeables.discard(self)
        self._report_profile()
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
        log.debug(f"session:{self.id} Free session")
        if errors:
            raise errors[0]

    def _register_plan(self, resource: Resource) -> Plan:
        if self.closed:
            raise BadArgumentError(message=f"session {self.id} is closed")
        if not isinstance(resource, Resource):
            raise BadArgumentError(message=f"expected a Resource; got {type(resource).__name__}")
        if self.has_resource(resource):
            return
        for plugin in self.runtime.plugins:
            yield plugin.resource_register, plugin.resource_register_async, (self, resource)
        self.resources[resource.id] = resource
        resource.sessions.add(self.id)

    def _unregister_plan(self, resource: Resource) -> Plan:
        if not self.has_resource(resource):
            raise PermissionDeniedError(
                message=f"resource {resource.id} is not registered with session {self.id}"
            )
        for plugin in reversed(self.runtime.plugins):
            yield plugin.resource_unregister, plugin.resource_unregister_async, (self, resource)
        del self.resources[resource.id]
        resource.sessions.discard(self.id)

    def _report_profile(self) -> None:
        if self.profile and log.enabled(log.DEBUG):
            for method, (count, seconds) in sorted(self.profile.items()):
                log.debug(
                    f"session:{self.id} [prof] {method}: total_time: {seconds * 1e9:.0f} nsec "
                    f"nr_entries: {int(count)}"
                )

    def __repr__(self) -> str:
        remote = f" remote_id={self.remote_id}" if self.remote_id else ""
        return f"<{type(self).__name__} id={self.id} flags={self.hint}{remote}>"


#: vaccel-python's name for the shared base.
BaseSession = SessionBase


def _drive(plan: Plan) -> None:
    """Run a plan's steps synchronously."""
    try:
        step = next(plan)
        while True:
            fn, _, args = step
            try:
                fn(*args)
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(None)
    except StopIteration:
        return


async def _adrive(plan: Plan) -> None:
    """Run a plan's steps, awaiting each plugin hook."""
    try:
        step = next(plan)
        while True:
            _, afn, args = step
            try:
                await afn(*args)
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(None)
    except StopIteration:
        return


class Session(
    SessionBase,
    NoopMixin[Any],
    BlasMixin[Any],
    ImageMixin[Any],
    ExecMixin[Any],
    GenopMixin[Any],
    MinmaxMixin[Any],
    FpgaMixin[Any],
    TFMixin[Any],
    TFLiteMixin[Any],
    TorchMixin[Any],
):
    """A vAccel session for synchronous code: `with Session() as s: s.fpga_vadd(a, b)`.

    Opening it runs every plugin's session hook (the rpc plugin creates the session on
    its agent); every operation of `vaccel.ops` is a method. Close it with `close()` or
    a `with` block: its resources are unregistered and, remotely, freed on the agent.

    Args:
        flags: hints: a `PluginType` (or its int) naming the kind of plugin the session
            prefers when several loaded plugins serve an op (`PluginType.TORCH` sends
            image ops to torch); 0 for none.
        runtime: the runtime whose plugins run the ops (default: the process-wide one,
            from the environment, `vaccel.bootstrap()`).

    Raises:
        BadArgumentError: `flags` is not a PluginType or a non-negative int.
        UnavailableError: under the rpc plugin, the agent cannot be reached.
        UnauthenticatedError: the agent wants a token, or refused ours.
        ResourceExhaustedError: the agent's session limit for us is reached.

    Example:
        >>> from vaccel import Config, Runtime, Session
        >>> with Session(runtime=Runtime(Config("numpy", 0))) as s:
        ...     s.fpga_vadd([1.0, 2.0], [3.0, 4.0])
        [4.0, 6.0]
    """

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        super().__init__(flags, runtime=runtime)
        _drive(self._open_plan())

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the session (and its remote twin); safe to call twice."""
        if not self.closed:
            _drive(self._close_plan())

    def close_at_exit(self) -> None:
        """Free the session while the runtime shuts down."""
        self.close()

    def register_resource(self, resource: Resource) -> None:
        """Register a resource with this session (and its plugins).

        Through an agent, the resource's contents are sent to it now.

        Args:
            resource: the `Resource` to register.

        Registering a resource twice does nothing.

        Raises:
            BadArgumentError: `resource` is not a `Resource`, or the session is closed;
                a plugin's own error when it refuses the resource (an inference plugin
                that cannot load a model).
        """
        _drive(self._register_plan(resource))

    def unregister_resource(self, resource: Resource) -> None:
        """Unregister a resource from this session (and from its plugins).

        Args:
            resource: a `Resource` registered with this session.

        Raises:
            PermissionDeniedError: it is not registered with this session.
        """
        _drive(self._unregister_plan(resource))

    def _op(self, op: OpType, *args: Any, into: list[Any] | None = None, out: Any = None) -> Any:
        spec, checked = self.prepare(op, args)
        route = self.runtime.route(self, op, checked, self.hint)
        self.found(route.plugin.display_name)
        if out is None:
            return self.finish(spec, args, self.runtime.run(route, self, op, checked), into)
        token = RECEIVE_INTO.set(check_out(out))
        try:
            raw = self.runtime.run(route, self, op, checked)
        finally:
            RECEIVE_INTO.reset(token)
        return into_out(out, raw, spec.method)


class AsyncSession(
    SessionBase,
    NoopMixin[Awaitable[Any]],
    BlasMixin[Awaitable[Any]],
    ImageMixin[Awaitable[Any]],
    ExecMixin[Awaitable[Any]],
    GenopMixin[Awaitable[Any]],
    MinmaxMixin[Awaitable[Any]],
    FpgaMixin[Awaitable[Any]],
    TFMixin[Awaitable[Any]],
    TFLiteMixin[Awaitable[Any]],
    TorchMixin[Awaitable[Any]],
):
    """The same operations as coroutines; blocking plugin work runs in the runtime's pool.

    Open it with `async with AsyncSession() as s:` (or let the first op open it). Many
    calls may be in flight at once (`asyncio.gather`); cancelling a call's task
    cancels it, on the agent too. Arguments and errors are those of `Session`.

    Example:
        >>> import asyncio
        >>> from vaccel import AsyncSession, Config, Runtime
        >>> async def main():
        ...     async with AsyncSession(runtime=Runtime(Config("numpy", 0))) as s:
        ...         return await s.fpga_vadd([1.0], [2.0])
        >>> asyncio.run(main())
        [3.0]
    """

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        super().__init__(flags, runtime=runtime)
        self._open_lock: asyncio.Lock | None = None

    async def open(self) -> AsyncSession:
        """Run the plugins' session hooks (the rpc plugin creates the remote session)."""
        if self.closed:
            raise BadArgumentError(message=f"session {self.id} is closed")
        if self.opened:
            return self
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self.opened:
                await _adrive(self._open_plan())
        return self

    async def __aenter__(self) -> AsyncSession:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Free the session (and its remote twin); safe to call twice."""
        if self.closed:
            return
        if not self.opened:
            self.closed = True
            return
        await _adrive(self._close_plan())

    def close_at_exit(self) -> None:
        """Forget the session while the runtime shuts down (no loop to await hooks on)."""
        self.closed = True

    async def register_resource(self, resource: Resource) -> None:
        """Register a resource with this session (and its plugins)."""
        await self.open()
        await _adrive(self._register_plan(resource))

    async def unregister_resource(self, resource: Resource) -> None:
        """Unregister a resource from this session."""
        await _adrive(self._unregister_plan(resource))

    async def _run_op(
        self, op: OpType, args: tuple[Any, ...], into: list[Any] | None, out: Any
    ) -> Any:
        if not self.opened:
            await self.open()
        spec, checked = self.prepare(op, args)
        if out is None:
            raw = await self.runtime.acall(self, op, checked, self.hint)
            return self.finish(spec, args, raw, into)
        token = RECEIVE_INTO.set(check_out(out))
        try:
            raw = await self.runtime.acall(self, op, checked, self.hint)
        finally:
            RECEIVE_INTO.reset(token)
        return into_out(out, raw, spec.method)

    def _op(
        self, op: OpType, *args: Any, into: list[Any] | None = None, out: Any = None
    ) -> Awaitable[Any]:
        return self._run_op(op, args, into, out)
