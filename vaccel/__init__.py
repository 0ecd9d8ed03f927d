"""pyvaccel: a Python runtime for (remote) hardware acceleration, vaccel-python compatible."""

from __future__ import annotations

from .arg import Arg
from .config import Config
from .enums import ArgType, OpType, PluginType, ResourceType
from .errors import VaccelError
from .resource import Resource
from .runtime import Runtime, bootstrap, cleanup
from .session import AsyncSession, Session

__version__ = "0.1.0"

__all__ = [
    "Arg",
    "ArgType",
    "AsyncSession",
    "Config",
    "OpType",
    "PluginType",
    "Resource",
    "ResourceType",
    "Runtime",
    "Session",
    "VaccelError",
    "__version__",
    "bootstrap",
    "cleanup",
]
