"""The frame reader: bytes in, frames out, with DATA payloads received in place.

Bytes arrive through `get_buffer`/`buffer_updated` (the shape of asyncio's
BufferedProtocol). `next()` returns the next complete frame, `None` when more bytes
are needed, or `DATA_DONE` when the payload of the last DATA frame has been placed.

A control frame (anything but DATA) is parsed out of a scratch buffer and returned
with its payload. For a DATA frame, `next()` returns its header and the owner says
where the payload goes (`route(sink)`: a writable view of exactly its length, or
`None` to discard it); while the scratch buffer is empty, `get_buffer` then hands out
the sink itself, so the socket receives straight into the message's array.

The scratch buffer starts small, grows to fit one frame (charged to the connection's
account), and shrinks back once that frame is consumed, so a large frame's memory is
held only while it is needed. Every length is checked before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import ProtocolError
from .frames import HEADER, HEADER_SIZE, FrameType
from .limits import Account, unlimited
from .status import Status

#: The scratch buffer's resting size: thousands of idle connections stay cheap.
SCRATCH_SIZE: Final = 16 * 1024
#: A buffer grown up to this size is kept (calls with large inline bodies do not
#: reallocate it each time); a larger one is given back as soon as it is empty.
KEEP_SIZE: Final = 256 * 1024
_DISCARD = memoryview(bytearray(64 * 1024))
_DATA = int(FrameType.DATA)


@dataclass(slots=True)
class Frame:
    """One frame: its header fields and, for control frames, its payload."""

    type: int
    stream_id: int
    flags: int
    length: int
    payload: bytes = b""


class _DataDone:
    """The marker `next()` returns once a DATA frame's payload is in its sink."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DATA_DONE"


DATA_DONE: Final = _DataDone()


class FrameReader:
    """Turns a byte stream into frames, within the limits it is given."""

    def __init__(self, max_frame: int, max_control: int, account: Account | None = None) -> None:
        #: Largest DATA payload and largest payload of any other frame accepted now.
        self.max_frame = max_frame
        self.max_control = max_control
        self.account = account if account is not None else unlimited()
        #: Bytes received so far (idle and progress timeouts compare it over time).
        self.received = 0
        self._buf = bytearray(SCRATCH_SIZE)
        self._view = memoryview(self._buf)
        self._r = 0
        self._w = 0
        # DATA payload in progress: where it goes, how much is left.
        self._sink: memoryview | None = None
        self._pos = 0
        self._left = 0
        self._routing = False
        self._done_pending = False
        self._offered_direct = False

    # ------------------------------------------------------------------ bytes in

    def get_buffer(self) -> memoryview:
        """Where the next received bytes should be written."""
        if self._left and self._r == self._w:
            self._offered_direct = True
            if self._sink is None:
                return _DISCARD[: min(self._left, len(_DISCARD))]
            return self._sink[self._pos : self._pos + self._left]
        self._offered_direct = False
        if self._r and len(self._buf) - self._w < 4096:
            self._compact()
        if self._w == len(self._buf):  # full of one unfinished frame: _header grew it first
            raise ProtocolError("receive buffer is full", Status.INTERNAL)
        return self._view[self._w :]

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were written into the last buffer `get_buffer` handed out."""
        self.received += nbytes
        if self._offered_direct:
            self._offered_direct = False
            self._pos += nbytes
            self._left -= nbytes
            if not self._left:
                self._done_pending = True
        else:
            self._w += nbytes

    @property
    def partial(self) -> bool:
        """True while a frame has started arriving but is not complete."""
        return bool(self._left) or self._w > self._r

    @property
    def scratch_size(self) -> int:
        """The scratch buffer's current size (what receiving holds of the account)."""
        return len(self._buf)

    # ------------------------------------------------------------------ frames out

    def next(self) -> Frame | _DataDone | None:
        """The next complete frame, DATA_DONE, or None until more bytes arrive."""
        if self._routing:
            raise ProtocolError("route() must say where a DATA payload goes", Status.INTERNAL)
        if self._done_pending:
            self._done_pending = False
            self._sink = None
            return DATA_DONE
        avail = self._w - self._r
        if self._left:
            if not avail:
                return None
            take = min(avail, self._left)
            if self._sink is not None:
                self._sink[self._pos : self._pos + take] = self._view[self._r : self._r + take]
            self._r += take
            self._pos += take
            self._left -= take
            self._settle()
            if self._left:
                return None
            self._sink = None
            return DATA_DONE
        if avail < HEADER_SIZE:
            self._settle()
            return None
        length, stream_id, ftype, flags = HEADER.unpack_from(self._buf, self._r)
        if ftype == _DATA:
            if length > self.max_frame:
                raise ProtocolError(
                    f"DATA frame of {length} bytes exceeds the {self.max_frame}-byte frame limit",
                    Status.RESOURCE_EXHAUSTED,
                )
            self._r += HEADER_SIZE
            self._left = length
            self._routing = True
            return Frame(ftype, stream_id, flags, length)
        if length > self.max_control:
            raise ProtocolError(
                f"frame of {length} bytes exceeds the {self.max_control}-byte limit for "
                f"frame type {ftype}",
                Status.RESOURCE_EXHAUSTED,
            )
        if avail < HEADER_SIZE + length:
            if HEADER_SIZE + length > len(self._buf):
                self._grow(HEADER_SIZE + length)
            return None
        start = self._r + HEADER_SIZE
        payload = bytes(self._buf[start : start + length])
        self._r = start + length
        self._settle()
        return Frame(ftype, stream_id, flags, length, payload)

    def route(self, sink: memoryview | None) -> None:
        """Say where the payload of the DATA frame just returned goes (None: discard)."""
        self._routing = False
        self._sink = sink
        self._pos = 0
        if not self._left:
            self._done_pending = True

    # ------------------------------------------------------------------ the scratch buffer

    def _settle(self) -> None:
        """Reset positions when empty, and give a large buffer back once it is."""
        if self._r == self._w:
            self._r = self._w = 0
            if len(self._buf) > KEEP_SIZE:
                self.account.give(len(self._buf) - SCRATCH_SIZE)
                self._replace(SCRATCH_SIZE)

    def _compact(self) -> None:
        if self._r:
            size = self._w - self._r
            self._buf[:size] = self._buf[self._r : self._w]
            self._r, self._w = 0, size

    def _grow(self, needed: int) -> None:
        """Make room for a frame of `needed` bytes, charged to the account."""
        self._compact()
        if needed <= len(self._buf):
            return
        extra = needed - len(self._buf)
        if not self.account.take(extra):
            raise ProtocolError(
                self.account.refusal_message(extra, "receive buffer"), Status.RESOURCE_EXHAUSTED
            )
        self._replace(needed)

    def _replace(self, size: int) -> None:
        """A new scratch buffer of `size` (the old one may still be exported)."""
        keep = self._w - self._r
        bigger = bytearray(size)
        bigger[:keep] = self._buf[self._r : self._w]
        self._view.release()
        self._buf, self._view = bigger, memoryview(bigger)
        self._r, self._w = 0, keep

    def close(self) -> None:
        """Give back what the scratch buffer holds of the account."""
        if len(self._buf) > SCRATCH_SIZE:
            self.account.give(len(self._buf) - SCRATCH_SIZE)
            self._replace(SCRATCH_SIZE)
