"""The runtime: loads plugins in VACCEL_PLUGINS order and finds the one that serves an op.

An application uses the process-wide default runtime (`bootstrap()` / `cleanup()`); the
agent builds its own, so a client and an agent can live in one process (tests do).
"""

from __future__ import annotations

import atexit
import importlib
import importlib.metadata
import inspect
import os
import re
import shutil
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import log
from .catalogue import CATALOGUE, op_title
from .config import Config
from .enums import OpType, PluginType
from .errors import NotSupportedError, PluginError, VaccelError
from .plugin import Impl, Plugin

if TYPE_CHECKING:
    from .session import SessionBase

#: Short names of the plugins that ship with pyvaccel ("vsock" is vAccel's name for rpc).
BUILTIN_PLUGINS: dict[str, str] = {
    "noop": "vaccel.plugins.noop:NoopPlugin",
    "numpy": "vaccel.plugins.numpy_cpu:NumpyPlugin",
    "rpc": "vaccel.plugins.rpc:RpcPlugin",
    "vsock": "vaccel.plugins.rpc:RpcPlugin",
    "pynq": "vaccel.plugins.pynq:PynqPlugin",
}
ENTRY_POINT_GROUP = "vaccel.plugins"
_SO_NAME = re.compile(r"(?:^|/)libvaccel-([A-Za-z0-9_]+)\.so(?:\.[0-9.]+)?$")


def _plugin_class(target: str, spec: str) -> type[Plugin]:
    """Import `module[:attr]` and return its Plugin class."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # `package.module.Class` (or `module.Class`): the last part may be the class.
        parent, _, last = module_name.rpartition(".")
        if attr or not parent or exc.name != module_name:
            raise PluginError(
                message=f"plugin {spec!r}: module {module_name!r} failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return _plugin_class(f"{parent}:{last}", spec)
    except ImportError as exc:
        raise PluginError(
            message=f"plugin {spec!r}: module {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if attr:
        cls = getattr(module, attr, None)
    else:
        found = [
            v
            for v in vars(module).values()
            if inspect.isclass(v)
            and issubclass(v, Plugin)
            and v is not Plugin
            and v.__module__ == module.__name__
        ]
        cls = found[0] if len(found) == 1 else getattr(module, "PLUGIN", None)
    if not (inspect.isclass(cls) and issubclass(cls, Plugin)):
        raise PluginError(
            message=f"plugin {spec!r}: {target!r} does not name a vaccel.plugin.Plugin subclass"
        )
    return cls


def resolve_plugin(spec: str) -> tuple[type[Plugin], str]:
    """A VACCEL_PLUGINS entry -> (plugin class, the name it is shown under)."""
    spec = spec.strip()
    so = _SO_NAME.search(spec)
    name = so.group(1) if so else spec
    if name in BUILTIN_PLUGINS:
        return _plugin_class(BUILTIN_PLUGINS[name], spec), name
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _plugin_class(ep.value, spec), name
    if "." in name and "/" not in name:
        cls = _plugin_class(name, spec)
        return cls, cls.name
    known = sorted(
        set(BUILTIN_PLUGINS)
        | {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    )
    raise PluginError(
        message=f"unknown plugin {spec!r} in VACCEL_PLUGINS; expected one of "
        f"{', '.join(known)}, a dotted module path, or .../libvaccel-NAME.so"
    )


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
        self.sessions: weakref.WeakValueDictionary[int, SessionBase] = weakref.WeakValueDictionary()
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor: ThreadPoolExecutor | None = None
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
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="vaccel-op")
        return self._executor

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
        self._cache.clear()
        return plugin

    def find(self, op: OpType, hint: int = 0) -> tuple[Plugin, Impl]:
        """The first plugin (in load order) implementing `op`, preferring ones matching `hint`."""
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

    def close(self) -> None:
        """Free open sessions, finalise plugins, remove the rundir."""
        if self.closed:
            return
        self.closed = True
        for session in list(self.sessions.values()):
            try:
                session.close_at_exit()
            except VaccelError as exc:
                log.warning(f"session:{session.id} could not be freed: {exc}")
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
