"""Finding plugins: VACCEL_PLUGINS entries -> plugin classes.

An entry may be a short name registered in the `vaccel.plugins` entry-point group
(pyvaccel's own plugins are registered there too), vAccel's library file name
(`.../libvaccel-NAME.so`, meaning NAME), or a dotted path to a module or a class.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re

from .errors import PluginError
from .plugin import Plugin

ENTRY_POINT_GROUP = "vaccel.plugins"
#: vAccel's names that mean one of ours ("vsock" is vAccel's name for its rpc plugin).
ALIASES = {"vsock": "rpc"}
_SO_NAME = re.compile(r"(?:^|/)libvaccel-([A-Za-z0-9_]+)\.so(?:\.[0-9.]+)?$")


def _import_failed(spec: str, module: str, exc: BaseException) -> PluginError:
    return PluginError(
        message=f"plugin {spec!r}: module {module!r} failed to import: {type(exc).__name__}: {exc}"
    )


def plugin_class(target: str, spec: str) -> type[Plugin]:
    """Import `module[:attr]` (or `package.module.Class`) and return its Plugin class."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parent, _, last = module_name.rpartition(".")
        if attr or not parent or exc.name != module_name:
            raise _import_failed(spec, module_name, exc) from exc
        return plugin_class(f"{parent}:{last}", spec)
    except ImportError as exc:
        raise _import_failed(spec, module_name, exc) from exc
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


def registered() -> dict[str, str]:
    """Short plugin names -> `module:Class`, from the entry-point group."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve_plugin(spec: str) -> tuple[type[Plugin], str]:
    """A VACCEL_PLUGINS entry -> (plugin class, the name it is shown under)."""
    spec = spec.strip()
    so = _SO_NAME.search(spec)
    name = so.group(1) if so else spec
    known = registered()
    target = known.get(ALIASES.get(name, name))
    if target is not None:
        return plugin_class(target, spec), name
    if "." in name and "/" not in name:
        cls = plugin_class(name, spec)
        return cls, cls.name
    raise PluginError(
        message=f"unknown plugin {spec!r} in VACCEL_PLUGINS; expected one of "
        f"{', '.join(sorted(set(known) | set(ALIASES)))}, a dotted module path, "
        "or .../libvaccel-NAME.so"
    )
