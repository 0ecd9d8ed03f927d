"""The asyncio client: one connection to an agent, many calls in flight on it.

Each call gets an odd stream id and a future; responses resolve futures in whatever
order the agent finishes. A per-call deadline is sent to the agent and enforced here;
a call that times out or is cancelled stops sending its data (ABORT) and sends CANCEL,
so the agent drops it. An idle connection is probed with PINGs: an agent that stays
silent is declared dead, and every pending call fails with ConnectionLostError. When
the connection goes, every pending call fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vaccel import compat
from vaccel.buffers import POOL
from vaccel.errors import (
    BadArgumentError,
    ConnectionLostError,
    DeadlineExceededError,
    VaccelError,
)
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.protocol.connection import Connection
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Auth, GoAway, Hello, Ping, Response
from vaccel.transport.adapter import Handler, Link
from vaccel.transport.errors import broke_protocol, lost, map_connect_errors
from vaccel.transport.sockets import open_connection

from .common import (
    CLIENT_NAME,
    DEFAULT_KEEPALIVE,
    Handshake,
    call_result,
    goaway_error,
    keepalive_expired,
    start_call,
)


class _ClientHandler(Handler):
    """The client's side of the events: resolve calls, watch liveness."""

    def __init__(
        self, address: Address, keepalive: float, token: str | None, public: bool = False
    ) -> None:
        self.address = address
        self.keepalive = keepalive
        self.handshake = Handshake(address, token, public)
        self.agent_hello: Hello | None = None
        self.link: Link | None = None
        self.proto: Connection | None = None
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, asyncio.Future[Response]] = {}
        self.hello: asyncio.Future[Hello] = self.loop.create_future()
        self.pings: list[asyncio.Future[None]] = []
        self.error: VaccelError | None = None
        self._seen = -1
        self._probe_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: While the agent does not take what we write: done when it does again.
        self.resumed: asyncio.Future[None] | None = None
        #: Done once the transport is closed (a TLS shutdown included).
        self.gone: asyncio.Future[None] = self.loop.create_future()

    def writing_paused(self, paused: bool) -> None:
        if paused:
            if self.resumed is None:
                self.resumed = self.loop.create_future()
        elif self.resumed is not None:
            if not self.resumed.done():
                self.resumed.set_result(None)
            self.resumed = None

    def connection_made(self, link: Link) -> Connection:
        self.link = link
        self.proto = Connection(client=True, agent=CLIENT_NAME, allocate=POOL.array)
        link.send(self.proto.hello())
        if self.keepalive > 0:
            self._timer = self.loop.call_later(self.keepalive, self._tick)
        return self.proto

    def on_hello(self, event: Hello) -> None:
        assert self.proto is not None and self.link is not None
        self.agent_hello = event
        try:
            frame = self.handshake.on_hello(self.proto, event)
        except VaccelError as exc:
            self.fail(exc)
            self.link.close()
            return
        if frame is not None:
            self.link.send(frame)  # the connection is ready once the agent accepts it
        elif not self.hello.done():
            self.hello.set_result(event)

    def on_auth(self, event: Auth) -> None:
        assert self.proto is not None and self.link is not None and self.agent_hello
        try:
            self.handshake.on_auth(self.proto, event)
        except VaccelError as exc:
            self.fail(exc)
            self.link.close()
            return
        if not self.hello.done():
            self.hello.set_result(self.agent_hello)

    def on_response(self, event: Response) -> None:
        if event.status and self.link is not None:
            self.link.abort(event.stream_id)  # refused early: stop sending its data
        fut = self.pending.pop(event.stream_id, None)
        if fut is not None and not fut.done():
            fut.set_result(event)

    def on_goaway(self, event: GoAway) -> None:
        self.fail(goaway_error(self.address, event))

    def on_ping(self, event: Ping) -> None:
        if self.pings:
            waiter = self.pings.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    def on_protocol_error(self, exc: ProtocolError) -> None:
        handshaking = self.link is not None and self.link.handshaking
        self.fail(broke_protocol(self.address, exc, handshaking))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.fail(lost(self.address, exc, handshaking=not self.hello.done()))
        if not self.gone.done():
            self.gone.set_result(None)

    def fail(self, error: VaccelError) -> None:
        """Fail every waiter with `error` (the first reason is kept)."""
        if self.error is None:
            self.error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        futures: list[asyncio.Future[Any]] = [*self.pending.values(), *self.pings, self.hello]
        for fut in futures:
            if not fut.done():
                fut.set_exception(self.error)
                if fut is self.hello:
                    fut.exception()  # retrieved: connect() may already have given up
        self.pending.clear()
        self.pings.clear()
        self.writing_paused(False)  # callers waiting to write learn of the error

    def _tick(self) -> None:
        """Keepalive: PING after a silence; give up if the silence outlasts the PING."""
        self._timer = None
        if self.error is not None or self.link is None or self.proto is None:
            return
        received = self.proto.reader.received
        now = time.monotonic()
        if received != self._seen:
            self._seen, self._probe_sent = received, None
        elif self._probe_sent is None:
            self._probe_sent = now
            self.link.send(self.proto.ping(os.urandom(8)))
        elif now - self._probe_sent >= self.keepalive:
            self.fail(keepalive_expired(self.address, self.keepalive))
            self.link.close()
            return
        self._timer = self.loop.call_later(self.keepalive, self._tick)


class AsyncClient:
    """A connection to an agent; `call` is safe to use from many tasks at once."""

    def __init__(self, link: Link, handler: _ClientHandler, address: Address) -> None:
        self._link = link
        self._h = handler
        self.address = address
        self.peer: Hello | None = None

    @classmethod
    async def connect(
        cls,
        address: str | Address,
        timeout: float = 10.0,
        *,
        keepalive: float = DEFAULT_KEEPALIVE,
        ssl_context: ssl.SSLContext | None = None,
        source: str | None = None,
        token: str | None = None,
        public: bool = False,
    ) -> AsyncClient:
        """Connect and complete the handshake (proving `token` when the agent wants one).

        UnavailableError says why it failed; UnauthenticatedError that the token was
        refused or is missing. `public`: without a token, connect anyway for the agent's
        public methods (`health.check`).
        """
        try:
            addr = parse_address(address) if isinstance(address, str) else address
        except AddressError as exc:
            raise BadArgumentError(message=str(exc)) from None

        async def over_socket(factory: Callable[[], Link]) -> Any:
            _, link = await open_connection(addr, factory, ssl_context=ssl_context, source=source)
            return link

        return await cls.open_with(
            over_socket, addr, timeout, keepalive=keepalive, token=token, public=public
        )

    @classmethod
    async def open_with(
        cls,
        opener: Callable[[Callable[[], Link]], Awaitable[Any]],
        address: Address,
        timeout: float = 10.0,
        *,
        keepalive: float = DEFAULT_KEEPALIVE,
        token: str | None = None,
        public: bool = False,
    ) -> AsyncClient:
        """`connect` over a link that `opener(protocol_factory)` makes: a socket, or an
        in-memory pipe to an agent in this process (`vaccel.transport.memory`)."""
        handler = _ClientHandler(address, keepalive, token, public)
        addr = address
        with map_connect_errors(addr, timeout):
            async with compat.timeout(timeout):
                link = await opener(lambda: Link(handler))
                assert isinstance(link, Link)
                client = cls(link, handler, addr)
                try:
                    client.peer = await handler.hello
                except BaseException:
                    link.close()
                    raise
        return client

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed: calls would fail at once."""
        return self._h.error is not None or self._link.closed

    @property
    def error(self) -> VaccelError | None:
        """Why the connection is unusable, once it is."""
        return self._h.error

    async def call(
        self,
        method: str,
        args: Any,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        into: Any = None,
    ) -> Any:
        """Send one request and wait for its answer (or its deadline).

        `into`: an array to receive the answer's single buffer straight into.
        """
        h = self._h
        if h.resumed is not None:
            await self._writable(method, timeout)
        if h.error is not None:
            raise h.error
        assert h.proto is not None
        sid, frames = start_call(h.proto, method, args, timeout, metadata, into)
        fut: asyncio.Future[Response] = h.loop.create_future()
        h.pending[sid] = fut
        self._link.send_message(sid, frames, coalesce=len(h.pending) > 1)
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
        return call_result(resp)

    async def _writable(self, method: str, timeout: float | None) -> None:
        """Backpressure: while the agent takes nothing more, new calls wait (within
        their deadline) instead of piling up in this process."""
        resumed = self._h.resumed
        if resumed is None:
            return
        try:
            async with compat.timeout(timeout):
                await asyncio.shield(resumed)
        except TimeoutError:
            raise DeadlineExceededError(
                message=f"{method} could not be sent within {timeout:g} s: the agent at "
                f"{self.address} takes nothing more"
            ) from None

    def _abandon(self, sid: int) -> None:
        h = self._h
        h.pending.pop(sid, None)
        if h.error is None and h.proto is not None:
            self._link.abort(sid)
            self._link.send(h.proto.cancel(sid))

    async def ping(self, timeout: float = 5.0) -> float:
        """One PING round trip, in seconds."""
        h = self._h
        if h.error is not None:
            raise h.error
        assert h.proto is not None
        waiter: asyncio.Future[None] = h.loop.create_future()
        h.pings.append(waiter)
        start = time.perf_counter()
        self._link.send(h.proto.ping(os.urandom(8)))
        try:
            async with compat.timeout(timeout):
                await waiter
        except TimeoutError:
            raise DeadlineExceededError(message=f"no PING answer within {timeout:g} s") from None
        return time.perf_counter() - start

    async def close(self, wait: float = 1.0) -> None:
        """Close the connection; pending calls fail with UnavailableError. Returns once
        the transport is closed (a TLS shutdown takes a round trip), at most `wait` s."""
        self._link.close()
        self._h.fail(ConnectionLostError(message=f"client closed its connection to {self.address}"))
        await asyncio.sleep(0)
        if self._link.transport is not None and not self._h.gone.done():
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._h.gone), wait)
