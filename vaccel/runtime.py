"""The runtime: loaded plugins, and the one place that runs an op.

`Runtime.call` (sync callers), `Runtime.acall` (asyncio callers) and `Runtime.route` /
`Runtime.submit` (the agent, which answers cheap calls without a task) all find the
plugin serving an op once, decide once whether the call runs inline or in the bounded
pool (`vaccel.policy`), time it (profiling and the cost model), and turn a plugin's
own exceptions into `PluginFailure`.

An application uses the process-wide default runtime (`bootstrap()` / `cleanup()`);
the agent builds its own, so a client and an agent can live in one process (tests do).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from . import log
from .cancel import CallScope, run_in_scope
from .catalogue import CATALOGUE, op_title
from .config import Config
from .enums import OpType, PluginType
from .errors import NotSupportedError, PluginError, PluginFailure, VaccelError
from .plugin import Impl, Plugin, SessionLike
from .policy import CostModel
from .registry import resolve_plugin

#: Calls whose result may exceed this many bytes always run in the pool.
INLINE_RESULT = 256 * 1024


class Closeable(Protocol):
    """What the runtime frees at shutdown (open sessions)."""

    id: int

    def close_at_exit(self) -> None:
        """Free what this holds; called once, while the runtime shuts down."""
        ...


@dataclass(frozen=True, slots=True)
class Route:
    """Where one call goes: its plugin and implementation, inline or in the pool."""

    plugin: Plugin
    impl: Impl
    inline: bool
    #: The call's cost class (None: not measured, the plugin declared it cheap or async).
    key: Hashable | None


def _make_rundir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="vaccel.", dir=base)


class Runtime:
    """Loaded plugins, their op tables, the rundir and the pool for blocking work."""

    def __init__(self, config: Config | None = None, *, max_workers: int | None = None) -> None:
        self.config = config if config is not None else Config.from_env()
        self.plugins: list[Plugin] = []
        self._tables: list[tuple[Plugin, dict[OpType, Impl]]] = []
        self._cache: dict[tuple[OpType, int], tuple[Plugin, Impl]] = {}
        self._types = 0
        self.costs = CostModel()
        self.profiling = bool(self.config.profiling_enabled)
        #: Open sessions, freed at shutdown.
        self.closeables: weakref.WeakSet[Any] = weakref.WeakSet()
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.rundir: str | None = None
        self.closed = False
        log.configure(self.config.log_level, self.config.log_file)
        log.debug("Initializing vAccel")
        self.rundir = _make_rundir()
        log.debug(f"Created top-level rundir: {self.rundir}")
        try:
            for spec in self.config.plugin_list:
                self.load(spec)
        except BaseException:
            self.close()
            raise

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The bounded pool that runs blocking plugin work for asyncio callers."""
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="vaccel-op"
                    )
        return self._executor

    @property
    def pool_queue(self) -> int:
        """Calls waiting for a pool thread."""
        executor = self._executor
        return executor._work_queue.qsize() if executor is not None else 0

    # ------------------------------------------------------------------ plugins

    def load(self, spec: str) -> Plugin:
        """Load and initialise one plugin, logging as vAccel does."""
        cls, name = resolve_plugin(spec)
        plugin = cls(self.config, name)
        try:
            plugin.init()
        except VaccelError:
            raise
        except Exception as exc:
            raise PluginError(
                message=f"plugin {name!r} failed to initialise: {type(exc).__name__}: {exc}"
            ) from exc
        table = plugin.operations()
        log.debug(f"Registered plugin {plugin.display_name}")
        if plugin.virtio:
            log.debug(f"{plugin.display_name} is a VirtIO module")
        for op in table:
            log.debug(f"Registered function {op_title(op)} from plugin {plugin.display_name}")
        log.debug(f"Loaded plugin {plugin.display_name} from {spec}")
        self.plugins.append(plugin)
        self._tables.append((plugin, table))
        self._types |= int(plugin.type)
        self._cache.clear()
        return plugin

    def find(self, op: OpType, hint: int = 0) -> tuple[Plugin, Impl]:
        """The first plugin (in load order) implementing `op`, preferring ones matching `hint`."""
        hint &= self._types  # bits no plugin has change nothing: the cache stays small
        key = (op, hint)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        found: tuple[Plugin, Impl] | None = None
        if hint:
            found = next(
                ((p, t[op]) for p, t in self._tables if op in t and p.type & PluginType(hint)), None
            )
        if found is None:
            found = next(((p, t[op]) for p, t in self._tables if op in t), None)
        if found is None:
            loaded = ", ".join(p.display_name for p in self.plugins) or "none"
            spec = CATALOGUE.get(op)
            raise NotSupportedError(
                message=f"no loaded plugin implements {spec.method if spec else op.name} "
                f"({op_title(op)}); plugins loaded: {loaded}"
                + ("" if self.plugins else "; set VACCEL_PLUGINS, e.g. VACCEL_PLUGINS=numpy")
            )
        self._cache[key] = found
        return found

    def operations(self) -> list[tuple[Plugin, list[OpType]]]:
        """Each plugin with the ops it registered, for `vaccel info`."""
        return [(p, list(t)) for p, t in self._tables]

    # ------------------------------------------------------------------ running ops

    def route(
        self,
        session: SessionLike,
        op: OpType,
        args: tuple[Any, ...],
        hint: int,
        result_bytes: int = 0,
    ) -> Route:
        """Find the plugin for a checked call and decide whether it runs inline.

        A call whose result would exceed `INLINE_RESULT` bytes never runs inline: making
        it could hold the caller's event loop whatever its inputs.
        """
        plugin, impl = self.find(op, hint)
        if impl.async_ is not None:
            return Route(plugin, impl, False, None)
        if not impl.blocking or (
            impl.inline_if is not None
            and result_bytes <= INLINE_RESULT
            and impl.inline_if(session, *args)
        ):
            return Route(plugin, impl, True, None)  # declared cheap: neither measured nor timed
        key = self.costs.key(plugin.display_name, op, impl, session, args)
        inline = result_bytes <= INLINE_RESULT and self.costs.inline(impl, key, session, args)
        return Route(plugin, impl, inline, key)

    def run(self, route: Route, session: SessionLike, op: OpType, args: tuple[Any, ...]) -> Any:
        """Run a call on this thread (sync callers, or an inline route)."""
        timed = route.key is not None or self.profiling  # calls declared cheap: not timed
        start = time.perf_counter() if timed else 0.0
        try:
            return route.impl.sync(session, *args)
        except VaccelError:
            raise
        except Exception as exc:
            raise self._failure(route.plugin, op, exc) from exc
        finally:
            if timed:
                self._timed(route, session, op, time.perf_counter() - start)

    def call(self, session: SessionLike, op: OpType, args: tuple[Any, ...], hint: int = 0) -> Any:
        """Run a checked op for a sync caller."""
        return self.run(self.route(session, op, args, hint), session, op, args)

    def submit(
        self,
        route: Route,
        session: SessionLike,
        op: OpType,
        args: tuple[Any, ...],
        scope: CallScope,
    ) -> concurrent.futures.Future[Any]:
        """Start a call in the pool; its future completes when the work really ends.

        Cancelling `scope` stops work that has not started and asks running work to
        stop at its next checkpoint.
        """
        return self.executor.submit(run_in_scope, scope, self.run, route, session, op, args)

    async def acall(
        self,
        session: SessionLike,
        op: OpType,
        args: tuple[Any, ...],
        hint: int = 0,
        scope: CallScope | None = None,
    ) -> Any:
        """Run a checked op for an asyncio caller: coroutine, inline, or in the pool."""
        route = self.route(session, op, args, hint)
        if route.impl.async_ is not None:
            start = time.perf_counter() if self.profiling else 0.0
            try:
                return await route.impl.async_(session, *args)
            except VaccelError:
                raise
            except Exception as exc:
                raise self._failure(route.plugin, op, exc) from exc
            finally:
                if self.profiling:
                    self._timed(route, session, op, time.perf_counter() - start)
        if route.inline:
            return self.run(route, session, op, args)
        scope = scope if scope is not None else CallScope()
        future = self.submit(route, session, op, args, scope)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            scope.cancel()
            future.cancel()
            raise

    def _timed(self, route: Route, session: Any, op: OpType, seconds: float) -> None:
        if route.key is not None:
            self.costs.record(route.key, seconds, route.inline)
        if self.profiling:
            entry = session.profile.setdefault(CATALOGUE[op].method, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    @staticmethod
    def _failure(plugin: Plugin, op: OpType, exc: Exception) -> VaccelError:
        spec = CATALOGUE.get(op)
        return PluginFailure(
            message=f"plugin {plugin.display_name} failed in "
            f"{spec.method if spec else op.name}: {type(exc).__name__}: {exc}"
        )

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Free open sessions, finalise plugins, remove the rundir."""
        if self.closed:
            return
        self.closed = True
        for closeable in list(self.closeables):
            try:
                closeable.close_at_exit()
            except VaccelError as exc:
                log.warning(f"session:{closeable.id} could not be freed: {exc}")
        log.debug("Shutting down vAccel")
        log.debug("Cleaning up plugins")
        for plugin in reversed(self.plugins):
            try:
                plugin.fini()
            except Exception as exc:  # a failing fini must not stop the others
                log.error(f"plugin {plugin.display_name} failed to finalise: {exc}")
            log.debug(f"Unregistered plugin {plugin.display_name}")
        self.plugins.clear()
        self._tables.clear()
        self._cache.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)


_default: Runtime | None = None
_default_lock = threading.Lock()
_atexit_registered = False


def bootstrap(config: Config | None = None) -> Runtime:
    """Start the process-wide runtime (idempotent unless a new config is given)."""
    global _default, _atexit_registered
    with _default_lock:
        if _default is not None and not _default.closed:
            if config is None:
                return _default
            _default.close()
        _default = Runtime(config)
        if not _atexit_registered:
            atexit.register(cleanup)
            _atexit_registered = True
        return _default


def default_runtime() -> Runtime:
    """The process-wide runtime, started from the environment on first use."""
    current = _default
    if current is not None and not current.closed:
        return current
    return bootstrap()


def cleanup() -> None:
    """Shut the process-wide runtime down (vAccel's library destructor)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None
