"""pyvaccel: a Python runtime for (remote) hardware acceleration, vaccel-python compatible.

Example:
    >>> from vaccel import Config, Runtime, Session
    >>> with Session(runtime=Runtime(Config("noop", 0))) as s:
    ...     s.noop()
"""

from __future__ import annotations

from .arg import Arg
from .config import Config
from .enums import ArgType, OpType, PluginType, ResourceType
from .errors import VaccelError
from .resource import Resource
from .runtime import Runtime, bootstrap, cleanup
from .session import AsyncSession, BaseSession, Session

__version__ = "0.2.0"

__all__ = [
    "Arg",
    "ArgType",
    "AsyncSession",
    "BaseSession",
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
