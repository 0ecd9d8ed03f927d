"""The protocol state machine of one connection, sans-IO.

Theory of operation. Bytes from the peer go in through `get_buffer`/`buffer_updated`
(the shape of asyncio's BufferedProtocol; `receive` wraps it for plain byte strings)
and come out as events: `Hello`, `Request`, `Response`, `Cancel`, `GoAway`, `Ping`, and
`Rejected` (a request this side refuses, to be answered with an error response). Bytes
for the peer come out of the `hello`/`request`/`response`/... methods as lists of
buffers for one scatter-gather write.

Small frames are parsed out of a scratch buffer. A DATA frame's payload is written
straight into the array its message announced: when the scratch buffer is empty,
`get_buffer` hands out the destination itself, so the socket receives into it with no
copy. Every length is checked against `Limits` before anything is allocated; a frame
stream that can no longer be trusted raises a fatal `ProtocolError` (answer with
`goaway`, then close); a bad message inside a sound frame stream is `Rejected` on its
stream and its DATA frames are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from . import codec
from .errors import ProtocolError
from .frames import HEADER, HEADER_SIZE, Buffer, Flags, FrameType, data_frames, frame
from .limits import DEFAULT_LIMITS, Budget, Limits
from .status import Status

PROTOCOL_VERSION = 1
#: The receive buffer starts this small (thousands of idle connections stay cheap) and
#: grows to the largest frame seen.
SCRATCH_SIZE = 16 * 1024
# Plain ints for the hot path (IntFlag arithmetic runs in Python).
_END, _ACK, _HAS_DATA, _ABORT = int(Flags.END), int(Flags.ACK), int(Flags.DATA), int(Flags.ABORT)
_DISCARD = memoryview(bytearray(64 * 1024))
#: DATA frames are cut at this size (or the peer's frame limit if lower): small enough
#: for fair interleaving of streams, large enough that headers cost nothing.
DATA_FRAME = 1024 * 1024


@dataclass(slots=True)
class Hello:
    version: int
    agent: str
    limits: dict[str, int]
    caps: list[str]


@dataclass(slots=True)
class Request:
    stream_id: int
    method: str
    args: Any
    timeout: float | None
    metadata: dict[str, str]


@dataclass(slots=True)
class Response:
    stream_id: int
    status: Status
    message: str
    errno: int
    result: Any


@dataclass(slots=True)
class Rejected:
    """A request refused before it reached the application; answer it with this status."""

    stream_id: int
    status: Status
    message: str


@dataclass(slots=True)
class Cancel:
    stream_id: int


@dataclass(slots=True)
class GoAway:
    status: Status
    message: str
    last_stream_id: int


@dataclass(slots=True)
class Ping:
    payload: bytes
    ack: bool


Event = Hello | Request | Response | Rejected | Cancel | GoAway | Ping


@dataclass(slots=True)
class _Assembly:
    """A message whose DATA frames are still arriving (data None: being discarded)."""

    kind: FrameType
    stream_id: int
    fields: list[Any]
    value: Any
    data: codec.MessageData | None
    has_bytes: bool = False
    failure: Rejected | Response | None = None
    size: int = field(default=0)


class Connection:
    """One side (client or server) of one connection."""

    def __init__(
        self,
        client: bool,
        limits: Limits = DEFAULT_LIMITS,
        agent: str = "pyvaccel",
        budget: Budget | None = None,
    ) -> None:
        self.client = client
        self.limits = limits
        self.agent = agent
        self.peer_limits = DEFAULT_LIMITS
        self.peer_hello: Hello | None = None
        #: Client: the next stream id to use. Server: the highest stream id seen.
        self.next_stream_id = 1
        self.last_stream_id = 0
        #: Server: requests accepted and not yet answered. Client: requests awaiting answers.
        self.open_streams: set[int] = set()
        self._assemblies: dict[int, _Assembly] = {}
        self._pending = 0
        #: Server: the shared budget, and what each open request holds of it.
        self.budget = budget
        self._held: dict[int, int] = {}
        self._buf = bytearray(SCRATCH_SIZE)
        self._view = memoryview(self._buf)
        self._r = 0
        self._w = 0
        self._asm: _Assembly | None = None
        self._left = 0
        self._end = False
        self._offered_direct = False
        self._events: list[Event] = []

    # ------------------------------------------------------------------ receiving

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes should be written."""
        if self._left and self._r == self._w:
            self._offered_direct = True
            asm = self._asm
            if asm is None or asm.data is None:
                return _DISCARD[: min(self._left, len(_DISCARD))]
            start = asm.data.filled
            return asm.data.array.data[start : start + self._left]
        self._offered_direct = False
        if self._r and len(self._buf) - self._w < 4096:
            self._compact()
        if self._w == len(self._buf):  # full of one unfinished frame: _parse grows it first
            self._grow(2 * len(self._buf))
        return self._view[self._w :]

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """`nbytes` were written into the last buffer handed out; returns the new events."""
        if self._offered_direct:
            self._offered_direct = False
            self._data_written(nbytes)
        else:
            self._w += nbytes
        self._parse()
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

    def _compact(self) -> None:
        if self._r:
            size = self._w - self._r
            self._buf[:size] = self._buf[self._r : self._w]
            self._r, self._w = 0, size

    def _grow(self, needed: int) -> None:
        """Make room for a frame of `needed` bytes (a new buffer: the old one is exported)."""
        self._compact()
        if needed > len(self._buf):
            size = self._w - self._r
            bigger = bytearray(max(needed, 2 * len(self._buf)))
            bigger[:size] = self._buf[self._r : self._w]
            self._view.release()
            self._buf, self._view = bigger, memoryview(bigger)
            self._r, self._w = 0, size

    def _data_written(self, n: int) -> None:
        asm = self._asm
        if asm is not None and asm.data is not None:
            asm.data.filled += n
        self._left -= n
        if not self._left:
            self._data_frame_done()

    def _parse(self) -> None:
        buf, limits = self._buf, self.limits
        while True:
            avail = self._w - self._r
            if self._left:
                if not avail:
                    break
                take = min(avail, self._left)
                asm = self._asm
                if asm is not None and asm.data is not None:
                    start = asm.data.filled
                    asm.data.array[start : start + take] = memoryview(buf)[self._r : self._r + take]
                self._r += take
                self._data_written(take)
                continue
            if avail < HEADER_SIZE:
                break
            length, stream_id, ftype, flags = HEADER.unpack_from(buf, self._r)
            if length > limits.max_frame:
                raise ProtocolError(
                    f"frame of {length} bytes exceeds the {limits.max_frame}-byte frame limit",
                    Status.RESOURCE_EXHAUSTED,
                )
            if ftype == FrameType.DATA:
                self._r += HEADER_SIZE
                self._start_data(stream_id, length, flags)
                continue
            if avail < HEADER_SIZE + length:
                if HEADER_SIZE + length > len(buf):
                    self._grow(HEADER_SIZE + length)
                    buf = self._buf
                break
            start = self._r + HEADER_SIZE
            payload = bytes(buf[start : start + length])
            self._r = start + length
            self._frame(ftype, stream_id, flags, payload)
        if self._r == self._w:
            self._r = self._w = 0

    def _frame(self, ftype: int, stream_id: int, flags: int, payload: bytes) -> None:
        if self.peer_hello is None and ftype not in (FrameType.HELLO, FrameType.GOAWAY):
            raise ProtocolError(
                f"expected HELLO as the first frame; got frame type {ftype}",
                Status.FAILED_PRECONDITION,
            )
        if ftype in (FrameType.HELLO, FrameType.GOAWAY, FrameType.PING):
            if stream_id != 0:
                raise ProtocolError(f"frame type {ftype} must use stream 0; got {stream_id}")
        elif stream_id == 0:
            raise ProtocolError(f"frame type {ftype} needs a stream id; got 0")
        if ftype == FrameType.REQUEST:
            self._request_header(stream_id, flags, payload)
        elif ftype == FrameType.RESPONSE:
            self._response_header(stream_id, flags, payload)
        elif ftype == FrameType.CANCEL:
            if not self.client and stream_id in self.open_streams:
                self._discard_rest(stream_id)
                self._events.append(Cancel(stream_id))
        elif ftype == FrameType.HELLO:
            self._hello(payload)
        elif ftype == FrameType.GOAWAY:
            self._goaway(payload)
        elif ftype == FrameType.PING:
            if len(payload) != 8:
                raise ProtocolError(f"PING payload must be 8 bytes; got {len(payload)}")
            self._events.append(Ping(payload, bool(flags & _ACK)))
        else:
            raise ProtocolError(f"unknown frame type {ftype}")

    def _hello(self, payload: bytes) -> None:
        if self.peer_hello is not None:
            raise ProtocolError("HELLO sent twice")
        try:
            info = msgpack.unpackb(payload, raw=False)
            lo, hi = int(info["min"]), int(info["max"])
            limits = {str(k): int(v) for k, v in dict(info.get("limits", {})).items()}
            hello = Hello(
                int(info["version"]),
                str(info.get("agent", "")),
                limits,
                [str(c) for c in info.get("caps", [])],
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
            max_frame=max(16 * 1024, min(limits.get("frame", DEFAULT_LIMITS.max_frame), 1 << 30)),
            max_message=limits.get("message", DEFAULT_LIMITS.max_message),
            max_streams=limits.get("streams", DEFAULT_LIMITS.max_streams),
        )
        self._events.append(hello)

    def _goaway(self, payload: bytes) -> None:
        try:
            status, message, last = msgpack.unpackb(payload, raw=False)
            event = GoAway(Status.coerce(int(status)), str(message), int(last))
        except Exception:
            event = GoAway(Status.UNKNOWN, "peer sent an unreadable GOAWAY", 0)
        self._events.append(event)

    def _parse_sizes(self, stream_id: int, sizes: Any) -> int:
        if not isinstance(sizes, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes
        ):
            raise ProtocolError(
                "buffer sizes must be a list of non-negative integers",
                fatal=False,
                stream_id=stream_id,
            )
        if len(sizes) > self.limits.max_buffers:
            raise ProtocolError(
                f"message announces {len(sizes)} buffers; the limit is {self.limits.max_buffers}",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
                stream_id=stream_id,
            )
        total = sum(sizes) + 8 * len(sizes)
        if total > self.limits.max_message:
            raise ProtocolError(
                f"message announces {sum(sizes)} bytes of buffers; the limit is "
                f"{self.limits.max_message}",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
                stream_id=stream_id,
            )
        if self._pending + total > self.limits.max_pending:
            raise ProtocolError(
                f"connection already buffers {self._pending} bytes; a message of "
                f"{total} more exceeds the {self.limits.max_pending}-byte limit",
                Status.RESOURCE_EXHAUSTED,
                fatal=False,
                stream_id=stream_id,
            )
        return total

    def _open_message(
        self,
        kind: FrameType,
        stream_id: int,
        flags: int,
        fields: list[Any],
        value: Any,
        sizes: Any,
        has_refs: bool,
    ) -> _Assembly | None:
        """Bind the body to a fresh data array; None when the message is already complete."""
        if sizes == [] and not flags & _HAS_DATA and not has_refs:  # the small-call fast path
            self._complete(_Assembly(kind, stream_id, fields, value, None))
            return None
        total = self._parse_sizes(stream_id, sizes)
        if bool(sizes) != bool(flags & _HAS_DATA):
            raise ProtocolError(
                "DATA flag and buffer list disagree", fatal=False, stream_id=stream_id
            )
        data = codec.MessageData(sizes) if sizes else None
        value, has_bytes = codec.bind(value, data)
        if data is None:
            self._complete(_Assembly(kind, stream_id, fields, value, None))
            return None
        if kind == FrameType.REQUEST and self.budget is not None:
            if not self.budget.take(total):
                raise ProtocolError(
                    f"the agent already holds {self.budget.used} bytes of calls in flight; "
                    f"{total} more exceed its {self.budget.limit}-byte budget: retry later",
                    Status.RESOURCE_EXHAUSTED,
                    fatal=False,
                    stream_id=stream_id,
                )
            self._held[stream_id] = total
        asm = _Assembly(kind, stream_id, fields, value, data, has_bytes, size=total)
        self._pending += total
        self._assemblies[stream_id] = asm
        return asm

    def _discard(
        self, kind: FrameType, stream_id: int, flags: int, failure: Rejected | Response
    ) -> None:
        if flags & _HAS_DATA:
            self._assemblies[stream_id] = _Assembly(
                kind, stream_id, [], None, None, failure=failure
            )
        else:
            self._events.append(failure)

    def _request_header(self, stream_id: int, flags: int, payload: bytes) -> None:
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
        try:
            if len(self.open_streams) >= self.limits.max_streams:
                raise ProtocolError(
                    f"{len(self.open_streams)} requests already in flight; the "
                    f"limit is {self.limits.max_streams}",
                    Status.RESOURCE_EXHAUSTED,
                    fatal=False,
                )
            body, has_refs = codec.decode_counting(payload)
            if not isinstance(body, list) or len(body) != 5 or not isinstance(body[0], str):
                raise ProtocolError(
                    "request must be [method, args, timeout_ms, metadata, sizes]", fatal=False
                )
            method, args, timeout_ms, metadata, sizes = body
            if timeout_ms is not None and (
                not isinstance(timeout_ms, (int, float)) or timeout_ms < 0
            ):
                raise ProtocolError(
                    f"timeout_ms must be a non-negative number; got {timeout_ms!r}", fatal=False
                )
            if not isinstance(metadata, dict):
                raise ProtocolError("metadata must be a map", fatal=False)
            self.open_streams.add(stream_id)
            try:
                self._open_message(
                    FrameType.REQUEST,
                    stream_id,
                    flags,
                    [method, timeout_ms, metadata],
                    args,
                    sizes,
                    has_refs,
                )
            except ProtocolError:
                self.open_streams.discard(stream_id)
                raise
        except ProtocolError as exc:
            if exc.fatal:
                raise
            self._discard(
                FrameType.REQUEST, stream_id, flags, Rejected(stream_id, exc.status, exc.message)
            )

    def _response_header(self, stream_id: int, flags: int, payload: bytes) -> None:
        if not self.client:
            raise ProtocolError("a client may not send RESPONSE frames")
        if stream_id % 2 == 0 or stream_id >= self.next_stream_id:
            raise ProtocolError(f"RESPONSE for stream {stream_id}, which this client never opened")
        known = stream_id in self.open_streams
        try:
            body, has_refs = codec.decode_counting(payload)
            if not isinstance(body, list) or len(body) != 5 or not isinstance(body[0], int):
                raise ProtocolError(
                    "response must be [status, message, errno, result, sizes]", fatal=False
                )
            status, message, errno_, result, sizes = body
            fields = [
                Status.coerce(status),
                message if isinstance(message, str) else str(message),
                errno_ if isinstance(errno_, int) else 0,
            ]
            if not known:  # answered after we gave up on it (cancelled): skip it
                raise ProtocolError("stale response", Status.CANCELLED, fatal=False)
            self._open_message(
                FrameType.RESPONSE, stream_id, flags, fields, result, sizes, has_refs
            )
        except ProtocolError as exc:
            if exc.fatal:
                raise
            failure = Response(
                stream_id, exc.status, f"bad response from the agent: {exc.message}", 0, None
            )
            if known:
                self._discard(FrameType.RESPONSE, stream_id, flags, failure)
            elif flags & _HAS_DATA:
                self._assemblies[stream_id] = _Assembly(
                    FrameType.RESPONSE, stream_id, [], None, None, failure=None
                )

    def _start_data(self, stream_id: int, length: int, flags: int) -> None:
        asm = self._assemblies.get(stream_id)
        if asm is None:
            raise ProtocolError(
                f"DATA frame for stream {stream_id}, which has no message awaiting data"
            )
        if flags & _ABORT:
            if length:
                raise ProtocolError(f"ABORT frame for stream {stream_id} must be empty")
            was_open = asm.data is not None and stream_id in self.open_streams
            self._abandon(asm)
            del self._assemblies[stream_id]
            self.open_streams.discard(stream_id)
            if self.client and was_open:
                self._events.append(
                    Response(stream_id, Status.ABORTED, "the agent abandoned its response", 0, None)
                )
            return
        if asm.data is not None and asm.data.filled + length > asm.data.total:
            raise ProtocolError(
                f"DATA frames for stream {stream_id} overrun the "
                f"{asm.data.total} bytes its message announced"
            )
        self._asm, self._left, self._end = asm, length, bool(flags & _END)
        if not length:
            self._data_frame_done()

    def _data_frame_done(self) -> None:
        asm, end = self._asm, self._end
        self._asm = None
        if asm is None or not end:
            return
        del self._assemblies[asm.stream_id]
        if asm.data is None:  # a discarded message: report why, now that it is skipped
            if asm.failure is not None:
                self._events.append(asm.failure)
            return
        self._pending -= asm.size
        if asm.data.filled != asm.data.total:
            raise ProtocolError(
                f"stream {asm.stream_id}: END after {asm.data.filled} of "
                f"{asm.data.total} announced bytes"
            )
        if asm.has_bytes:
            asm.value = codec.finish(asm.value)
        self._complete(asm)

    def _complete(self, asm: _Assembly) -> None:
        f = asm.fields
        if asm.kind == FrameType.REQUEST:
            timeout = None if f[1] is None else f[1] / 1000.0
            self._events.append(Request(asm.stream_id, f[0], asm.value, timeout, f[2]))
        else:
            self.open_streams.discard(asm.stream_id)
            self._events.append(Response(asm.stream_id, f[0], f[1], f[2], asm.value))

    # ------------------------------------------------------------------ sending

    def hello(self) -> bytes:
        """Our HELLO: version range, agent name, our limits."""
        body = msgpack.packb(
            {
                "version": PROTOCOL_VERSION,
                "min": PROTOCOL_VERSION,
                "max": PROTOCOL_VERSION,
                "agent": self.agent,
                "limits": self.limits.to_wire(),
                "caps": ["inline-arrays", "cancel", "ping", "deadline"],
            }
        )
        return frame(0, FrameType.HELLO, body)

    def _message(
        self, stream_id: int, kind: FrameType, fields: list[Any], value: Any
    ) -> list[list[Buffer]]:
        prepared, bufs = codec.prepare(value)
        sizes = [b.nbytes for b in bufs]
        if sum(sizes) + 8 * len(sizes) > self.peer_limits.max_message:
            raise codec.EncodeError(
                f"message carries {sum(sizes)} bytes of buffers; the peer "
                f"accepts at most {self.peer_limits.max_message}"
            )
        if kind == FrameType.REQUEST:
            body = msgpack.packb([fields[0], prepared, fields[1], fields[2], sizes])
        else:
            body = msgpack.packb([fields[0], fields[1], fields[2], prepared, sizes])
        if len(body) > self.peer_limits.max_frame:
            raise codec.EncodeError(
                f"message header of {len(body)} bytes exceeds the peer's "
                f"{self.peer_limits.max_frame}-byte frame limit"
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
    ) -> tuple[int, list[list[Buffer]]]:
        """A new stream id and the frames of a request on it (each frame a list of buffers)."""
        stream_id = self.next_stream_id
        timeout_ms = None if timeout is None else max(0, int(timeout * 1000))
        chunks = self._message(
            stream_id, FrameType.REQUEST, [method, timeout_ms, metadata or {}], args
        )
        self.next_stream_id += 2
        self.open_streams.add(stream_id)
        return stream_id, chunks

    def response(
        self, stream_id: int, status: Status, message: str = "", errno: int = 0, result: Any = None
    ) -> list[list[Buffer]]:
        """The frames answering `stream_id` (closing it on this side)."""
        self.forget(stream_id)
        return self._message(stream_id, FrameType.RESPONSE, [int(status), message, errno], result)

    def forget(self, stream_id: int) -> None:
        """Stop tracking a stream (a cancelled call, a request whose answer will not be sent)."""
        self.open_streams.discard(stream_id)
        held = self._held.pop(stream_id, 0)
        if held and self.budget is not None:
            self.budget.give(held)

    def release_all(self) -> None:
        """Give back every byte this connection holds of the budget (it has closed)."""
        if self.budget is not None:
            self.budget.give(sum(self._held.values()))
        self._held.clear()

    def cancel(self, stream_id: int) -> bytes:
        """Give up on a stream: what still arrives of its message is discarded."""
        self._discard_rest(stream_id)
        self.open_streams.discard(stream_id)
        return frame(stream_id, FrameType.CANCEL)

    def _abandon(self, asm: _Assembly) -> None:
        """Return what a half-received message holds (pending bytes, budget)."""
        if asm.data is not None:
            self._pending -= asm.size
            asm.data = None
        asm.failure = None
        held = self._held.pop(asm.stream_id, 0)
        if held and self.budget is not None:
            self.budget.give(held)

    def _discard_rest(self, stream_id: int) -> None:
        """A cancelled stream's half-received message: skip the rest of its DATA frames."""
        asm = self._assemblies.get(stream_id)
        if asm is not None:
            self._abandon(asm)

    def goaway(self, status: Status, message: str) -> bytes:
        return frame(
            0, FrameType.GOAWAY, msgpack.packb([int(status), message, self.last_stream_id])
        )

    def ping(self, payload: bytes = bytes(8), ack: bool = False) -> bytes:
        return frame(0, FrameType.PING, payload, Flags.ACK if ack else 0)
