"""The plugin contract: a name, a type, init/fini and a table from OpType to implementations.

An implementation receives the calling session first, then the op's canonical arguments
(see `vaccel.opargs`), and returns the op's canonical result. It may be a plain function
(`blocking` says whether it does enough work to be run off the event loop) or come with
a coroutine twin for asyncio callers (the rpc plugin). Session and resource hooks let a
plugin keep per-session state (the rpc plugin's remote session).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .enums import OpType, PluginType

if TYPE_CHECKING:
    from .config import Config
    from .resource import Resource
    from .session import SessionBase

SyncOp = Callable[..., Any]
AsyncOp = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Impl:
    """One op's implementation: a sync callable, an optional coroutine twin, and a cost hint."""

    sync: SyncOp
    async_: AsyncOp | None = None
    blocking: bool = True
    #: For blocking ops: a test on (session, *args) that says this call is cheap enough
    #: to run inline on the event loop (small arrays), saving the hop to the pool.
    inline_if: Callable[..., bool] | None = None


class Plugin:
    """Base class of every plugin; subclasses fill in `operations()` and the class attributes."""

    name: ClassVar[str] = "plugin"
    type: ClassVar[PluginType] = PluginType.GENERIC
    version: ClassVar[str] = "0.1.0"
    #: vAccel logs "<name> is a VirtIO module" for transport plugins.
    virtio: ClassVar[bool] = False

    def __init__(self, config: Config, name: str | None = None) -> None:
        self.config = config
        self.display_name = name or self.name

    def init(self) -> None:
        """Acquire what the plugin needs; raise PluginError with a fix if it cannot load."""

    def fini(self) -> None:
        """Release everything init acquired."""

    def operations(self) -> dict[OpType, Impl]:
        """The ops this plugin implements, in the order it registers them."""
        return {}

    # Session and resource hooks: no-ops unless a plugin keeps per-session state.
    def session_init(self, session: SessionBase) -> None:
        pass

    async def session_init_async(self, session: SessionBase) -> None:
        self.session_init(session)

    def session_free(self, session: SessionBase) -> None:
        pass

    async def session_free_async(self, session: SessionBase) -> None:
        self.session_free(session)

    def resource_register(self, session: SessionBase, resource: Resource) -> None:
        pass

    async def resource_register_async(self, session: SessionBase, resource: Resource) -> None:
        self.resource_register(session, resource)

    def resource_unregister(self, session: SessionBase, resource: Resource) -> None:
        pass

    async def resource_unregister_async(self, session: SessionBase, resource: Resource) -> None:
        self.resource_unregister(session, resource)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_name}>"
