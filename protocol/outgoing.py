"""Building frames for the peer: the sending half of `Connection`.

HELLO (our version range, limits and capabilities; the agent's challenge), AUTH,
requests and responses (one header frame, then the DATA frames of their out-of-band
buffers, each frame a list of buffers for one scatter-gather write), CANCEL, GOAWAY and
PING. What the peer announced it accepts (`peer_limits`) is checked here, before any
byte is sent. `Connection` mixes this in; it owns the state used here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from . import codec
from .frames import HEADER, Buffer, Flags, FrameType, data_frames, frame
from .limits import Limits
from .state import State
from .status import Status

PROTOCOL_VERSION = 1
#: DATA frames are cut at this size (or the peer's frame limit if lower): small enough
#: for fair interleaving of streams, large enough that headers cost nothing.
DATA_FRAME = 1024 * 1024
#: Capabilities this implementation knows; others a peer announces are ignored.
KNOWN_CAPS = frozenset({"inline-arrays", "cancel", "ping", "deadline", "abort", "auth"})


class MessageWriter:
    """The frames this side sends."""

    agent: str
    limits: Limits
    peer_limits: Limits
    nonce: bytes
    next_stream_id: int
    last_stream_id: int
    open_streams: set[int]
    state: State
    _into: dict[int, Any]

    forget: Callable[[int], None]
    _discard_rest: Callable[[int], None]

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
