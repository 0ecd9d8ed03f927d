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

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from . import codec
from .errors import ProtocolError
from .events import Auth, Cancel, Event, GoAway, Hello, Ping, Rejected, Request, Response
from .frames import HEADER, Buffer, Flags, FrameType, data_frames, frame
from .limits import DEFAULT_LIMITS, Account, Limits, unlimited
from .reader import DATA_DONE, Frame, FrameReader
from .status import Status

PROTOCOL_VERSION = 1
#: DATA frames are cut at this size (or the peer's frame limit if lower): small enough
#: for fair interleaving of streams, large enough that headers cost nothing.
DATA_FRAME = 1024 * 1024
#: What one message holds beyond its buffers while in flight (its decoded body and
#: bookkeeping), per byte of body and per call.
BODY_COST = 16
CALL_COST = 1024
#: Capabilities this implementation knows; others a peer announces are ignored.
KNOWN_CAPS = frozenset({"inline-arrays", "cancel", "ping", "deadline", "abort", "auth"})
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


class State(enum.Enum):
    """Where a connection is in its life."""

    #: Nothing but HELLO (or a refusing GOAWAY) is accepted yet.
    AWAIT_HELLO = "await-hello"
    #: HELLO done, the agent wants a token: nothing but AUTH (and PING) until it is proven.
    AWAIT_AUTH = "await-auth"
    #: Handshake done: requests and responses flow.
    OPEN = "open"
    #: A GOAWAY was sent or received: nothing more is accepted.
    CLOSED = "closed"


@dataclass(slots=True)
class _Assembly:
    """A message whose DATA frames are still arriving (data None: being discarded)."""

    kind: int
    stream_id: int
    fields: list[Any]
    value: Any
    data: codec.MessageData | None
    has_bytes: bool = False
    #: Bytes charged to the account while it is assembled (data and decoded body).
    size: int = 0
    #: When it was announced (progress timeout).
    started: float = 0.0
    #: The DATA frame being received is the message's last (END).
    end: bool = False


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


class Connection:
    """One side (client or server) of one connection."""

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

    def _parse_sizes(self, sizes: Any) -> int:
        if not isinstance(sizes, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes
        ):
            raise ProtocolError("buffer sizes must be a list of non-negative integers", fatal=False)
        if len(sizes) > self.limits.max_buffers:
            raise ProtocolError(
                f"message announces {len(sizes)} buffers; the limit is {self.limits.max_buffers}",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
            )
        total = sum(sizes) + 8 * len(sizes)
        if total > self.limits.max_message:
            raise ProtocolError(
                f"message announces {sum(sizes)} bytes of buffers; the limit is "
                f"{self.limits.max_message}",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
            )
        if self._pending + total > self.limits.max_pending:
            raise ProtocolError(
                f"connection already buffers {self._pending} bytes; a message of "
                f"{total} more exceeds the {self.limits.max_pending}-byte limit",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
            )
        return total

    def _charge(self, amount: int, what: str) -> None:
        if not self.account.take(amount):
            raise ProtocolError(
                self.account.refusal_message(amount, what) + ": retry later",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
            )

    def _open_message(
        self,
        kind: int,
        stream_id: int,
        flags: int,
        fields: list[Any],
        value: Any,
        sizes: Any,
        has_refs: bool,
        body_len: int,
    ) -> None:
        """Bind the body to a fresh data array, or complete it at once when it has none."""
        request = kind == FrameType.REQUEST
        if sizes == [] and not flags & _HAS_DATA and not has_refs:  # the small-call fast path
            if request:
                self._charge(CALL_COST + BODY_COST * body_len, "calls in flight")
                self._held[stream_id] = CALL_COST + BODY_COST * body_len
                self.open_streams.add(stream_id)
            self._complete(kind, stream_id, fields, value)
            return
        total = self._parse_sizes(sizes)
        if bool(sizes) != bool(flags & _HAS_DATA):
            raise ProtocolError("DATA flag and buffer list disagree", fatal=False)
        into = self._into.pop(stream_id, None) if self.client else None
        allocate = self.allocate
        if into is not None and len(sizes) == 1 and sizes[0] == into.nbytes:
            allocate = lambda n: into.reshape(-1).view("u1")  # noqa: E731 - the caller's array
        data = codec.MessageData(sizes, allocate) if sizes else None
        has_bytes = False
        if has_refs:  # only a body that references buffers needs walking
            value, has_bytes = codec.bind(value, data)
        cost = CALL_COST + BODY_COST * body_len + (total if data is not None else 0)
        if request:
            self._charge(cost, "request buffers")
            self._held[stream_id] = cost
            self.open_streams.add(stream_id)
        if data is None:
            self._complete(kind, stream_id, fields, value)
            return
        asm = _Assembly(
            kind, stream_id, fields, value, data, has_bytes, size=total, started=self.clock()
        )
        self._pending += total
        self._assemblies[stream_id] = asm

    # ------------------------------------------------------------------ DATA frames

    def _on_data(self, f: Frame) -> None:
        stream_id, length, flags = f.stream_id, f.length, f.flags
        asm = self._assemblies.get(stream_id)
        if asm is None:
            raise ProtocolError(
                f"DATA frame for stream {stream_id}, which has no message awaiting data"
            )
        if flags & _ABORT:
            if length:
                raise ProtocolError(f"ABORT frame for stream {stream_id} must be empty")
            self.reader.route(None)
            self._asm = None
            was_open = asm.data is not None and stream_id in self.open_streams
            self._abandon(asm)
            self._aborted(asm, was_open)
            return
        data = asm.data
        if data is not None and data.filled + length > data.total:
            raise ProtocolError(
                f"DATA frames for stream {stream_id} overrun the "
                f"{data.total} bytes its message announced"
            )
        self._asm = asm
        asm.end = bool(flags & _END)
        if data is None:
            self.reader.route(None)
        else:
            self.reader.route(data.array.data[data.filled : data.filled + length])
            data.filled += length

    def _aborted(self, asm: _Assembly, was_open: bool) -> None:
        """The sender abandoned a message: forget it; a client reports the lost response."""
        stream_id = asm.stream_id
        del self._assemblies[stream_id]
        self.open_streams.discard(stream_id)
        if self.client and was_open:
            self._events.append(
                Response(stream_id, Status.ABORTED, "the agent abandoned its response", 0, None)
            )

    def _data_done(self) -> None:
        """The payload of the current DATA frame is in place; END completes the message."""
        asm, self._asm = self._asm, None
        if asm is None or not asm.end:
            return
        del self._assemblies[asm.stream_id]
        if asm.data is None:  # a discarded message: skipped to its end
            return
        self._pending -= asm.size
        if asm.data.filled != asm.data.total:
            raise ProtocolError(
                f"stream {asm.stream_id}: END after {asm.data.filled} of "
                f"{asm.data.total} announced bytes"
            )
        if asm.has_bytes:
            asm.value = codec.finish(asm.value)
        self._complete(asm.kind, asm.stream_id, asm.fields, asm.value)

    def _complete(self, kind: int, stream_id: int, f: list[Any], value: Any) -> None:
        if kind == FrameType.REQUEST:
            timeout = None if f[1] is None else f[1] / 1000.0
            self._events.append(
                Request(stream_id, f[0], value, timeout, f[2], self._held.get(stream_id, 0))
            )
        else:
            self.open_streams.discard(stream_id)
            self._events.append(Response(stream_id, f[0], f[1], f[2], value))

    def _abandon(self, asm: _Assembly) -> None:
        """Return what a half-received message holds (pending bytes, budget)."""
        if asm.data is not None:
            self._pending -= asm.size
            asm.data = None
        held = self._held.pop(asm.stream_id, 0)
        self.account.give(held)

    def _discard_rest(self, stream_id: int) -> None:
        """A cancelled stream's half-received message: skip the rest of its DATA frames."""
        asm = self._assemblies.get(stream_id)
        if asm is not None:
            self._abandon(asm)

    def stalled(self, now: float, min_rate: float, grace: float) -> list[Rejected]:
        """Drop messages whose DATA arrives slower than `min_rate` bytes/s after `grace` s.

        Each is turned into a discarded message (the rest of its DATA is skipped), its
        budget is returned, and a request is answered with DEADLINE_EXCEEDED.
        """
        refused: list[Rejected] = []
        for asm in list(self._assemblies.values()):
            data = asm.data
            if data is None or asm is self._asm:
                continue
            elapsed = now - asm.started
            if elapsed > grace and data.filled < min_rate * elapsed:
                self._abandon(asm)
                if asm.kind == FrameType.REQUEST:
                    self.open_streams.discard(asm.stream_id)
                    refused.append(
                        Rejected(
                            asm.stream_id,
                            Status.DEADLINE_EXCEEDED,
                            f"the message's data arrived too slowly ({data.filled} of "
                            f"{data.total} bytes after {elapsed:.0f} s); it was dropped",
                        )
                    )
        return refused

    @property
    def assembling(self) -> int:
        """Messages whose DATA frames are still awaited."""
        return len(self._assemblies)

    # ------------------------------------------------------------------ sending

    def hello(self, nonce: bytes = b"") -> bytes:
        """Our HELLO: version range, agent name, our limits (and a challenge, agent side)."""
        self.nonce = nonce
        info: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "min": PROTOCOL_VERSION,
            "max": PROTOCOL_VERSION,
            "agent": self.agent,
            "limits": self.limits.to_wire(),
            "caps": sorted(KNOWN_CAPS),
        }
        if nonce:
            info["nonce"] = nonce
        return frame(0, FrameType.HELLO, msgpack.packb(info))

    def auth(self, fields: dict[str, Any]) -> bytes:
        """An AUTH frame (the client's proof, or the agent's verdict)."""
        return frame(0, FrameType.AUTH, msgpack.packb(fields))

    def _message(
        self, stream_id: int, kind: FrameType, fields: list[Any], value: Any
    ) -> list[list[Buffer]]:
        prepared, bufs = codec.prepare(value)
        sizes = [b.nbytes for b in bufs]
        if sum(sizes) + 8 * len(sizes) > self.peer_limits.max_message:
            raise codec.EncodeError(
                f"message carries {sum(sizes)} bytes of buffers; the peer "
                f"accepts at most {self.peer_limits.max_message}",
                Status.RESOURCE_EXHAUSTED,
            )
        if kind == FrameType.REQUEST:
            body = msgpack.packb([fields[0], prepared, fields[1], fields[2], sizes])
        else:
            body = msgpack.packb([fields[0], fields[1], fields[2], prepared, sizes])
        if len(body) > self.peer_limits.max_header:
            raise codec.EncodeError(
                f"message header of {len(body)} bytes exceeds the peer's "
                f"{self.peer_limits.max_header}-byte limit",
                Status.RESOURCE_EXHAUSTED,
            )
        head = HEADER.pack(len(body), stream_id, kind, Flags.DATA if bufs else 0) + body
        if not bufs:
            return [[head]]
        return [[head], *data_frames(stream_id, bufs, min(DATA_FRAME, self.peer_limits.max_frame))]

    def request(
        self,
        method: str,
        args: Any,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        into: Any = None,
    ) -> tuple[int, list[list[Buffer]]]:
        """A new stream id and the frames of a request on it (each frame a list of buffers).

        `into`: a C-contiguous array the response's single buffer is received straight
        into, when it has exactly that size.
        """
        stream_id = self.next_stream_id
        timeout_ms = None if timeout is None else max(0, int(timeout * 1000))
        frames = self._message(
            stream_id, FrameType.REQUEST, [method, timeout_ms, metadata or {}], args
        )
        self.next_stream_id += 2
        self.open_streams.add(stream_id)
        if into is not None:
            self._into[stream_id] = into
        return stream_id, frames

    def response(
        self, stream_id: int, status: Status, message: str = "", errno: int = 0, result: Any = None
    ) -> list[list[Buffer]]:
        """The frames answering `stream_id` (closing it on this side)."""
        self.forget(stream_id)
        return self._message(stream_id, FrameType.RESPONSE, [int(status), message, errno], result)

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

    def cancel(self, stream_id: int) -> bytes:
        """Give up on a stream: what still arrives of its message is discarded."""
        self._discard_rest(stream_id)
        self._into.pop(stream_id, None)
        self.open_streams.discard(stream_id)
        return frame(stream_id, FrameType.CANCEL)

    def goaway(self, status: Status, message: str) -> bytes:
        """The GOAWAY frame that closes the connection, saying why."""
        self.state = State.CLOSED
        return frame(
            0, FrameType.GOAWAY, msgpack.packb([int(status), message, self.last_stream_id])
        )

    def ping(self, payload: bytes = bytes(8), ack: bool = False) -> bytes:
        """A PING frame (or the answer to one)."""
        return frame(0, FrameType.PING, payload, Flags.ACK if ack else 0)
