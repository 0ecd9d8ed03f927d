"""A stream transport driven by the loop's `add_reader`/`add_writer`, for any socket.

uvloop cannot adopt AF_VSOCK sockets into its own transports (it sets TCP_NODELAY on
every stream socket, which AF_VSOCK refuses: OSError 92), but its `add_reader` and
`add_writer` work on any file descriptor, as the stdlib loop's do. `SocketTransport`
builds the transport asyncio protocols expect on top of them, so an AF_VSOCK
connection is one multiplexed connection on the caller's loop, whichever loop that is,
with the same flow control as TCP: `BufferedProtocol` receiving straight into the
protocol's buffers, scatter-gather sends, and write-buffer water marks.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
from typing import Any

_TRY_AGAIN = (BlockingIOError, InterruptedError)
_IOV_MAX = 1024


class SocketTransport(asyncio.Transport):
    """A connected, non-blocking stream socket as an asyncio transport."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._info: dict[str, Any] = dict(extra or {})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._out: collections.deque[memoryview] = collections.deque()
        self._out_size = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._write_paused = False
        self._reading = False
        self._read_paused = False
        self._closing = False
        self._lost = False
        self._info.setdefault("socket", sock)
        try:
            self._info.setdefault("peername", sock.getpeername())
        except OSError:
            self._info.setdefault("peername", None)
        try:
            self._info.setdefault("sockname", sock.getsockname())
        except OSError:
            self._info.setdefault("sockname", None)
        loop.call_soon(self._start)

    def _start(self) -> None:
        if self._closing:
            return
        self._protocol.connection_made(self)
        if not self._closing and not self._read_paused:
            self._add_reader()

    # ------------------------------------------------------------------ reading

    def _add_reader(self) -> None:
        if not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _remove_reader(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            if self._buffered:
                protocol: Any = self._protocol
                buf = protocol.get_buffer(-1)
                n = self._sock.recv_into(buf)
                if n:
                    protocol.buffer_updated(n)
                    return
            else:
                data = self._sock.recv(256 * 1024)
                if data:
                    self._protocol.data_received(data)  # type: ignore[attr-defined]
                    return
        except _TRY_AGAIN:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc)
            return
        self._remove_reader()
        keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        if not keep_open:
            self.close()

    def pause_reading(self) -> None:
        """Stop receiving until `resume_reading` (the peer's sends then back up)."""
        self._read_paused = True
        self._remove_reader()

    def resume_reading(self) -> None:
        """Receive again."""
        self._read_paused = False
        if not self._closing:
            self._add_reader()

    def is_reading(self) -> bool:
        """Whether the transport is receiving."""
        return self._reading

    # ------------------------------------------------------------------ writing

    def write(self, data: Any) -> None:
        """Send `data`, buffering what the socket does not take now."""
        self.writelines([data])

    def writelines(self, list_of_data: Any) -> None:
        """Send several buffers with one scatter-gather call where possible."""
        if self._closing or self._lost:
            return
        views = [memoryview(d).cast("B") for d in list_of_data]
        views = [v for v in views if v.nbytes]
        if not views:
            return
        if not self._out:
            try:
                sent = self._sock.sendmsg(views[:_IOV_MAX])
            except _TRY_AGAIN:
                sent = 0
            except OSError as exc:
                self._fatal(exc)
                return
            views = _advance(views, sent)
            if not views:
                return
            self._loop.add_writer(self._fd, self._on_writable)
        for view in views:
            self._out.append(view)
            self._out_size += view.nbytes
        self._check_high()

    def _on_writable(self) -> None:
        while self._out:
            batch = [self._out[i] for i in range(min(len(self._out), _IOV_MAX))]
            try:
                sent = self._sock.sendmsg(batch)
            except _TRY_AGAIN:
                return
            except OSError as exc:
                self._fatal(exc)
                return
            self._out_size -= sent
            while sent:
                head = self._out[0]
                if sent >= head.nbytes:
                    sent -= head.nbytes
                    self._out.popleft()
                else:
                    self._out[0] = head[sent:]
                    sent = 0
            if len(batch) < _IOV_MAX and self._out:
                break  # the socket is full: wait for the next writable event
        if not self._out:
            self._loop.remove_writer(self._fd)
        self._check_low()
        if not self._out and self._closing:
            self._finish(None)

    def _check_high(self) -> None:
        if not self._write_paused and self._out_size > self._high:
            self._write_paused = True
            self._protocol.pause_writing()

    def _check_low(self) -> None:
        if self._write_paused and self._out_size <= self._low:
            self._write_paused = False
            self._protocol.resume_writing()

    def can_write_eof(self) -> bool:
        """AF_VSOCK and unix sockets support shutdown(SHUT_WR)."""
        return True

    def write_eof(self) -> None:
        """Shut the sending side down once the buffer is flushed."""
        if not self._out:
            self._sock.shutdown(socket.SHUT_WR)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting to be sent."""
        return self._out_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The (low, high) water marks."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks that pause and resume the protocol's writing."""
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low
        self._check_high()

    # ------------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        """True once close or abort was called, or the connection failed."""
        return self._closing

    def close(self) -> None:
        """Close after sending what is buffered."""
        if self._closing:
            return
        self._closing = True
        self._remove_reader()
        if not self._out:
            self._loop.call_soon(self._finish, None)

    def abort(self) -> None:
        """Close now, dropping what is buffered."""
        self._closing = True
        self._drop()
        self._loop.call_soon(self._finish, None)

    def _fatal(self, exc: BaseException) -> None:
        self._closing = True
        self._drop()
        self._loop.call_soon(self._finish, exc)

    def _drop(self) -> None:
        self._remove_reader()
        if self._out:
            self._loop.remove_writer(self._fd)
            self._out.clear()
            self._out_size = 0

    def _finish(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            self._sock.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information: `socket`, `peername`, `sockname`."""
        return self._info.get(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol this transport drives."""
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Drive another protocol."""
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)


def _advance(views: list[memoryview], sent: int) -> list[memoryview]:
    """What is left of `views` after `sent` bytes went out."""
    i = 0
    while i < len(views) and sent >= views[i].nbytes:
        sent -= views[i].nbytes
        i += 1
    rest = views[i:]
    if rest and sent:
        rest[0] = rest[0][sent:]
    return rest


class SocketServer:
    """Accepts connections on a listening socket through `add_reader`; `asyncio.Server`-like."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Any) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self.sockets = [sock]
        self._closed = False
        loop.add_reader(sock.fileno(), self._on_acceptable)

    def _on_acceptable(self) -> None:
        for _ in range(64):
            try:
                conn, _addr = self._sock.accept()
            except _TRY_AGAIN:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment rather than spin.
                    self._loop.remove_reader(self._sock.fileno())
                    self._loop.call_later(0.5, self._resume)
                return
            conn.setblocking(False)
            SocketTransport(self._loop, conn, self._factory())

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._on_acceptable)

    def close(self) -> None:
        """Stop accepting and close the listening socket."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        """Nothing to wait for: closing is immediate."""

    def is_serving(self) -> bool:
        """True until `close`."""
        return not self._closed
