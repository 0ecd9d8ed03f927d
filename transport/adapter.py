"""One asyncio protocol for both ends: bytes to the sans-IO connection, events to a handler.

`Link` is the `BufferedProtocol` the transport drives. It owns the frame writer and
the sans-IO `Connection` (which the handler makes, once it knows the peer), and routes
each event through an event-type -> handler-method table, as grpclib's
`EventsProcessor` does. The client and the agent differ only in their `Handler`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vaccel.protocol.connection import Connection, State
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import (
    Auth,
    Cancel,
    GoAway,
    Hello,
    Ping,
    Rejected,
    Request,
    Response,
)
from vaccel.protocol.frames import Buffer
from vaccel.protocol.status import Status

from .writer import FrameWriter


class Handler:
    """What one end does with a connection's events; subclasses override what they expect.

    An event a side never expects is a protocol error the connection state machine
    already refuses (a client never sees a Request), so the defaults ignore it.
    """

    def connection_made(self, link: Link) -> Connection:
        """The transport is up: make the sans-IO connection for this peer."""
        raise NotImplementedError

    def on_hello(self, event: Hello) -> None:
        """The peer's HELLO arrived."""

    def on_auth(self, event: Auth) -> None:
        """An AUTH frame arrived (the client's proof, or the agent's verdict)."""

    def on_request(self, event: Request) -> None:
        """A complete request arrived (agent)."""

    def on_rejected(self, event: Rejected) -> None:
        """A request was refused before it reached the application (agent)."""

    def on_response(self, event: Response) -> None:
        """A complete response arrived (client)."""

    def on_cancel(self, event: Cancel) -> None:
        """The client gave up on a stream (agent)."""

    def on_goaway(self, event: GoAway) -> None:
        """The peer is closing the connection."""

    def on_ping(self, event: Ping) -> None:
        """A PING answer arrived (requests are answered by the link itself)."""

    def on_protocol_error(self, exc: ProtocolError) -> None:
        """The peer broke the protocol; the link sends GOAWAY and closes after this."""

    def writing_paused(self, paused: bool) -> None:
        """The transport's write buffer went over (True) or back under (False) its mark."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is gone."""


class Link(asyncio.BufferedProtocol):
    """The asyncio protocol of one connection, for the client and the agent alike."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.conn: Connection | None = None
        self.transport: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writer: FrameWriter | None = None
        self.closed = False
        self._routes: dict[type, Callable[[Any], None]] = {
            Request: handler.on_request,
            Response: handler.on_response,
            Hello: handler.on_hello,
            Auth: handler.on_auth,
            Rejected: handler.on_rejected,
            Cancel: handler.on_cancel,
            GoAway: self._on_goaway,
            Ping: self._on_ping,
        }

    # ------------------------------------------------------------------ transport side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.writer = FrameWriter(self.loop)
        self.writer.attach(transport)
        self.conn = self.handler.connection_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self.conn is not None
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        assert self.conn is not None
        try:
            events = self.conn.buffer_updated(nbytes)
        except ProtocolError as exc:
            self.fail(exc)
            return
        routes = self._routes
        for event in events:
            routes[type(event)](event)

    def eof_received(self) -> bool | None:
        return None  # the peer stopped sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.writer is not None:
            self.writer.connection_lost(exc or ConnectionResetError("connection closed"))
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        assert self.writer is not None
        self.writer.pause_writing()
        self.handler.writing_paused(True)

    def resume_writing(self) -> None:
        assert self.writer is not None
        self.writer.resume_writing()
        self.handler.writing_paused(False)

    # ------------------------------------------------------------------ events handled here

    def _on_ping(self, event: Ping) -> None:
        if event.ack:
            self.handler.on_ping(event)
        elif self.conn is not None:
            self.send(self.conn.ping(event.payload, ack=True))

    def _on_goaway(self, event: GoAway) -> None:
        self.handler.on_goaway(event)
        self.close()

    # ------------------------------------------------------------------ what handlers call

    @property
    def peername(self) -> Any:
        """The peer's address as the transport reports it."""
        return self.transport.get_extra_info("peername") if self.transport else None

    def extra(self, name: str) -> Any:
        """A transport extra (`socket`, `peercert`, `ssl_object`, ...)."""
        return self.transport.get_extra_info(name) if self.transport else None

    def send(self, data: bytes, coalesce: bool = True) -> None:
        """Write whole small frames (coalesced with others of this loop iteration)."""
        if self.writer is not None:
            self.writer.send(data, coalesce)

    def send_message(
        self, stream_id: int, frames: list[list[Buffer]], coalesce: bool = True
    ) -> asyncio.Future[None] | None:
        """Write one message; a future when its DATA frames had to be queued."""
        assert self.writer is not None
        return self.writer.send_message(stream_id, frames, coalesce)

    def abort(self, stream_id: int) -> None:
        """Stop writing a message still queued (an ABORT frame ends it)."""
        if self.writer is not None:
            self.writer.abort(stream_id)

    def goaway(self, status: Status, message: str) -> None:
        """Say why, then close."""
        self.closed = True
        if self.writer is not None and self.conn is not None:
            self.writer.close_with(self.conn.goaway(status, message))
        elif self.transport is not None:
            self.transport.close()

    def fail(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: tell the handler, send GOAWAY, close."""
        self.handler.on_protocol_error(exc)
        if not self.closed:
            self.goaway(exc.status, exc.message)

    def close(self) -> None:
        """Close the transport (after what is buffered is sent)."""
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_reading(self) -> None:
        """Stop reading from the peer (backpressure): its sends back up in the kernel."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the peer again."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    @property
    def handshaking(self) -> bool:
        """True until the peer's HELLO arrived."""
        return self.conn is None or self.conn.state is State.AWAIT_HELLO
