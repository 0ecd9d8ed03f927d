"""The protocol state machine of one connection, sans-IO.

Theory of operation. Bytes from the peer go in through `get_buffer`/`buffer_updated`
(the shape of asyncio's BufferedProtocol; `receive` wraps it for plain byte strings),
a `FrameReader` turns them into frames, and a `{frame type: handler}` table turns
frames into events (`vaccel.protocol.events`). Bytes for the peer come out of the
`hello`/`request`/`response`/... methods as frames, each a list of buffers for one
scatter-gather write.

The connection's state is explicit (`State`): it waits for the peer's HELLO, is open,
or is closed after a GOAWAY either way. A message with out-of-band buffers is
*assembled*: its body is bound to one array sized from its announced buffer lengths,
and the DATA frames that follow are received straight into it. What a peer makes this
side hold (the receive buffer, assemblies, requests until answered) is charged to an
`Account` before it is allocated. A frame stream that can no longer be trusted raises
a fatal `ProtocolError` (answer with `goaway`, then close); a bad message inside a
sound frame stream is `Rejected` on its stream and its DATA frames are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack

from . import codec
from .assembly import MessageAssembly, _Assembly
from .errors import ProtocolError
from .events import Auth, Cancel, Event, GoAway, Hello, Ping, Rejected, Response
from .frames import Flags, FrameType
from .limits import DEFAULT_LIMITS, Account, Limits, unlimited
from .outgoing import DATA_FRAME, KNOWN_CAPS, PROTOCOL_VERSION, MessageWriter
from .reader import DATA_DONE, Frame, FrameReader
from .state import State
from .status import Status

__all__ = ["DATA_FRAME", "PROTOCOL_VERSION", "Connection", "State"]

# Plain ints for the hot path (IntFlag arithmetic runs in Python).
_END, _ACK, _HAS_DATA, _ABORT = int(Flags.END), int(Flags.ACK), int(Flags.DATA), int(Flags.ABORT)
_STREAM_ZERO = frozenset({FrameType.HELLO, FrameType.GOAWAY, FrameType.PING, FrameType.AUTH})
#: Before authentication: the handshake, and small requests (the agent answers only its
#: public methods, the health check) with their responses.
_BEFORE_AUTH = frozenset(
    {
        FrameType.AUTH,
        FrameType.GOAWAY,
        FrameType.PING,
        FrameType.HELLO,
        FrameType.REQUEST,
        FrameType.RESPONSE,
        FrameType.CANCEL,
    }
)


def _request_fields(body: list[Any]) -> tuple[list[Any], Any]:
    """[method, args, timeout_ms, metadata, sizes] -> ([method, timeout_ms, metadata], args)."""
    method, args, timeout_ms, metadata, _ = body
    if not isinstance(method, str):
        raise ProtocolError("request method must be a string", fatal=False)
    if timeout_ms is not None and (
        isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms < 0
    ):
        raise ProtocolError(
            f"timeout_ms must be a non-negative number; got {timeout_ms!r}", fatal=False
        )
    if not isinstance(metadata, dict):
        raise ProtocolError("metadata must be a map", fatal=False)
    return [method, timeout_ms, metadata], args


def _response_fields(body: list[Any]) -> tuple[list[Any], Any]:
    """[status, message, errno, result, sizes] -> ([status, message, errno], result)."""
    status, message, errno_, result, _ = body
    if not isinstance(status, int):
        raise ProtocolError("response status must be an integer", fatal=False)
    return [
        Status.coerce(status),
        message if isinstance(message, str) else str(message),
        errno_ if isinstance(errno_, int) else 0,
    ], result


_FIELDS: dict[int, Callable[[list[Any]], tuple[list[Any], Any]]] = {
    FrameType.REQUEST: _request_fields,
    FrameType.RESPONSE: _response_fields,
}
_SHAPE: dict[int, str] = {
    FrameType.REQUEST: "request must be [method, args, timeout_ms, metadata, sizes]",
    FrameType.RESPONSE: "response must be [status, message, errno, result, sizes]",
}


class Connection(MessageAssembly, MessageWriter):
    """One side (client or server) of one connection: the state machine that turns
    frames into events (receiving DATA: `MessageAssembly`; sending: `MessageWriter`)."""

    def __init__(
        self,
        client: bool,
        limits: Limits = DEFAULT_LIMITS,
        agent: str = "pyvaccel",
        account: Account | None = None,
        clock: Callable[[], float] = time.monotonic,
        require_auth: bool = False,
        allocate: codec.Allocate | None = None,
    ) -> None:
        self.client = client
        #: Where messages' data is received (None: fresh arrays).
        self.allocate = allocate
        #: Client: arrays the single buffer of a stream's response is received into.
        self._into: dict[int, Any] = {}
        #: Agent: clients must authenticate (AUTH) before anything else.
        self.require_auth = require_auth
        self.limits = limits
        self.agent = agent
        self.account = account if account is not None else unlimited()
        self.clock = clock
        self.state = State.AWAIT_HELLO
        self.peer_limits = DEFAULT_LIMITS
        self.peer_hello: Hello | None = None
        #: Sent in our HELLO (agent): the challenge a client answers to authenticate.
        self.nonce = b""
        #: Client: the next stream id to use. Server: the highest stream id seen.
        self.next_stream_id = 1
        self.last_stream_id = 0
        self.open_streams: set[int] = set()
        self.reader = FrameReader(limits.max_frame, limits.max_hello, self.account)
        self._assemblies: dict[int, _Assembly] = {}
        self._asm: _Assembly | None = None
        self._pending = 0
        #: Server: what each open request holds of the account until it is answered.
        self._held: dict[int, int] = {}
        self._events: list[Event] = []
        self._handlers: dict[int, Callable[[Frame], None]] = {
            FrameType.HELLO: self._on_hello,
            FrameType.REQUEST: self._on_message,
            FrameType.RESPONSE: self._on_message,
            FrameType.CANCEL: self._on_cancel,
            FrameType.GOAWAY: self._on_goaway,
            FrameType.PING: self._on_ping,
            FrameType.AUTH: self._on_auth,
        }

    # ------------------------------------------------------------------ receiving

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes should be written."""
        return self.reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """`nbytes` were written into the last buffer handed out; returns the new events."""
        self.reader.buffer_updated(nbytes)
        self._drain()
        events, self._events = self._events, []
        return events

    def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes (any amount, any split); returns the events they complete."""
        view = memoryview(data).cast("B")
        events: list[Event] = []
        while view.nbytes:
            target = self.get_buffer()
            n = min(target.nbytes, view.nbytes)
            target[:n] = view[:n]
            view = view[n:]
            events.extend(self.buffer_updated(n))
        return events

    def _drain(self) -> None:
        reader = self.reader
        while True:
            item = reader.next()
            if item is None:
                return
            if item is DATA_DONE:
                self._data_done()
                continue
            assert isinstance(item, Frame)
            if item.type == FrameType.DATA:
                self._on_data(item)
                continue
            self._check_frame(item)
            self._handlers[item.type](item)

    def _check_frame(self, f: Frame) -> None:
        """What every control frame must satisfy: a known type, the right stream, HELLO first."""
        if f.type not in self._handlers:
            raise ProtocolError(f"unknown frame type {f.type}")
        if self.state is State.AWAIT_HELLO and f.type not in (FrameType.HELLO, FrameType.GOAWAY):
            raise ProtocolError(
                f"expected HELLO as the first frame; got frame type {f.type}",
                Status.FAILED_PRECONDITION,
            )
        if self.state is State.AWAIT_AUTH and f.type not in _BEFORE_AUTH:
            raise ProtocolError(
                "authenticate first: this agent accepts nothing before a valid token "
                "(VACCEL_RPC_TOKEN)",
                Status.UNAUTHENTICATED,
            )
        if f.type in _STREAM_ZERO:
            if f.stream_id != 0:
                raise ProtocolError(f"frame type {f.type} must use stream 0; got {f.stream_id}")
        elif f.stream_id == 0:
            raise ProtocolError(f"frame type {f.type} needs a stream id; got 0")

    # ------------------------------------------------------------------ control frames

    def _on_hello(self, f: Frame) -> None:
        if self.peer_hello is not None:
            raise ProtocolError("HELLO sent twice")
        try:
            info = msgpack.unpackb(f.payload, raw=False, max_array_len=64, max_map_len=32)
            lo, hi = int(info["min"]), int(info["max"])
            limits = {str(k): int(v) for k, v in dict(info.get("limits", {})).items()}
            nonce = info.get("nonce", b"")
            hello = Hello(
                int(info["version"]),
                str(info.get("agent", ""))[:256],
                limits,
                [str(c) for c in info.get("caps", []) if c in KNOWN_CAPS],
                nonce if isinstance(nonce, bytes) else b"",
            )
        except Exception as exc:
            raise ProtocolError(
                f"HELLO payload is not valid: {type(exc).__name__}: {exc}",
                Status.FAILED_PRECONDITION,
            ) from None
        if not lo <= PROTOCOL_VERSION <= hi:
            raise ProtocolError(
                f"protocol version {PROTOCOL_VERSION} is not in the peer's range {lo}..{hi}",
                Status.FAILED_PRECONDITION,
            )
        self.peer_hello = hello
        self.peer_limits = Limits(
            max_frame=max(1024, min(limits.get("frame", DEFAULT_LIMITS.max_frame), 1 << 30)),
            max_header=max(16 * 1024, limits.get("header", DEFAULT_LIMITS.max_header)),
            max_message=limits.get("message", DEFAULT_LIMITS.max_message),
            max_streams=limits.get("streams", DEFAULT_LIMITS.max_streams),
        )
        wants_token = self.require_auth if not self.client else bool(hello.nonce)
        if wants_token:  # only a small AUTH frame may come before authentication
            self.state = State.AWAIT_AUTH
        else:
            self.reader.max_control = self.limits.max_header
            self.state = State.OPEN
        self._events.append(hello)

    def _on_goaway(self, f: Frame) -> None:
        try:
            status, message, last = msgpack.unpackb(f.payload, raw=False, max_array_len=3)
            event = GoAway(Status.coerce(int(status)), str(message)[:4096], int(last))
        except Exception:
            event = GoAway(Status.UNKNOWN, "peer sent an unreadable GOAWAY", 0)
        self.state = State.CLOSED
        self._events.append(event)

    def _on_ping(self, f: Frame) -> None:
        if len(f.payload) != 8:
            raise ProtocolError(f"PING payload must be 8 bytes; got {len(f.payload)}")
        self._events.append(Ping(f.payload, bool(f.flags & _ACK)))

    def authenticated(self) -> None:
        """The token was proven (agent: the client's; client: the agent's reply)."""
        if self.state is State.AWAIT_AUTH:
            self.reader.max_control = self.limits.max_header
            self.state = State.OPEN

    def _on_auth(self, f: Frame) -> None:
        if self.state is not State.AWAIT_AUTH:
            raise ProtocolError("AUTH outside the handshake (sent twice, or not asked for)")
        try:
            fields = msgpack.unpackb(f.payload, raw=False, max_array_len=8, max_map_len=8)
            if not isinstance(fields, dict):
                raise TypeError("AUTH payload must be a map")
        except Exception as exc:
            raise ProtocolError(
                f"AUTH payload is not valid: {type(exc).__name__}: {exc}", Status.UNAUTHENTICATED
            ) from None
        self._events.append(Auth(fields))

    def _on_cancel(self, f: Frame) -> None:
        if not self.client and f.stream_id in self.open_streams:
            self._discard_rest(f.stream_id)
            self._events.append(Cancel(f.stream_id))

    # ------------------------------------------------------------------ messages

    def _check_stream(self, kind: int, stream_id: int) -> bool:
        """Direction and stream rules of a message header; returns whether it is expected."""
        if kind == FrameType.REQUEST:
            if self.client:
                raise ProtocolError("a server may not send REQUEST frames")
            if stream_id % 2 == 0:
                raise ProtocolError(f"stream id {stream_id} is even; client streams must be odd")
            if stream_id <= self.last_stream_id:
                raise ProtocolError(
                    f"stream id {stream_id} is reused or not increasing "
                    f"(last was {self.last_stream_id})"
                )
            self.last_stream_id = stream_id
            return True
        if not self.client:
            raise ProtocolError("a client may not send RESPONSE frames")
        if stream_id % 2 == 0 or stream_id >= self.next_stream_id:
            raise ProtocolError(f"RESPONSE for stream {stream_id}, which this client never opened")
        return stream_id in self.open_streams

    def _on_message(self, f: Frame) -> None:
        """A REQUEST or RESPONSE header: one parser for both directions."""
        kind, stream_id, flags = f.type, f.stream_id, f.flags
        if self.state is State.AWAIT_AUTH and flags & _HAS_DATA:
            raise ProtocolError(
                "authenticate first: nothing with data is accepted before a valid token",
                Status.UNAUTHENTICATED,
            )
        expected = self._check_stream(kind, stream_id)
        if flags & _HAS_DATA and len(self._assemblies) >= self.limits.max_streams:
            raise ProtocolError(
                f"{len(self._assemblies)} messages are already awaiting their data; the limit "
                f"is {self.limits.max_streams}",
                Status.RESOURCE_EXHAUSTED,
            )
        try:
            if kind == FrameType.REQUEST and len(self.open_streams) >= self.limits.max_streams:
                raise ProtocolError(
                    f"{len(self.open_streams)} requests already in flight; the "
                    f"limit is {self.limits.max_streams}",
                    Status.RESOURCE_EXHAUSTED,
                    fatal=False,
                )
            body, has_refs = codec.decode_counting(
                f.payload, self.limits.max_elements, self.limits.max_depth
            )
            if not isinstance(body, list) or len(body) != 5:
                raise ProtocolError(_SHAPE[kind], fatal=False)
            fields, value = _FIELDS[kind](body)
            if not expected:  # a response after we gave up on it (cancelled): skip it
                raise ProtocolError("stale response", Status.CANCELLED, fatal=False)
            self._open_message(kind, stream_id, flags, fields, value, body[4], has_refs, f.length)
        except ProtocolError as exc:
            if exc.fatal:
                raise
            self._refuse(kind, stream_id, flags, exc, expected)

    def _refuse(
        self, kind: int, stream_id: int, flags: int, exc: ProtocolError, expected: bool
    ) -> None:
        """A bad message in a sound frame stream: report it on its stream, skip its data."""
        failure: Rejected | Response | None
        if kind == FrameType.REQUEST:
            self.open_streams.discard(stream_id)
            failure = Rejected(stream_id, exc.status, exc.message)
        elif expected:
            self.open_streams.discard(stream_id)
            failure = Response(
                stream_id, exc.status, f"bad response from the agent: {exc.message}", 0, None
            )
        else:
            failure = None
        if flags & _HAS_DATA:  # skip its DATA frames as they come
            self._assemblies[stream_id] = _Assembly(kind, stream_id, [], None, None)
        if failure is not None:  # answered now: the sender may stop sending its data
            self._events.append(failure)

    # ------------------------------------------------------------------ streams

    def forget(self, stream_id: int) -> None:
        """Stop tracking a stream (answered, cancelled, or its answer will not be sent)."""
        self.open_streams.discard(stream_id)
        self._into.pop(stream_id, None)
        self.account.give(self._held.pop(stream_id, 0))

    def detach_held(self, stream_id: int) -> int:
        """Hand over what a request holds of the account: the caller now gives it back."""
        return self._held.pop(stream_id, 0)

    def release_all(self) -> None:
        """Give back what this connection holds of its account (it has closed)."""
        self.account.give(sum(self._held.values()))
        self._held.clear()
        self._assemblies.clear()
        self._pending = 0
        self.reader.close()
