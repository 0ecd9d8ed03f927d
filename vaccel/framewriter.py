"""Writing frames to an asyncio transport, shared by the client and the agent.

Small messages are coalesced: the first in a loop iteration is written at once (no added
latency), any more in the same iteration go out together in one write when the loop
turns (one syscall for a burst of responses or of calls in flight). Large messages are
written in steps that honour the transport's flow control (pause_writing /
resume_writing), so a slow reader never makes the writer buffer a whole payload twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Messages over this many bytes are written with flow control, in steps of this size.
BIG_WRITE = 1 << 20


def _size(chunk: Any) -> int:
    return len(chunk) if isinstance(chunk, bytes) else memoryview(chunk).nbytes


class FrameWriter:
    """Owns the write side of one transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self._batch: list[bytes] | None = None
        self._paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self.error: BaseException | None = None

    def attach(self, transport: Any) -> None:
        self.transport = transport

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing() or self.error is not None

    def send(self, chunks: list[Any], coalesce: bool = True) -> None:
        """Write one small message now, or with the others of this loop iteration.

        `coalesce=False` says no other message is likely this turn (a client with one
        call in flight): write without arming the end-of-turn flush, which would cost
        the loop an extra poll.
        """
        if self.closing:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._batch is not None:
            self._batch.append(data)
            return
        self.transport.write(data)
        if coalesce:
            self._batch = []
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch and not self.closing:
            self.transport.write(batch[0] if len(batch) == 1 else b"".join(batch))

    def close_with(self, frame: bytes) -> None:
        """Write what is batched and a last frame (GOAWAY), then close the transport."""
        if self.closing:
            return
        self._flush()
        self.transport.write(frame)
        self.transport.close()

    async def send_large(self, chunks: list[Any]) -> None:
        """Write a message of any size, pausing whenever the transport asks."""
        if sum(_size(c) for c in chunks) < BIG_WRITE:
            self.send(chunks)
            return
        self._flush()  # keep order with small messages already batched
        step: list[Any] = []
        size = 0
        for chunk in chunks:
            step.append(chunk)
            size += _size(chunk)
            if size >= BIG_WRITE:
                await self._write_step(step)
                step, size = [], 0
        if step:
            await self._write_step(step)

    async def _write_step(self, step: list[Any]) -> None:
        if self.closing:
            raise ConnectionResetError("connection closed while writing")
        self.transport.writelines(step)
        if self._paused:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake(None)

    def connection_lost(self, exc: BaseException) -> None:
        self.error = exc
        self._wake(exc)

    def _wake(self, exc: BaseException | None) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._waiters.clear()
