"""A hand-driven client for hostile tests: a real socket, TCP from a chosen source address
(127.0.0.2 plays another host) or unix (the agent keys unix peers by uid: every
connection of this user is one peer), frames built by hand or with the sans-IO
connection."""

from __future__ import annotations

import socket
import time
from typing import Any

import msgpack

from vaccel.protocol.connection import Connection
from vaccel.protocol.events import Event, GoAway, Hello
from vaccel.protocol.frames import HEADER, Flags, FrameType, frame


def tcp_of(address: str) -> tuple[str, int]:
    """(host, port) of a tcp:// address."""
    host, port = address[len("tcp://") :].rsplit(":", 1)
    return host, int(port)


def connect(address: str, source: str = "127.0.0.2", timeout: float = 5.0) -> socket.socket:
    """A connected socket to a tcp:// address (from `source`) or a unix:// path."""
    if address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address[len("unix://") :])
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(tcp_of(address), timeout, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


#: Every peer made, so a test's fixture can close what a failing test left open.
OPEN: list[RawPeer] = []


class RawPeer:
    """One connection driven frame by frame, over TCP (from `source`) or a unix socket."""

    def __init__(
        self, address: str, source: str = "127.0.0.2", hello: bool = True, timeout: float = 5.0
    ) -> None:
        self.sock = connect(address, source, timeout)
        OPEN.append(self)
        self.conn = Connection(client=True)
        self.events: list[Event] = []
        self.closed = False
        if hello:
            self.send(self.conn.hello())
            self.wait_for(lambda e: isinstance(e, Hello), timeout)

    def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.sock.sendall(data)

    def send_frames(self, frames: list[list[Any]]) -> None:
        """Write frames as the connection built them."""
        self.send(b"".join(bytes(c) for f in frames for c in f))

    def request_header(self, method: str, args: Any, sizes: list[int]) -> tuple[int, bytes]:
        """A REQUEST frame announcing buffers of `sizes` (no DATA follows unless sent)."""
        sid = self.conn.next_stream_id
        self.conn.next_stream_id += 2
        self.conn.open_streams.add(sid)
        body = msgpack.packb([method, args, None, {}, sizes])
        flags = Flags.DATA if sizes else 0
        return sid, frame(sid, FrameType.REQUEST, body, flags)

    @staticmethod
    def data(stream_id: int, payload: bytes, end: bool) -> bytes:
        """One DATA frame."""
        return frame(stream_id, FrameType.DATA, payload, Flags.END if end else 0)

    def pump(self, timeout: float) -> bool:
        """Receive what arrives within `timeout`; False once the agent closed."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return True
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.events.extend(self.conn.receive(data))
        return True

    def wait_for(self, match: Any, timeout: float = 5.0) -> Event:
        """The first event satisfying `match` (AssertionError after `timeout`)."""
        end = time.monotonic() + timeout
        while True:
            for event in self.events:
                if match(event):
                    self.events.remove(event)
                    return event
            if self.closed:
                raise AssertionError(f"the agent closed the connection; events: {self.events}")
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing matched within {timeout} s: {self.events}")
            self.pump(min(left, 0.5))

    def wait_closed(self, timeout: float = 10.0) -> GoAway | None:
        """Wait until the agent closes the connection; its GOAWAY, if it sent one."""
        end = time.monotonic() + timeout
        while not self.closed and time.monotonic() < end:
            self.pump(0.2)
        assert self.closed, f"the agent kept the connection open for {timeout} s"
        return next((e for e in self.events if isinstance(e, GoAway)), None)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
        if self in OPEN:
            OPEN.remove(self)


def close_all() -> None:
    """Close every peer still open."""
    for peer in list(OPEN):
        peer.close()


def raw_header(length: int, stream: int, ftype: int, flags: int = 0) -> bytes:
    """A frame header announcing `length` bytes (that may never come)."""
    return HEADER.pack(length, stream, ftype, flags)
