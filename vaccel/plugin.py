"""The plugin contract: a name, a type, init/fini and implementations of op-table entries.

An implementation receives the calling session first, then the op's canonical
arguments (`vaccel.catalogue`: each op's checker says what they are), and returns the
op's canonical result. It may be a plain function (`blocking` says whether it may take
long enough to belong off the event loop; `inline_if` may declare a given call cheap)
or come with a coroutine twin for asyncio callers (the rpc plugin). Session and
resource hooks let a plugin keep per-session state (the rpc plugin's remote session).

Plugins see sessions and resources through the `SessionLike` and `ResourceLike`
protocols declared here, so this module needs nothing from the session classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .enums import OpType, PluginType, ResourceType

if TYPE_CHECKING:
    from .config import Config

SyncOp = Callable[..., Any]
AsyncOp = Callable[..., Awaitable[Any]]


class ResourceLike(Protocol):
    """What plugins use of a resource."""

    id: int
    type: ResourceType
    names: list[str]
    paths: list[str]

    @property
    def blobs(self) -> list[bytes]:
        """The contents of each file or buffer."""
        ...

    def digest(self) -> str:
        """A sha256 over names and contents (`vaccel.resource.content_digest`)."""
        ...


class SessionLike(Protocol):
    """What plugins use of a session (sync or async)."""

    id: int
    remote_id: int
    plugin_state: dict[str, Any]

    @property
    def flags(self) -> int:
        """The hints the session was opened with."""
        ...

    def resource(self, resource_id: int) -> ResourceLike:
        """A registered resource by id (NotFoundError otherwise)."""
        ...

    @property
    def rundir(self) -> str:
        """A directory for this session's files (removed when it closes)."""
        ...


@dataclass(frozen=True)
class Impl:
    """One op's implementation: a sync callable, an optional coroutine twin, cost hints."""

    sync: SyncOp
    async_: AsyncOp | None = None
    #: May take long: run in the pool unless the call is known to be cheap.
    blocking: bool = True
    #: A test on (session, *args) declaring a call cheap enough to run inline.
    inline_if: Callable[..., bool] | None = None
    #: What distinguishes calls of different cost beyond their size ((session, *args) ->
    #: key), for the runtime's measured inline/pool decision (exec: the function named).
    cost_key: Callable[..., Hashable] | None = None


class Plugin:
    """Base class of every plugin; subclasses fill in `operations()` and the class attributes."""

    name: ClassVar[str] = "plugin"
    type: ClassVar[PluginType] = PluginType.GENERIC
    version: ClassVar[str] = "0.2.0"
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
    def session_init(self, session: SessionLike) -> None:
        """A session opened (sync callers)."""

    async def session_init_async(self, session: SessionLike) -> None:
        """A session opened (asyncio callers)."""
        self.session_init(session)

    def session_free(self, session: SessionLike) -> None:
        """A session closed (sync callers)."""

    async def session_free_async(self, session: SessionLike) -> None:
        """A session closed (asyncio callers)."""
        self.session_free(session)

    def resource_register(self, session: SessionLike, resource: ResourceLike) -> None:
        """A resource was registered with a session."""

    async def resource_register_async(self, session: SessionLike, resource: ResourceLike) -> None:
        """A resource was registered with a session (asyncio callers)."""
        self.resource_register(session, resource)

    def resource_unregister(self, session: SessionLike, resource: ResourceLike) -> None:
        """A resource was unregistered from a session."""

    async def resource_unregister_async(self, session: SessionLike, resource: ResourceLike) -> None:
        """A resource was unregistered from a session (asyncio callers)."""
        self.resource_unregister(session, resource)

    def describe(self) -> dict[str, Any]:
        """What `vaccel info` shows of this plugin beyond its ops."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_name}>"
