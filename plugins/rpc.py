"""The rpc plugin (alias vsock): forwards every op, session and resource to an agent.

Sessions through it live on the agent (`Session.is_remote`, `remote_id`). Sync sessions
share one blocking connection (no event loop, no thread hop); each asyncio loop that
opens AsyncSessions gets its own multiplexed connection. A connection is shared by the
sessions opened on it and closed when the last one is freed, as vAccel's vsock plugin
does. What each call does is written once, as a plan (a generator of requests), and
driven either by the blocking or by the async client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any

from vaccel import log
from vaccel.catalogue import RESOURCE_OPS
from vaccel.client.blocking import BlockingClient
from vaccel.client.asyncclient import AsyncClient
from vaccel.enums import OpType, PluginType
from vaccel.errors import PluginError
from vaccel.opargs import CHECKERS
from vaccel.plugin import Impl, Plugin
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.resource import Resource
from vaccel.session import SessionBase

#: A plan yields (method, args) requests and receives each one's result.
Plan = Generator[tuple[str, list[Any]], Any, Any]


class _Link:
    """One connection (blocking or async) and the sessions using it."""

    def __init__(self, client: BlockingClient | AsyncClient, blocking: bool) -> None:
        self.client = client
        self.blocking = blocking
        self.users = 0
        self.resources: dict[int, int] = {}  # local resource id -> the agent's id


class RpcPlugin(Plugin):
    name = "rpc"
    type = PluginType.REMOTE
    virtio = True

    def init(self) -> None:
        try:
            self.address: Address = parse_address(self.config.rpc_address)
        except AddressError as exc:
            raise PluginError(message=f"{self.display_name}: VACCEL_RPC_ADDRESS: {exc}") from None
        self.timeout = self.config.rpc_timeout
        self._sync: _Link | None = None
        self._sync_lock = threading.Lock()
        self._links: dict[asyncio.AbstractEventLoop, _Link] = {}
        self._link_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _say(self, message: str) -> None:
        log.debug(f"[{self.display_name}] {message}")

    # ------------------------------------------------------------------ driving plans

    def _run(self, link: _Link, plan: Plan) -> Any:
        client = link.client
        assert isinstance(client, BlockingClient)
        try:
            request = next(plan)
            while True:
                request = plan.send(client.call(*request, timeout=self.timeout))
        except StopIteration as done:
            return done.value

    async def _arun(self, link: _Link, plan: Plan) -> Any:
        if link.blocking:  # AF_VSOCK under uvloop: the blocking client, off the loop
            return await asyncio.to_thread(self._run, link, plan)
        client = link.client
        assert isinstance(client, AsyncClient)
        try:
            request = next(plan)
            while True:
                request = plan.send(await client.call(*request, timeout=self.timeout))
        except StopIteration as done:
            return done.value

    # ------------------------------------------------------------------ links

    def _acquire_sync(self) -> _Link:
        with self._sync_lock:
            if self._sync is None or self._sync.client.closed:
                self._sync = _Link(BlockingClient(self.address), blocking=True)
            self._sync.users += 1
            return self._sync

    async def _acquire_async(self) -> _Link:
        loop = asyncio.get_running_loop()
        lock = self._link_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            link = self._links.get(loop)
            if link is None or link.client.closed:
                link = _Link(await AsyncClient.connect(self.address), blocking=False)
                self._links[loop] = link
            link.users += 1
            return link

    def _release(self, link: _Link) -> bool:
        """Drop one user; True when the link is now unused and must be closed."""
        with self._sync_lock:  # sync sessions may be freed from several threads
            link.users -= 1
            if link.users > 0:
                return False
            if link is self._sync:
                self._sync = None
        self._say(f"Destroying {self.display_name} client")
        for loop, known in list(self._links.items()):
            if known is link:
                del self._links[loop]
        return True

    def _link(self, session: SessionBase) -> _Link:
        link: _Link = session.plugin_state[self.display_name]
        return link

    # ------------------------------------------------------------------ sessions

    def _create(self, session: SessionBase) -> Plan:
        session.remote_id = yield ("session.create", [session.flags])

    def _destroy(self, session: SessionBase, link: _Link) -> Plan:
        if not link.client.closed:
            yield ("session.destroy", [session.remote_id])

    def session_init(self, session: SessionBase) -> None:
        self._say("Initializing session")
        link = self._acquire_sync()
        try:
            self._run(link, self._create(session))
        except BaseException:
            if self._release(link):
                assert isinstance(link.client, BlockingClient)
                link.client.close()
            raise
        session.plugin_state[self.display_name] = link
        self._say(f"New session {session.remote_id}")

    async def session_init_async(self, session: SessionBase) -> None:
        self._say("Initializing session")
        link = await self._acquire_async()
        try:
            await self._arun(link, self._create(session))
        except BaseException:
            await self._close_link(link)
            raise
        session.plugin_state[self.display_name] = link
        self._say(f"New session {session.remote_id}")

    async def _close_link(self, link: _Link) -> None:
        if self._release(link):
            if isinstance(link.client, AsyncClient):
                await link.client.close()
            else:
                link.client.close()

    def session_free(self, session: SessionBase) -> None:
        link = session.plugin_state.pop(self.display_name, None)
        if link is None:
            return
        self._say(f"Destroying session {session.remote_id}")
        try:
            self._run(link, self._destroy(session, link))
        finally:
            if self._release(link):
                assert isinstance(link.client, BlockingClient)
                link.client.close()

    async def session_free_async(self, session: SessionBase) -> None:
        link = session.plugin_state.pop(self.display_name, None)
        if link is None:
            return
        self._say(f"Destroying session {session.remote_id}")
        try:
            await self._arun(link, self._destroy(session, link))
        finally:
            await self._close_link(link)

    # ------------------------------------------------------------------ resources

    def _register(self, session: SessionBase, resource: Resource) -> Plan:
        link = self._link(session)
        rid = link.resources.get(resource.id)
        if rid is None:
            rid = yield ("resource.create", [int(resource.type), resource.names, resource.blobs])
            link.resources[resource.id] = rid
        yield ("resource.register", [session.remote_id, rid])

    def _unregister(self, session: SessionBase, resource: Resource) -> Plan:
        link = self._link(session)
        rid = link.resources.get(resource.id)
        if rid is None:
            return
        yield ("resource.unregister", [session.remote_id, rid])
        if len(resource.sessions) <= 1:
            del link.resources[resource.id]
            yield ("resource.destroy", [rid])

    def resource_register(self, session: SessionBase, resource: Resource) -> None:
        self._run(self._link(session), self._register(session, resource))

    async def resource_register_async(self, session: SessionBase, resource: Resource) -> None:
        await self._arun(self._link(session), self._register(session, resource))

    def resource_unregister(self, session: SessionBase, resource: Resource) -> None:
        self._run(self._link(session), self._unregister(session, resource))

    async def resource_unregister_async(self, session: SessionBase, resource: Resource) -> None:
        await self._arun(self._link(session), self._unregister(session, resource))

    # ------------------------------------------------------------------ ops

    def _forward(self, op: OpType) -> Impl:
        number = int(op)
        needs_rid = op in RESOURCE_OPS
        timeout = self.timeout

        def wire(session: SessionBase, link: _Link, args: tuple[Any, ...]) -> list[Any]:
            out = list(args)
            if needs_rid:
                out[0] = link.resources[args[0]]
            return [session.remote_id, number, out]

        def call_sync(session: SessionBase, *args: Any) -> Any:
            link = self._link(session)
            client = link.client
            assert isinstance(client, BlockingClient)
            return client.call("op", wire(session, link, args), timeout)

        async def call_async(session: SessionBase, *args: Any) -> Any:
            link = self._link(session)
            client = link.client
            if link.blocking:
                return await asyncio.to_thread(call_sync, session, *args)
            assert isinstance(client, AsyncClient)
            return await client.call("op", wire(session, link, args), timeout)

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
        if self._sync is not None:
            assert isinstance(self._sync.client, BlockingClient)
            self._sync.client.close()
            self._sync = None
        self._links.clear()
