"""The asyncio client: one connection to an agent, many calls in flight on it.

Each call gets an odd stream id and a future; responses resolve futures in whatever
order the agent finishes. A per-call deadline is sent to the agent and enforced here;
a call that times out or is cancelled sends CANCEL so the agent stops working on it.
When the connection goes, every pending call fails at once with UnavailableError.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from vaccel import compat
from vaccel.client.blocking import encode_error, response_error, unreachable
from vaccel.errors import (
    BadArgumentError,
    DeadlineExceededError,
    UnavailableError,
    VaccelError,
)
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Connection, GoAway, Hello, Ping, Response
from vaccel.protocol.errors import ProtocolError
from vaccel.transport.writer import FrameWriter


class _ClientProtocol(asyncio.BufferedProtocol):
    def __init__(self, address: Address) -> None:
        self.address = address
        self.proto = Connection(client=True, agent="pyvaccel-client/0.1.0")
        self.pending: dict[int, asyncio.Future[Response]] = {}
        self.loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[Hello] = self.loop.create_future()
        self.pings: list[asyncio.Future[None]] = []
        self.transport: asyncio.Transport | None = None
        self.error: VaccelError | None = None
        self.writer = FrameWriter(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.writer.attach(transport)
        self.writer.send(self.proto.hello())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.proto.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            events = self.proto.buffer_updated(nbytes)
        except ProtocolError as exc:
            self.writer.close_with(self.proto.goaway(exc.status, exc.message))
            self._fail(
                UnavailableError(
                    message=f"agent at {self.address} broke the protocol: {exc.message}"
                )
            )
            return
        for event in events:
            if type(event) is Response:
                fut = self.pending.pop(event.stream_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(event)
            elif isinstance(event, Hello):
                if not self.hello.done():
                    self.hello.set_result(event)
            elif isinstance(event, GoAway):
                self._fail(
                    UnavailableError(
                        message=f"agent at {self.address} closed the connection: {event.message} "
                        f"({event.status.name})"
                    )
                )
            elif isinstance(event, Ping) and event.ack and self.pings:
                waiter = self.pings.pop(0)
                if not waiter.done():
                    waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(
            UnavailableError(message=f"connection to the agent at {self.address} was lost{reason}")
        )

    def _fail(self, error: VaccelError) -> None:
        if self.error is None:
            self.error = error
        self.writer.connection_lost(self.error)
        futures: list[asyncio.Future[Any]] = [*self.pending.values(), *self.pings]
        for fut in futures:
            if not fut.done():
                fut.set_exception(self.error)
        if not self.hello.done():
            self.hello.set_exception(self.error)
        self.pending.clear()
        self.pings.clear()

    def pause_writing(self) -> None:
        self.writer.pause_writing()

    def resume_writing(self) -> None:
        self.writer.resume_writing()


async def _open(address: Address, factory: Any) -> tuple[asyncio.BaseTransport, Any]:
    loop = asyncio.get_running_loop()
    if address.scheme == "tcp":
        return await loop.create_connection(factory, address.host, address.port)
    if address.scheme == "unix":
        return await loop.create_unix_connection(factory, address.path)
    if not hasattr(socket, "AF_VSOCK"):
        raise OSError("AF_VSOCK is not supported on this platform")
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (address.cid, address.port))
    except BaseException:
        sock.close()
        raise
    return await loop.create_connection(factory, sock=sock)


class AsyncClient:
    """A connection to an agent; `call` is safe to use from many tasks at once."""

    def __init__(self, protocol: _ClientProtocol) -> None:
        self._p = protocol
        self.address = protocol.address
        self.peer: Hello | None = None

    @classmethod
    async def connect(cls, address: str | Address, timeout: float = 10.0) -> AsyncClient:
        """Connect and complete the handshake; UnavailableError says why it failed."""
        try:
            addr = parse_address(address) if isinstance(address, str) else address
        except AddressError as exc:
            raise BadArgumentError(message=str(exc)) from None
        try:
            async with compat.timeout(timeout):
                _, protocol = await _open(addr, lambda: _ClientProtocol(addr))
                client = cls(protocol)
                client.peer = await protocol.hello
        except VaccelError:  # the agent answered, with a GOAWAY
            raise
        except OSError as exc:  # TimeoutError included
            raise unreachable(addr, exc, timeout) from None
        return client

    @property
    def closed(self) -> bool:
        return (
            self._p.error is not None or self._p.transport is None or self._p.transport.is_closing()
        )

    async def call(
        self,
        method: str,
        args: Any,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and wait for its answer (or its deadline)."""
        p = self._p
        if p.error is not None:
            raise p.error
        try:
            sid, frames = p.proto.request(method, args, timeout, metadata)
        except EncodeError as exc:
            raise encode_error(method, exc) from None
        fut: asyncio.Future[Response] = p.loop.create_future()
        p.pending[sid] = fut
        p.writer.send_message(sid, frames, coalesce=len(p.pending) > 1)
        try:
            if timeout is None:
                resp = await fut
            else:
                async with compat.timeout(timeout):
                    resp = await fut
        except TimeoutError:
            self._abandon(sid)
            raise DeadlineExceededError(
                message=f"{method} did not finish within {timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            self._abandon(sid)
            raise
        if resp.status:
            raise response_error(resp)
        return resp.result

    def _abandon(self, sid: int) -> None:
        p = self._p
        p.pending.pop(sid, None)
        p.writer.abort(sid)
        p.writer.send(p.proto.cancel(sid))

    async def ping(self, timeout: float = 5.0) -> float:
        """One PING round trip, in seconds."""
        p = self._p
        if p.error is not None:
            raise p.error
        assert p.transport is not None
        waiter: asyncio.Future[None] = p.loop.create_future()
        p.pings.append(waiter)
        start = time.perf_counter()
        p.writer.send(p.proto.ping(os.urandom(8)))
        try:
            async with compat.timeout(timeout):
                await waiter
        except TimeoutError:
            raise DeadlineExceededError(message=f"no PING answer within {timeout:g} s") from None
        return time.perf_counter() - start

    async def close(self) -> None:
        p = self._p
        if p.transport is not None and not p.transport.is_closing():
            p.transport.close()
        p._fail(UnavailableError(message="client closed"))
        await asyncio.sleep(0)
