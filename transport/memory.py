"""An in-memory byte pipe between two protocols on one event loop (no socket).

`memory_pair` joins a client protocol and an agent protocol as a socket pair would:
what one writes reaches the other's `get_buffer`/`buffer_updated` on a later loop
iteration, in pieces of at most `chunk` bytes (small pieces exercise frames split
anywhere), with the same flow control as a socket transport (`pause_writing` over the
high-water mark, `resume_writing` under the low one, `pause_reading` honoured). Closing
one end delivers what it wrote, then `connection_lost` to both. Fast protocol-level tests
use it; it is never listened on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory pipe: writes go to the peer end's protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, chunk: int) -> None:
        super().__init__()
        self._loop = loop
        self._chunk = chunk
        self._protocol: Any = None
        self.peer: MemoryTransport | None = None
        self._inbox: deque[memoryview] = deque()  # what the peer wrote, not yet read
        self._queued = 0
        self._reading = True
        self._closing = False
        self._lost = False
        self._scheduled = False
        self._write_paused = False
        self._high, self._low = HIGH_WATER, LOW_WATER
        #: How often this end's writer was paused (tests check flow control engaged).
        self.pauses = 0

    # ------------------------------------------------------------------ asyncio.Transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """No socket, no peer address: the agent sees a "local" peer."""
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading and writing; the peer reads what was written, then both ends
        are lost (as a socket's close: unread input is dropped)."""
        if self._closing:
            return
        self._closing = True
        self._reading = False
        self._inbox.clear()
        self._queued = 0
        if self.peer is not None:
            self.peer._schedule()  # it loses the connection once it read our bytes
        else:
            self._loop.call_soon(self._lose)

    def abort(self) -> None:
        """Close at once, dropping what the peer has not read yet."""
        if self.peer is not None:
            self.peer._inbox.clear()
            self.peer._queued = 0
        self.close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self.peer is None or self.peer._closing:
            return
        if not data:
            return
        view = memoryview(bytes(data))  # the caller may reuse its buffer
        self.peer._inbox.append(view)
        self.peer._queued += len(view)
        self.peer._schedule()
        if not self._write_paused and self.peer._queued > self._high:
            self._write_paused = True
            self.pauses += 1
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.peer._queued if self.peer is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        self._schedule()

    def is_reading(self) -> bool:
        return self._reading

    # ------------------------------------------------------------------ delivery

    def _schedule(self) -> None:
        if not self._scheduled and not self._lost:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        """Hand what the peer wrote to this end's protocol, a piece at a time."""
        self._scheduled = False
        protocol, inbox = self._protocol, self._inbox
        while inbox and self._reading and not self._lost:
            head = inbox[0]
            buffer = protocol.get_buffer(min(len(head), self._chunk))
            n = min(len(buffer), len(head), self._chunk)
            buffer[:n] = head[:n]
            if n == len(head):
                inbox.popleft()
            else:
                inbox[0] = head[n:]
            self._queued -= n
            protocol.buffer_updated(n)
            if self._chunk < HIGH_WATER:
                break  # small pieces: one per loop iteration, so others interleave
        peer = self.peer
        if peer is not None and peer._write_paused and self._queued <= peer._low:
            peer._write_paused = False
            peer._protocol.resume_writing()
        if inbox and self._reading:
            self._schedule()
        elif not inbox and peer is not None and peer._closing:
            self._lose()

    def _lose(self) -> None:
        """Both ends are gone."""
        for end in (self, self.peer):
            if end is not None and not end._lost:
                end._lost = True
                end._closing = True
                end._protocol.connection_lost(None)


def memory_pair(
    client: Callable[[], asyncio.BaseProtocol],
    agent: Callable[[], asyncio.BaseProtocol],
    *,
    chunk: int = 1 << 20,
) -> tuple[asyncio.BaseProtocol, asyncio.BaseProtocol]:
    """Make both protocols and join them; returns (client protocol, agent protocol).

    `chunk`: the most bytes handed to a protocol at once (small values split frames
    at every point, one piece per loop iteration).
    """
    loop = asyncio.get_running_loop()
    ends = MemoryTransport(loop, chunk), MemoryTransport(loop, chunk)
    ends[0].peer, ends[1].peer = ends[1], ends[0]
    protocols = agent(), client()
    for end, protocol in zip(ends, reversed(protocols), strict=True):
        end.set_protocol(protocol)
    protocols[0].connection_made(ends[1])  # the agent first, as a listener accepts
    protocols[1].connection_made(ends[0])
    return protocols[1], protocols[0]
