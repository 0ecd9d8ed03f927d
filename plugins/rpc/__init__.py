"""The rpc plugin (alias vsock): forwards every op, session and resource to an agent.

Sessions through it live on an agent (`Session.is_remote`, `remote_id`,
`remote_address`). VACCEL_RPC_ADDRESS names one agent or a comma-separated list; each
new session is placed on one of them (`links.Placement`) and stays there, since
sessions and resources are state on that agent. What each call does is written once,
as a plan (a generator of requests), and driven either by the blocking client (sync
sessions: no event loop, no thread hop) or by the async client (AsyncSessions: many
calls in flight on one connection).

A session whose connection is lost fails every later call with SessionLostError: it
is never recreated behind the caller's back with other state.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from vaccel import files, log
from vaccel.buffers import RECEIVE_INTO
from vaccel.catalogue import CATALOGUE
from vaccel.client.asyncclient import AsyncClient
from vaccel.client.blocking import BlockingClient
from vaccel.client.credentials import client_credentials
from vaccel.enums import OpType, PluginType
from vaccel.errors import ConnectionLostError, PluginError, SessionLostError
from vaccel.plugin import Impl, Plugin, ResourceLike, SessionLike
from vaccel.protocol.address import Address, AddressError, parse_address

from .links import Link, Placement, connect_async, connect_sync, release

#: Resources up to this many bytes are uploaded at once; larger ones (models) are first
#: looked up by digest in the agent's resource cache, so each is sent once per tenant.
UPLOAD_WITHOUT_ASKING = 64 << 10

#: A plan yields (method, args) requests and receives each one's result.
Plan = Generator[tuple[str, list[Any]], Any, Any]

#: The order vAccel's vsock plugin registers its ops in (the seed's transcript).
SEED_ORDER = [
    OpType.BLAS_SGEMM,
    OpType.IMAGE_CLASSIFY,
    OpType.IMAGE_DETECT,
    OpType.IMAGE_SEGMENT,
    OpType.IMAGE_DEPTH,
    OpType.IMAGE_POSE,
    OpType.TF_MODEL_LOAD,
    OpType.TF_MODEL_UNLOAD,
    OpType.TF_MODEL_RUN,
    OpType.MINMAX,
    OpType.FPGA_ARRAYCOPY,
    OpType.FPGA_MMULT,
    OpType.FPGA_VECTORADD,
    OpType.FPGA_PARALLEL,
    OpType.EXEC,
]


def parse_addresses(raw: str) -> list[Address]:
    """VACCEL_RPC_ADDRESS: one address or a comma-separated list."""
    return [parse_address(part.strip()) for part in raw.split(",") if part.strip()]


class RpcPlugin(Plugin):
    """Forwards sessions, resources and every op of the table to an agent."""

    name = "rpc"
    type = PluginType.REMOTE
    virtio = True

    def init(self) -> None:
        try:
            addresses = parse_addresses(self.config.rpc_address)
        except AddressError as exc:
            raise PluginError(message=f"{self.display_name}: VACCEL_RPC_ADDRESS: {exc}") from None
        if not addresses:
            raise PluginError(message=f"{self.display_name}: VACCEL_RPC_ADDRESS is empty")
        self.placement = Placement(addresses)
        self.timeout = self.config.rpc_timeout
        self.credentials = client_credentials(self.config, addresses)

    def _say(self, message: str) -> None:
        log.debug(f"[{self.display_name}] {message}")

    def _blocking(self, address: Address) -> BlockingClient:
        return BlockingClient(
            address, keepalive=self.config.rpc_keepalive, **self.credentials.for_address(address)
        )

    async def _async(self, address: Address) -> AsyncClient:
        return await AsyncClient.connect(
            address, keepalive=self.config.rpc_keepalive, **self.credentials.for_address(address)
        )

    # ------------------------------------------------------------------ driving plans

    def _run(self, link: Link, plan: Plan) -> Any:
        client = link.client
        assert isinstance(client, BlockingClient)
        try:
            request = next(plan)
            while True:
                request = plan.send(client.call(*request, timeout=self.timeout))
        except StopIteration as done:
            return done.value

    async def _arun(self, link: Link, plan: Plan) -> Any:
        client = link.client
        assert isinstance(client, AsyncClient)
        try:
            request = next(plan)
            while True:
                request = plan.send(await client.call(*request, timeout=self.timeout))
        except StopIteration as done:
            return done.value

    def _link(self, session: SessionLike) -> Link:
        """The live link of a session; SessionLostError once its connection is gone."""
        link: Link | None = session.plugin_state.get(self.display_name)
        if link is None:
            raise SessionLostError(message=f"session {session.id} has no agent connection")
        if link.client.closed:
            raise self._lost(session, link)
        return link

    def _lost(self, session: SessionLike, link: Link) -> SessionLostError:
        reason = getattr(link.client.error, "message", "connection closed")
        return SessionLostError(
            message=f"session {session.id} was lost with its agent at {link.address} "
            f"({reason}); open a new session"
        )

    # ------------------------------------------------------------------ sessions

    def _create(self, session: SessionLike) -> Plan:
        session.remote_id = yield ("session.create", [int(session.flags)])

    def _destroy(self, session: SessionLike, link: Link) -> Plan:
        if not link.client.closed:
            yield ("session.destroy", [session.remote_id])

    def session_init(self, session: SessionLike) -> None:
        self._say("Initializing session")
        for attempt in range(2):  # a kept connection may die just before the create
            link = connect_sync(self.placement, self._blocking)
            try:
                self._run(link, self._create(session))
                break
            except ConnectionLostError:
                self._drop(link)
                if attempt:
                    raise
            except BaseException:
                self._drop(link)
                raise
        session.plugin_state[self.display_name] = link
        self._say(f"New session {session.remote_id}")

    async def session_init_async(self, session: SessionLike) -> None:
        self._say("Initializing session")
        for attempt in range(2):  # a connection lost with the create owns nothing: retry
            link = await connect_async(self.placement, self._async)
            try:
                await self._arun(link, self._create(session))
                break
            except ConnectionLostError:
                await self._adrop(link)
                if attempt:
                    raise
            except BaseException:
                await self._adrop(link)
                raise
        session.plugin_state[self.display_name] = link
        self._say(f"New session {session.remote_id}")

    def _drop(self, link: Link) -> None:
        if release(link):
            self._say(f"Destroying {self.display_name} client")
            client = link.client
            assert isinstance(client, BlockingClient)
            client.close()

    async def _adrop(self, link: Link) -> None:
        if release(link):
            self._say(f"Destroying {self.display_name} client")
            client = link.client
            if isinstance(client, AsyncClient):
                await client.close()
            else:
                client.close()

    def session_free(self, session: SessionLike) -> None:
        link: Link | None = session.plugin_state.pop(self.display_name, None)
        if link is None:
            return
        self._say(f"Destroying session {session.remote_id}")
        try:
            self._run(link, self._destroy(session, link))
        finally:
            self._drop(link)

    async def session_free_async(self, session: SessionLike) -> None:
        link: Link | None = session.plugin_state.pop(self.display_name, None)
        if link is None:
            return
        self._say(f"Destroying session {session.remote_id}")
        try:
            await self._arun(link, self._destroy(session, link))
        finally:
            await self._adrop(link)

    # ------------------------------------------------------------------ resources

    def _register(self, session: SessionLike, link: Link, resource: ResourceLike) -> Plan:
        rid = link.resources.get(resource.id)
        if rid is None:
            kind, digest = int(resource.type), resource.digest()
            if sum(len(b) for b in resource.blobs) > UPLOAD_WITHOUT_ASKING:
                rid = yield ("resource.find", [kind, digest])  # sent once per tenant
            if rid is None:
                rid = yield ("resource.create", [kind, resource.names, resource.blobs, digest])
            link.resources[resource.id] = rid
        yield ("resource.register", [session.remote_id, rid])
        link.resource_users[resource.id] = link.resource_users.get(resource.id, 0) + 1
        resource.remote_id = rid  # type: ignore[attr-defined]

    def _unregister(
        self, session: SessionLike, link: Link, resource: ResourceLike, last: bool
    ) -> Plan:
        """Unregister; the agent's copy goes with the last session of this connection
        using it (others may hold it on other agents), `remote_id` with the last of all."""
        rid = link.resources.get(resource.id)
        if rid is None:
            return
        yield ("resource.unregister", [session.remote_id, rid])
        users = link.resource_users.pop(resource.id, 1) - 1
        if users > 0:
            link.resource_users[resource.id] = users
        else:
            del link.resources[resource.id]
            yield ("resource.destroy", [rid])
        if last:
            resource.remote_id = 0  # type: ignore[attr-defined]

    @staticmethod
    def _last_user(resource: ResourceLike) -> bool:
        return len(getattr(resource, "sessions", ())) <= 1

    def resource_register(self, session: SessionLike, resource: ResourceLike) -> None:
        link = self._link(session)
        self._run(link, self._register(session, link, resource))

    async def resource_register_async(self, session: SessionLike, resource: ResourceLike) -> None:
        link = self._link(session)
        await self._arun(link, self._register(session, link, resource))

    def resource_unregister(self, session: SessionLike, resource: ResourceLike) -> None:
        link = self._link(session)
        self._run(link, self._unregister(session, link, resource, self._last_user(resource)))

    async def resource_unregister_async(self, session: SessionLike, resource: ResourceLike) -> None:
        link = self._link(session)
        await self._arun(link, self._unregister(session, link, resource, self._last_user(resource)))

    # ------------------------------------------------------------------ ops

    def _forward(self, op: OpType) -> Impl:
        number = int(op)
        spec = CATALOGUE[op]
        needs_rid = spec.resource is not None
        positions = spec.file_results
        timeout = self.timeout

        def local(session: SessionLike, result: Any) -> Any:
            if positions is None:
                return result
            return files.unpack(result, positions, session.rundir)

        def request(session: SessionLike, link: Link, args: tuple[Any, ...]) -> list[Any]:
            out = list(args)
            if needs_rid:
                out[0] = link.resources[args[0]]
            return [session.remote_id, number, out]

        def call_sync(session: SessionLike, *args: Any) -> Any:
            link = self._link(session)
            client = link.client
            assert isinstance(client, BlockingClient)
            endpoint = link.endpoint
            endpoint.outstanding += 1
            try:
                result = client.call(
                    "op", request(session, link, args), timeout, into=RECEIVE_INTO.get()
                )
                return local(session, result)
            except ConnectionLostError as exc:
                raise self._lost(session, link) from exc
            finally:
                endpoint.outstanding -= 1

        async def call_async(session: SessionLike, *args: Any) -> Any:
            link = self._link(session)
            client = link.client
            assert isinstance(client, AsyncClient)
            endpoint = link.endpoint
            endpoint.outstanding += 1
            try:
                result = await client.call(
                    "op", request(session, link, args), timeout, into=RECEIVE_INTO.get()
                )
                return local(session, result)
            except ConnectionLostError as exc:
                raise self._lost(session, link) from exc
            finally:
                endpoint.outstanding -= 1

        return Impl(call_sync, call_async, blocking=True)

    def operations(self) -> dict[OpType, Impl]:
        rest = [op for op in CATALOGUE if op not in SEED_ORDER]
        return {op: self._forward(op) for op in [*SEED_ORDER, *rest]}

    def fini(self) -> None:
        for endpoint in self.placement.endpoints:
            link = endpoint.sync
            if link is not None and isinstance(link.client, BlockingClient):
                link.client.close()
            endpoint.sync = None
            endpoint.loops.clear()
