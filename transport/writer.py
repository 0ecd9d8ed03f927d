"""Writing frames to an asyncio transport, shared by the client and the agent.

Three rules keep one connection sound and fair:

- **Whole frames only.** Every write hands the transport one or more complete frames,
  so frames of different messages may follow each other but never interleave inside a
  frame (a DATA frame's payload is never split by another message's bytes).
- **Fairness.** Small messages (one frame, or a few small ones) are written at once;
  the ones of one loop iteration are coalesced into one write. Large messages are
  queued per stream and written a frame at a time, round robin between streams, so a
  small call is never stuck behind a 1 GiB transfer.
- **Backpressure.** The queue is pumped only while the transport accepts more
  (`pause_writing`/`resume_writing`); `queued` tells the owner how much it holds, so
  an agent can stop reading requests from a client that does not read its replies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

from vaccel.protocol.frames import Buffer, abort_frame

#: Messages of at most this many bytes are written at once, whole.
SMALL_MESSAGE = 64 * 1024
#: Bytes the pump writes in one loop iteration before letting other callbacks run.
PUMP_BURST = 4 * 1024 * 1024
#: A batch of small messages is written once it holds this much, so that a paused
#: transport is noticed within a loop iteration of many sends.
BATCH_MAX = 256 * 1024
#: The transport's write buffer limits: the pump stops above HIGH and resumes under LOW.
HIGH_WATER = 2 * 1024 * 1024
LOW_WATER = 512 * 1024


def frame_bytes(frame: list[Buffer]) -> int:
    """The size of one frame given as a list of buffers."""
    return sum(len(c) if isinstance(c, bytes) else memoryview(c).nbytes for c in frame)


class _Outgoing:
    """A large message being written: its frames, how far it got, who waits for it."""

    __slots__ = ("done", "frames", "index", "size")

    def __init__(self, frames: list[list[Buffer]], done: asyncio.Future[None], size: int) -> None:
        self.frames = frames
        self.index = 0
        self.done = done
        self.size = size


class FrameWriter:
    """Owns the write side of one transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.error: BaseException | None = None
        #: Bytes of queued large messages not yet handed to the transport.
        self.queued = 0
        #: Bytes handed to the transport so far (metrics).
        self.written = 0
        self._batch: list[bytes] | None = None
        self._batch_bytes = 0
        self._paused = False
        self._pump_armed = False
        self._streams: OrderedDict[int, _Outgoing] = OrderedDict()

    def attach(self, transport: Any) -> None:
        """Start writing to `transport` (sets its buffer limits for the pump)."""
        self.transport = transport
        with contextlib.suppress(AttributeError, NotImplementedError):
            transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    @property
    def closing(self) -> bool:
        """True once the transport is gone or failed: nothing more will be written."""
        return self.transport is None or self.transport.is_closing() or self.error is not None

    @property
    def paused(self) -> bool:
        """True while the transport asks writers to wait (its buffer is above HIGH_WATER)."""
        return self._paused

    def unsent(self) -> int:
        """Bytes the transport holds that the peer has not taken yet (copies: the
        messages' own buffers may already be reused)."""
        if self.transport is None:
            return 0
        try:
            return int(self.transport.get_write_buffer_size())
        except (AttributeError, NotImplementedError):
            return 0

    def buffered(self) -> int:
        """Bytes waiting in the transport's buffer and in this writer's queue."""
        return self.queued + self.unsent()

    # ------------------------------------------------------------------ small messages

    def send(self, data: bytes, coalesce: bool = True) -> None:
        """Write whole frames now, or with the others of this loop iteration.

        `coalesce=False` says no other message is likely this turn (a client with one
        call in flight): write without arming the end-of-turn flush, which would cost
        the loop an extra poll.
        """
        if self.closing:
            return
        if self._batch is not None:
            self._batch.append(data)
            self._batch_bytes += len(data)
            if self._batch_bytes >= BATCH_MAX:  # the transport says at once if it is full
                self._flush()
                self._batch = []
            return
        self.transport.write(data)
        self.written += len(data)
        if coalesce:
            self._batch = []
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        self._batch_bytes = 0
        if batch and not self.closing:
            data = batch[0] if len(batch) == 1 else b"".join(batch)
            self.transport.write(data)
            self.written += len(data)

    # ------------------------------------------------------------------ any message

    def send_message(
        self, stream_id: int, frames: list[list[Buffer]], coalesce: bool = True
    ) -> asyncio.Future[None] | None:
        """Write one message given as frames; returns a future when its data was queued.

        The header frame is always written at once, so stream ids reach the peer in the
        order they were opened; a large message's DATA frames are queued. The future is
        done once the last frame was handed to the transport (its buffers may then be
        reused), and fails if the connection is lost first.
        """
        head = frames[0]
        if len(frames) == 1:
            self.send(head[0] if len(head) == 1 else b"".join(head), coalesce)
            return None
        data = frames[1:]
        size = sum(frame_bytes(f) for f in data)
        if size <= SMALL_MESSAGE and not self._streams and not self._paused:
            self.send(b"".join(bytes(c) for f in frames for c in f), coalesce)
            return None
        done: asyncio.Future[None] = self.loop.create_future()
        if self.closing:
            done.set_exception(self.error or ConnectionResetError("connection closed"))
            done.exception()  # retrieved: the caller learns of the loss elsewhere too
            return done
        self.send(head[0] if len(head) == 1 else b"".join(head))
        self._streams[stream_id] = _Outgoing(data, done, size)
        self.queued += size
        self._arm_pump()
        return done

    def abort(self, stream_id: int) -> bool:
        """Stop writing a message whose DATA frames are queued; True if there was one.

        Its header is already sent, so the message is closed with an ABORT frame and
        the peer discards what it received of it.
        """
        out = self._streams.pop(stream_id, None)
        if out is None:
            return False
        self.queued -= sum(frame_bytes(f) for f in out.frames[out.index :])
        if not out.done.done():
            out.done.set_result(None)
        self.send(abort_frame(stream_id))
        return True

    def _arm_pump(self) -> None:
        if not self._pump_armed and not self._paused:
            self._pump_armed = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Write queued frames, one per stream in turn, until paused or a burst is done."""
        self._pump_armed = False
        if self._batch:
            self._flush()
        written = 0
        streams = self._streams
        while streams and not self._paused:
            if self.closing:
                return
            stream_id, out = next(iter(streams.items()))
            frame = out.frames[out.index]
            out.index += 1
            size = frame_bytes(frame)
            self.queued -= size
            self.transport.writelines(frame)
            self.written += size
            written += size
            if out.index == len(out.frames):
                del streams[stream_id]
                if not out.done.done():
                    out.done.set_result(None)
            else:
                streams.move_to_end(stream_id)
            if written >= PUMP_BURST:
                self._arm_pump()
                return

    # ------------------------------------------------------------------ flow control

    def pause_writing(self) -> None:
        """The transport's buffer went over its high-water mark."""
        self._paused = True

    def resume_writing(self) -> None:
        """The transport's buffer drained under its low-water mark."""
        self._paused = False
        if self._streams:
            self._arm_pump()

    def close_with(self, frame: bytes) -> None:
        """Write what is batched and a last frame (GOAWAY), then close the transport."""
        if self.closing:
            return
        self._flush()
        self.transport.write(frame)
        self.transport.close()

    def connection_lost(self, exc: BaseException) -> None:
        """Fail every queued message: its bytes will never be written."""
        self.error = exc
        for out in self._streams.values():
            if not out.done.done():
                out.done.set_exception(exc)
                out.done.exception()  # retrieved: nobody may be waiting for it
        self._streams.clear()
        self.queued = 0
