"""Receiving messages with out-of-band buffers: the assembly half of `Connection`.

A message whose header announces buffers is *assembled*: its body is bound to one array
sized from the announced lengths (checked against the limits and charged to the
account first), and the DATA frames that follow are received straight into it. A
message the sender aborts, the receiver cancels, or whose data crawls is dropped and
what it held is given back. `Connection` mixes this in; it owns the state used here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import ProtocolError
from .events import Event, Rejected, Request, Response
from .frames import Flags, FrameType
from .limits import Account, Limits
from .reader import Frame, FrameReader
from .status import Status

#: What one message holds beyond its buffers while in flight (its decoded body and
#: bookkeeping), per byte of body and per call.
BODY_COST = 16
CALL_COST = 1024
# Plain ints for the hot path (IntFlag arithmetic runs in Python).
_END, _HAS_DATA, _ABORT = int(Flags.END), int(Flags.DATA), int(Flags.ABORT)


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


class MessageAssembly:
    """Opening messages (small ones complete at once), DATA frames, completion, drops."""

    client: bool
    limits: Limits
    account: Account
    allocate: codec.Allocate | None
    clock: Callable[[], float]
    reader: FrameReader
    open_streams: set[int]
    _into: dict[int, Any]
    _held: dict[int, int]
    _events: list[Event]
    _assemblies: dict[int, _Assembly]
    _asm: _Assembly | None
    _pending: int

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
