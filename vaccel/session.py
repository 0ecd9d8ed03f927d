"""Sessions: the application API (vaccel-python compatible), sync and async.

`Session` and `AsyncSession` share `SessionBase` (ids, flags, resources, plugin state)
and the per-op argument checks of `vaccel.opargs`; each public method only checks its
arguments, runs the op through the runtime and shapes the result (lists in give lists
out, NumPy arrays in give NumPy arrays out).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import log
from . import opargs as A
from .catalogue import CATALOGUE, RESOURCE_OPS
from .enums import OpType, PluginType
from .errors import BadArgumentError, NotFoundError, PluginFailure, VaccelError
from .plugin import Impl, Plugin
from .resource import Resource
from .runtime import Runtime, default_runtime

_session_ids = itertools.count(1)


def _like(given: Any, result: Any) -> Any:
    """Give a list back when a list or tuple went in, else the array itself."""
    if isinstance(given, (list, tuple)) and isinstance(result, np.ndarray):
        return result.tolist()
    return result


def _minmax_out(given: Any, out: Any) -> Any:
    if isinstance(given, (bytes, bytearray, memoryview)):
        return np.asarray(out, dtype=np.float64).tobytes()
    return _like(given, out)


class SessionBase:
    """What sync and async sessions share: identity, hints, resources, plugin state."""

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise BadArgumentError(
                message=f"flags must be a PluginType or a non-negative int; got {flags!r}"
            )
        self.runtime = runtime if runtime is not None else default_runtime()
        self.id: int = next(_session_ids)
        self.flags: int = int(flags)
        self.hint: int = int(flags)
        self.remote_id: int | None = None
        self.resources: dict[int, Resource] = {}
        #: Private per-plugin state (the rpc plugin keeps its connection and remote id here).
        self.plugin_state: dict[str, Any] = {}
        self.closed = False
        self.opened = False

    @property
    def is_remote(self) -> bool:
        """True when the session lives on an agent (vaccel-python: a remote session id)."""
        return self.remote_id is not None

    def has_resource(self, resource: Resource) -> bool:
        return self.resources.get(resource.id) is resource

    def resource(self, resource_id: int) -> Resource:
        """A registered resource by id; NotFoundError names the session and the id."""
        try:
            return self.resources[resource_id]
        except KeyError:
            raise NotFoundError(
                message=f"resource {resource_id} is not registered with session {self.id}"
            ) from None

    def _wants_registering(self, resource: Resource) -> bool:
        """Check a resource about to be registered; False if it already is."""
        if not isinstance(resource, Resource):
            raise BadArgumentError(message=f"expected a Resource; got {type(resource).__name__}")
        return not self.has_resource(resource)

    def _registered(self, resource: Resource) -> None:
        self.resources[resource.id] = resource
        resource.sessions.add(self.id)

    def _check_registered(self, resource: Resource) -> None:
        if not self.has_resource(resource):
            raise NotFoundError(
                message=f"resource {resource.id} is not registered with session {self.id}"
            )

    def _unregistered(self, resource: Resource) -> None:
        del self.resources[resource.id]
        resource.sessions.discard(self.id)

    def _check_open(self) -> None:
        if self.closed:
            raise BadArgumentError(message=f"session {self.id} is closed")

    def _find(self, op: OpType, args: tuple[Any, ...]) -> tuple[Plugin, Impl]:
        """The plugin serving `op`, once the session and any resource argument are valid."""
        self._check_open()
        if op in RESOURCE_OPS:
            self.resource(args[0])  # NotFoundError unless registered with this session
        if log.enabled(log.DEBUG):
            log.debug(f"session:{self.id} Looking for plugin implementing {CATALOGUE[op].lookup}")
        plugin, impl = self.runtime.find(op, self.hint)
        if log.enabled(log.DEBUG):
            log.debug(f"Found implementation in {plugin.display_name} plugin")
        return plugin, impl

    def _opened(self) -> None:
        self.opened = True
        self.runtime.sessions[self.id] = self
        log.debug(f"session:{self.id} New session")

    def _closed(self) -> None:
        self.closed = True
        self.runtime.sessions.pop(self.id, None)
        log.debug(f"session:{self.id} Free session")

    def close_at_exit(self) -> None:
        """Free the session while the runtime shuts down."""
        self._closed()

    @staticmethod
    def _genop_args(arg_read: Sequence[Any]) -> tuple[OpType, list[Any]]:
        """genop's first read argument names the op; the rest are its arguments."""
        if not arg_read:
            raise BadArgumentError(message="genop: arg_read must start with the op type")
        first = getattr(arg_read[0], "buf", arg_read[0])
        if isinstance(first, np.ndarray) and first.size == 1:
            first = first.reshape(-1)[0]
        try:
            op = OpType(int(first))
        except (TypeError, ValueError):
            raise BadArgumentError(message=f"genop: {first!r} is not an OpType") from None
        if op not in A.CHECKERS:
            raise BadArgumentError(message=f"genop: op {op.name} cannot be called through genop")
        return op, [getattr(a, "buf", a) for a in arg_read[1:]]

    def __repr__(self) -> str:
        remote = f" remote_id={self.remote_id}" if self.remote_id is not None else ""
        return f"<{type(self).__name__} id={self.id} flags={self.flags}{remote}>"


def _plugin_failure(plugin: Plugin, op: OpType, exc: Exception) -> VaccelError:
    if isinstance(exc, VaccelError):
        return exc
    return PluginFailure(
        message=f"plugin {plugin.display_name} failed in {CATALOGUE[op].method}: "
        f"{type(exc).__name__}: {exc}"
    )


class Session(SessionBase):
    """A vAccel session for synchronous code: `with Session() as s: s.fpga_vadd(a, b)`."""

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        super().__init__(flags, runtime=runtime)
        done: list[Plugin] = []
        try:
            for plugin in self.runtime.plugins:
                plugin.session_init(self)
                done.append(plugin)
        except BaseException:
            for plugin in reversed(done):
                plugin.session_free(self)
            self.closed = True
            raise
        self._opened()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the session (and its remote twin); safe to call twice."""
        if self.closed:
            return
        for resource in list(self.resources.values()):
            self.unregister_resource(resource)
        errors: list[VaccelError] = []
        for plugin in reversed(self.runtime.plugins):
            try:
                plugin.session_free(self)
            except VaccelError as exc:
                errors.append(exc)
        self._closed()
        if errors:
            raise errors[0]

    def close_at_exit(self) -> None:
        self.close()

    def register_resource(self, resource: Resource) -> None:
        self._check_open()
        if self._wants_registering(resource):
            for plugin in self.runtime.plugins:
                plugin.resource_register(self, resource)
            self._registered(resource)

    def unregister_resource(self, resource: Resource) -> None:
        self._check_registered(resource)
        for plugin in reversed(self.runtime.plugins):
            plugin.resource_unregister(self, resource)
        self._unregistered(resource)

    def _run(self, op: OpType, args: tuple[Any, ...]) -> Any:
        plugin, impl = self._find(op, args)
        try:
            return impl.sync(self, *args)
        except Exception as exc:
            raise _plugin_failure(plugin, op, exc) from exc

    def run_op(self, op: OpType, args: Sequence[Any]) -> Any:
        """Run an op from its canonical arguments (checked here; used by the agent and genop)."""
        return self._run(op, A.CHECKERS[op](*args))

    # --- operations (vaccel-python's names, argument order and results) ---------------

    def genop(self, arg_read: Sequence[Any], arg_write: Sequence[Any] | None = None) -> Any:
        """The generic op: arg_read[0] is the OpType, the rest its arguments; returns its result."""
        op, args = self._genop_args(arg_read)
        return self.run_op(op, args)

    def noop(self) -> None:
        self._run(OpType.NOOP, ())

    def sgemm(
        self,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Any,
        lda: int,
        b: Any,
        ldb: int,
        beta: float,
        ldc: int,
        c: Any = None,
    ) -> Any:
        out = self._run(
            OpType.BLAS_SGEMM, A.check_sgemm(m, n, k, alpha, a, lda, b, ldb, beta, ldc, c)
        )
        return out if isinstance(a, np.ndarray) else out.tolist()

    def classify(self, image: bytes) -> tuple[str, str]:
        tag, name = self._run(OpType.IMAGE_CLASSIFY, A.check_image(image))
        return str(tag), str(name)

    def detect(self, image: bytes) -> str:
        return str(self._run(OpType.IMAGE_DETECT, A.check_image(image)))

    def segment(self, image: bytes) -> str:
        return str(self._run(OpType.IMAGE_SEGMENT, A.check_image(image)))

    def pose(self, image: bytes) -> str:
        return str(self._run(OpType.IMAGE_POSE, A.check_image(image)))

    def depth(self, image: bytes) -> str:
        return str(self._run(OpType.IMAGE_DEPTH, A.check_image(image)))

    def exec(
        self,
        library: str,
        symbol: str,
        arg_read: Sequence[Any] | None = None,
        arg_write: Sequence[Any] | None = None,
    ) -> list[Any]:
        return list(self._run(OpType.EXEC, A.check_exec(library, symbol, arg_read, arg_write)))

    def exec_with_resource(
        self,
        resource: Resource,
        symbol: str,
        arg_read: Sequence[Any] | None = None,
        arg_write: Sequence[Any] | None = None,
    ) -> list[Any]:
        args = A.check_exec_with_resource(resource, symbol, arg_read, arg_write)
        return list(self._run(OpType.EXEC_WITH_RESOURCE, args))

    def minmax(
        self, indata: Any, ndata: int, low_threshold: int, high_threshold: int
    ) -> tuple[Any, float, float]:
        out, lo, hi = self._run(
            OpType.MINMAX, A.check_minmax(indata, ndata, low_threshold, high_threshold)
        )
        return _minmax_out(indata, out), float(lo), float(hi)

    def fpga_arraycopy(self, a: Any) -> Any:
        return _like(a, self._run(OpType.FPGA_ARRAYCOPY, A.check_arraycopy(a)))

    def fpga_mmult(self, a: Any, b: Any) -> Any:
        return _like(a, self._run(OpType.FPGA_MMULT, A.check_mmult(a, b)))

    def fpga_parallel(self, a: Any, b: Any) -> tuple[Any, Any]:
        add, mult = self._run(OpType.FPGA_PARALLEL, A.check_parallel(a, b))
        return _like(a, add), _like(a, mult)

    def fpga_vadd(self, a: Any, b: Any) -> Any:
        return _like(a, self._run(OpType.FPGA_VECTORADD, A.check_vadd(a, b)))

    def tf_model_load(self, resource: Resource) -> None:
        self._run(OpType.TF_SESSION_LOAD, A.check_model(resource))

    def tf_model_unload(self, resource: Resource) -> None:
        self._run(OpType.TF_SESSION_DELETE, A.check_model(resource))

    def tf_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(self._run(OpType.TF_SESSION_RUN, A.check_model_run(resource, inputs)))

    def tflite_model_load(self, resource: Resource) -> None:
        self._run(OpType.TFLITE_SESSION_LOAD, A.check_model(resource))

    def tflite_model_unload(self, resource: Resource) -> None:
        self._run(OpType.TFLITE_SESSION_DELETE, A.check_model(resource))

    def tflite_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(self._run(OpType.TFLITE_SESSION_RUN, A.check_model_run(resource, inputs)))

    def torch_model_load(self, resource: Resource) -> None:
        """Check the model is registered; torch models are loaded on first run."""
        self.resource(A.resource_id(resource))

    def torch_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(self._run(OpType.TORCH_JITLOAD_FORWARD, A.check_model_run(resource, inputs)))


class AsyncSession(SessionBase):
    """The same operations as coroutines; blocking plugin work runs in the runtime's pool.

    Open it with `async with AsyncSession() as s:` (or let the first op open it).
    """

    def __init__(self, flags: PluginType | int = 0, *, runtime: Runtime | None = None) -> None:
        super().__init__(flags, runtime=runtime)
        self._open_lock: asyncio.Lock | None = None

    async def open(self) -> AsyncSession:
        """Run the plugins' session hooks (the rpc plugin creates the remote session)."""
        self._check_open()
        if self.opened:
            return self
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self.opened:
                done: list[Plugin] = []
                try:
                    for plugin in self.runtime.plugins:
                        await plugin.session_init_async(self)
                        done.append(plugin)
                except BaseException:
                    for plugin in reversed(done):
                        await plugin.session_free_async(self)
                    raise
                self._opened()
        return self

    async def __aenter__(self) -> AsyncSession:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        if not self.opened:
            self.closed = True
            return
        for resource in list(self.resources.values()):
            await self.unregister_resource(resource)
        for plugin in reversed(self.runtime.plugins):
            await plugin.session_free_async(self)
        self._closed()

    async def register_resource(self, resource: Resource) -> None:
        await self.open()
        if self._wants_registering(resource):
            for plugin in self.runtime.plugins:
                await plugin.resource_register_async(self, resource)
            self._registered(resource)

    async def unregister_resource(self, resource: Resource) -> None:
        self._check_registered(resource)
        for plugin in reversed(self.runtime.plugins):
            await plugin.resource_unregister_async(self, resource)
        self._unregistered(resource)

    async def _run(self, op: OpType, args: tuple[Any, ...]) -> Any:
        if not self.opened:
            await self.open()
        plugin, impl = self._find(op, args)
        if impl.async_ is not None:  # the rpc fast path: one coroutine frame less
            try:
                return await impl.async_(self, *args)
            except Exception as exc:
                raise _plugin_failure(plugin, op, exc) from exc
        return await self.call_impl(op, plugin, impl, args)

    def run_inline(self, op: OpType, args: tuple[Any, ...]) -> tuple[Plugin, Impl, bool, Any]:
        """Find the plugin for a checked op and, if the call is cheap, run it right now.

        Returns (plugin, impl, done, result); when not done, `call_impl` finishes the job.
        Lets the agent answer small calls without creating a task.
        """
        plugin, impl = self._find(op, args)
        if impl.async_ is None and (
            not impl.blocking or (impl.inline_if is not None and impl.inline_if(self, *args))
        ):
            try:
                return plugin, impl, True, impl.sync(self, *args)
            except Exception as exc:
                raise _plugin_failure(plugin, op, exc) from exc
        return plugin, impl, False, None

    async def call_impl(self, op: OpType, plugin: Plugin, impl: Impl, args: tuple[Any, ...]) -> Any:
        """Run an implementation found by `_find`: coroutine, inline, or in the pool."""
        try:
            if impl.async_ is not None:
                return await impl.async_(self, *args)
            if not impl.blocking or (impl.inline_if is not None and impl.inline_if(self, *args)):
                return impl.sync(self, *args)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.runtime.executor, functools.partial(impl.sync, self, *args)
            )
        except Exception as exc:
            raise _plugin_failure(plugin, op, exc) from exc

    async def run_op(self, op: OpType, args: Sequence[Any]) -> Any:
        """Run an op from its canonical arguments (checked here; the agent's entry point)."""
        return await self._run(op, A.CHECKERS[op](*args))

    async def genop(self, arg_read: Sequence[Any], arg_write: Sequence[Any] | None = None) -> Any:
        op, args = self._genop_args(arg_read)
        return await self.run_op(op, args)

    async def noop(self) -> None:
        await self._run(OpType.NOOP, ())

    async def sgemm(
        self,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Any,
        lda: int,
        b: Any,
        ldb: int,
        beta: float,
        ldc: int,
        c: Any = None,
    ) -> Any:
        out = await self._run(
            OpType.BLAS_SGEMM, A.check_sgemm(m, n, k, alpha, a, lda, b, ldb, beta, ldc, c)
        )
        return out if isinstance(a, np.ndarray) else out.tolist()

    async def classify(self, image: bytes) -> tuple[str, str]:
        tag, name = await self._run(OpType.IMAGE_CLASSIFY, A.check_image(image))
        return str(tag), str(name)

    async def detect(self, image: bytes) -> str:
        return str(await self._run(OpType.IMAGE_DETECT, A.check_image(image)))

    async def segment(self, image: bytes) -> str:
        return str(await self._run(OpType.IMAGE_SEGMENT, A.check_image(image)))

    async def pose(self, image: bytes) -> str:
        return str(await self._run(OpType.IMAGE_POSE, A.check_image(image)))

    async def depth(self, image: bytes) -> str:
        return str(await self._run(OpType.IMAGE_DEPTH, A.check_image(image)))

    async def exec(
        self,
        library: str,
        symbol: str,
        arg_read: Sequence[Any] | None = None,
        arg_write: Sequence[Any] | None = None,
    ) -> list[Any]:
        return list(
            await self._run(OpType.EXEC, A.check_exec(library, symbol, arg_read, arg_write))
        )

    async def exec_with_resource(
        self,
        resource: Resource,
        symbol: str,
        arg_read: Sequence[Any] | None = None,
        arg_write: Sequence[Any] | None = None,
    ) -> list[Any]:
        args = A.check_exec_with_resource(resource, symbol, arg_read, arg_write)
        return list(await self._run(OpType.EXEC_WITH_RESOURCE, args))

    async def minmax(
        self, indata: Any, ndata: int, low_threshold: int, high_threshold: int
    ) -> tuple[Any, float, float]:
        out, lo, hi = await self._run(
            OpType.MINMAX, A.check_minmax(indata, ndata, low_threshold, high_threshold)
        )
        return _minmax_out(indata, out), float(lo), float(hi)

    async def fpga_arraycopy(self, a: Any) -> Any:
        return _like(a, await self._run(OpType.FPGA_ARRAYCOPY, A.check_arraycopy(a)))

    async def fpga_mmult(self, a: Any, b: Any) -> Any:
        return _like(a, await self._run(OpType.FPGA_MMULT, A.check_mmult(a, b)))

    async def fpga_parallel(self, a: Any, b: Any) -> tuple[Any, Any]:
        add, mult = await self._run(OpType.FPGA_PARALLEL, A.check_parallel(a, b))
        return _like(a, add), _like(a, mult)

    async def fpga_vadd(self, a: Any, b: Any) -> Any:
        return _like(a, await self._run(OpType.FPGA_VECTORADD, A.check_vadd(a, b)))

    async def tf_model_load(self, resource: Resource) -> None:
        await self._run(OpType.TF_SESSION_LOAD, A.check_model(resource))

    async def tf_model_unload(self, resource: Resource) -> None:
        await self._run(OpType.TF_SESSION_DELETE, A.check_model(resource))

    async def tf_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(await self._run(OpType.TF_SESSION_RUN, A.check_model_run(resource, inputs)))

    async def tflite_model_load(self, resource: Resource) -> None:
        await self._run(OpType.TFLITE_SESSION_LOAD, A.check_model(resource))

    async def tflite_model_unload(self, resource: Resource) -> None:
        await self._run(OpType.TFLITE_SESSION_DELETE, A.check_model(resource))

    async def tflite_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(await self._run(OpType.TFLITE_SESSION_RUN, A.check_model_run(resource, inputs)))

    async def torch_model_load(self, resource: Resource) -> None:
        self.resource(A.resource_id(resource))

    async def torch_model_run(self, resource: Resource, inputs: Sequence[Any]) -> list[Any]:
        return list(
            await self._run(OpType.TORCH_JITLOAD_FORWARD, A.check_model_run(resource, inputs))
        )
