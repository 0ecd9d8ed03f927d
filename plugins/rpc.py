"""The rpc plugin (alias vsock): forwards every op, session and resource to an agent.

Sessions through it live on the agent (`Session.is_remote`, `remote_id`). Sync sessions
use one connection on the client's loop thread; each asyncio loop that opens
AsyncSessions gets its own connection. A connection is shared by the sessions opened
on it and closed when the last one is freed, as vAccel's vsock plugin does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from vaccel.client.bridge import LoopThread
from vaccel.client.connection import AsyncClient
from vaccel.protocol.address import Address, AddressError, parse_address

from vaccel import log
from vaccel.catalogue import RESOURCE_OPS
from vaccel.enums import OpType, PluginType
from vaccel.errors import PluginError
from vaccel.opargs import CHECKERS
from vaccel.plugin import Impl, Plugin
from vaccel.resource import Resource
from vaccel.session import SessionBase


class _Link:
    """One connection and the sessions using it."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.users = 0
        self.resources: dict[int, int] = {}  # local resource id -> agent's id


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


class RpcPlugin(Plugin):
    name = "rpc"
    type = PluginType.REMOTE
    virtio = True
    remote = True

    def init(self) -> None:
        try:
            self.address: Address = parse_address(self.config.rpc_address)
        except AddressError as exc:
            raise PluginError(message=f"{self.display_name}: VACCEL_RPC_ADDRESS: {exc}") from None
        self.timeout = self.config.rpc_timeout
        self._bridge: LoopThread | None = None
        self._links: dict[asyncio.AbstractEventLoop, _Link] = {}
        self._lock = threading.Lock()
        self._link_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _say(self, message: str) -> None:
        log.debug(f"[{self.display_name}] {message}")

    # ------------------------------------------------------------------ loops and links

    @property
    def bridge(self) -> LoopThread:
        with self._lock:
            if self._bridge is None:
                self._bridge = LoopThread(uvloop_ok=self.address.scheme != "vsock")
            return self._bridge

    def _home(self) -> asyncio.AbstractEventLoop | None:
        """The loop a coroutine caller's connection lives on (None: the bridge's)."""
        loop = asyncio.get_running_loop()
        if self.address.scheme == "vsock" and _is_uvloop(loop):
            return None
        return loop

    async def _on_home(self, make: Callable[[], Awaitable[Any]]) -> Any:
        if self._home() is None:
            fut: Any = asyncio.run_coroutine_threadsafe(make(), self.bridge.loop)  # type: ignore[arg-type]
            return await asyncio.wrap_future(fut)
        return await make()

    async def _acquire(self) -> _Link:
        loop = asyncio.get_running_loop()
        lock = self._link_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            link = self._links.get(loop)
            if link is None or link.client.closed:
                link = _Link(await AsyncClient.connect(self.address))
                self._links[loop] = link
            link.users += 1
            return link

    async def _release(self, link: _Link) -> None:
        link.users -= 1
        if link.users <= 0:
            self._say(f"Destroying {self.display_name} client")
            for loop, known in list(self._links.items()):
                if known is link:
                    del self._links[loop]
            await link.client.close()

    def _link(self, session: SessionBase) -> _Link:
        link: _Link = session.plugin_state[self.display_name]
        return link

    # ------------------------------------------------------------------ sessions

    async def _open(self, session: SessionBase) -> None:
        link = await self._acquire()
        try:
            session.remote_id = await link.client.call(
                "session.create", [session.flags], self.timeout
            )
        except BaseException:
            await self._release(link)
            raise
        session.plugin_state[self.display_name] = link

    async def _close(self, session: SessionBase) -> None:
        link = session.plugin_state.pop(self.display_name, None)
        if link is None:
            return
        self._say(f"Destroying session {session.remote_id}")
        try:
            if not link.client.closed:
                await link.client.call("session.destroy", [session.remote_id], self.timeout)
        finally:
            await self._release(link)

    def session_init(self, session: SessionBase) -> None:
        self._say("Initializing session")
        self.bridge.run(self._open(session))
        self._say(f"New session {session.remote_id}")

    async def session_init_async(self, session: SessionBase) -> None:
        self._say("Initializing session")
        await self._on_home(lambda: self._open(session))
        self._say(f"New session {session.remote_id}")

    def session_free(self, session: SessionBase) -> None:
        self.bridge.run(self._close(session))

    async def session_free_async(self, session: SessionBase) -> None:
        await self._on_home(lambda: self._close(session))

    # ------------------------------------------------------------------ resources

    async def _register(self, session: SessionBase, resource: Resource) -> None:
        link = self._link(session)
        rid = link.resources.get(resource.id)
        if rid is None:
            rid = await link.client.call(
                "resource.create",
                [int(resource.type), resource.names, resource.blobs],
                self.timeout,
            )
            link.resources[resource.id] = rid
        await link.client.call("resource.register", [session.remote_id, rid], self.timeout)

    async def _unregister(self, session: SessionBase, resource: Resource) -> None:
        link = self._link(session)
        rid = link.resources.get(resource.id)
        if rid is None:
            return
        await link.client.call("resource.unregister", [session.remote_id, rid], self.timeout)
        if len(resource.sessions) <= 1:
            del link.resources[resource.id]
            await link.client.call("resource.destroy", [rid], self.timeout)

    def resource_register(self, session: SessionBase, resource: Resource) -> None:
        self.bridge.run(self._register(session, resource))

    async def resource_register_async(self, session: SessionBase, resource: Resource) -> None:
        await self._on_home(lambda: self._register(session, resource))

    def resource_unregister(self, session: SessionBase, resource: Resource) -> None:
        self.bridge.run(self._unregister(session, resource))

    async def resource_unregister_async(self, session: SessionBase, resource: Resource) -> None:
        await self._on_home(lambda: self._unregister(session, resource))

    # ------------------------------------------------------------------ ops

    def _forward(self, op: OpType) -> Impl:
        number = int(op)
        timeout = self.timeout
        needs_rid = op in RESOURCE_OPS

        async def call(session: SessionBase, *args: Any) -> Any:
            link = self._link(session)
            wire = list(args)
            if needs_rid:
                session.resource(args[0])  # NotFoundError unless registered here
                wire[0] = link.resources[args[0]]
            return await link.client.call("op", [session.remote_id, number, wire], timeout)

        async def call_async(session: SessionBase, *args: Any) -> Any:
            if self._home() is None:
                return await self._on_home(lambda: call(session, *args))
            return await call(session, *args)

        def call_sync(session: SessionBase, *args: Any) -> Any:
            return self.bridge.run(call(session, *args))

        return Impl(call_sync, call_async, blocking=True)

    def operations(self) -> dict[OpType, Impl]:
        order = [
            OpType.BLAS_SGEMM,
            OpType.IMAGE_CLASSIFY,
            OpType.IMAGE_DETECT,
            OpType.IMAGE_SEGMENT,
            OpType.IMAGE_DEPTH,
            OpType.IMAGE_POSE,
            OpType.TF_SESSION_LOAD,
            OpType.TF_SESSION_DELETE,
            OpType.TF_SESSION_RUN,
            OpType.MINMAX,
            OpType.FPGA_ARRAYCOPY,
            OpType.FPGA_MMULT,
            OpType.FPGA_VECTORADD,
            OpType.FPGA_PARALLEL,
            OpType.EXEC,
        ]
        rest = [op for op in CHECKERS if op not in order]
        return {OpType(op): self._forward(OpType(op)) for op in [*order, *rest]}

    def fini(self) -> None:
        if self._bridge is not None:
            bridge = self._bridge
            for loop, link in list(self._links.items()):
                if loop is bridge.loop:
                    bridge.run(link.client.close())
            self._links.clear()
            bridge.stop()
            self._bridge = None
