"""The blocking client: the same sans-IO protocol over a plain socket, for sync callers.

A synchronous Session gains nothing from an event loop: a call is a send and a receive.
Driving `vaccel.protocol.Connection` straight from `sendmsg`/`recv_into` costs one
syscall each way, with no thread hop; responses are received straight into their
arrays (`get_buffer`). Calls on one connection are serialised by a lock, so threads may
share it; a call that passes its deadline sends CANCEL, and the late answer is skipped.
While a call waits with no deadline, silence is probed with a PING: an agent that
stays silent (frozen, say) fails the call with ConnectionLostError instead of a hang.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from vaccel.buffers import POOL
from vaccel.errors import (
    BadArgumentError,
    ConnectionLostError,
    DeadlineExceededError,
    UnavailableError,
    VaccelError,
)
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.protocol.connection import Connection
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Auth, Event, GoAway, Hello, Response
from vaccel.transport.errors import broke_protocol, lost, map_connect_errors
from vaccel.transport.sockets import open_blocking

from .common import (
    CLIENT_NAME,
    DEFAULT_KEEPALIVE,
    Handshake,
    call_result,
    goaway_error,
    keepalive_expired,
    start_call,
)

#: Most buffers one sendmsg call takes (Linux's IOV_MAX is 1024).
_IOV_MAX = 1024


def send_all(sock: socket.socket, chunks: list[Any]) -> None:
    """Write every buffer with scatter-gather `sendmsg` calls (no join, no copy)."""
    views = [memoryview(c).cast("B") for c in chunks]
    i = 0
    while i < len(views):
        sent = sock.sendmsg(views[i : i + _IOV_MAX])
        while sent and i < len(views):
            if sent >= views[i].nbytes:
                sent -= views[i].nbytes
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0
        while i < len(views) and not views[i].nbytes:
            i += 1


class BlockingClient:
    """One connection to an agent, used by synchronous code."""

    def __init__(
        self,
        address: str | Address,
        timeout: float = 10.0,
        *,
        keepalive: float = DEFAULT_KEEPALIVE,
        ssl_context: ssl.SSLContext | None = None,
        source: str | None = None,
        token: str | None = None,
        public: bool = False,
    ) -> None:
        try:
            self.address = parse_address(address) if isinstance(address, str) else address
        except AddressError as exc:
            raise BadArgumentError(message=str(exc)) from None
        self.keepalive = keepalive
        self.proto = Connection(client=True, agent=CLIENT_NAME, allocate=POOL.array)
        self._lock = threading.Lock()
        self.error: VaccelError | None = None
        with map_connect_errors(self.address, timeout):
            self.sock = open_blocking(self.address, timeout, ssl_context, source)
            try:
                deadline = time.monotonic() + timeout
                self._send([[self.proto.hello()]])
                self.peer: Hello = self._wait(lambda e: isinstance(e, Hello), deadline)
                handshake = Handshake(self.address, token, public)
                frame = handshake.on_hello(self.proto, self.peer)
                if frame is not None:
                    self._send([[frame]])
                    handshake.on_auth(
                        self.proto, self._wait(lambda e: isinstance(e, Auth), deadline)
                    )
            except BaseException:
                self.sock.close()
                raise

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed."""
        return self.error is not None

    def _broken(self, error: VaccelError) -> VaccelError:
        if self.error is None:
            self.error = error
        self.sock.close()
        return self.error

    def _send(self, frames: list[list[Any]]) -> None:
        try:
            if len(frames) == 1 and len(frames[0]) == 1:
                self.sock.sendall(frames[0][0])
            else:
                send_all(self.sock, [c for f in frames for c in f])
        except OSError as exc:
            self._read_goaway()
            raise self._broken(lost(self.address, exc)) from None

    def _read_goaway(self) -> None:
        """After a failed send: if the agent said why it closed (GOAWAY), raise that."""
        try:
            self._wait(lambda e: False, time.monotonic() + 0.5)
        except VaccelError as exc:
            if not isinstance(exc, ConnectionLostError) or "closed the connection" in exc.message:
                raise
        except (TimeoutError, OSError):
            pass

    def _recv(self, deadline: float | None) -> list[Event]:
        """Receive once (within the deadline, or the keepalive when there is none)."""
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
        elif self.keepalive <= 0:
            if self.sock.gettimeout() is not None:  # settimeout is a syscall: only on change
                self.sock.settimeout(None)
        elif self.sock.gettimeout() != self.keepalive:
            self.sock.settimeout(self.keepalive)
        try:
            n = self.sock.recv_into(self.proto.get_buffer())
        except TimeoutError:
            raise
        except OSError as exc:
            raise self._broken(
                lost(self.address, exc, handshaking=self.proto.peer_hello is None)
            ) from None
        if not n:
            raise self._broken(lost(self.address, handshaking=self.proto.peer_hello is None))
        try:
            return self.proto.buffer_updated(n)
        except ProtocolError as exc:
            error = broke_protocol(self.address, exc, self.proto.peer_hello is None)
            raise self._broken(error) from None

    def _wait(self, match: Callable[[Event], bool], deadline: float | None) -> Any:
        """Receive until an event satisfies `match`; raises on deadline, loss or silence."""
        probed = False
        while True:
            try:
                events = self._recv(deadline)
            except TimeoutError:
                if deadline is not None:
                    raise
                if probed:  # a PING went out a keepalive ago and nothing came back
                    raise self._broken(keepalive_expired(self.address, self.keepalive)) from None
                probed = True
                self._send([[self.proto.ping()]])
                continue
            probed = False
            for event in events:
                if isinstance(event, GoAway):
                    raise self._broken(goaway_error(self.address, event))
                if match(event):
                    return event

    def call(
        self,
        method: str,
        args: Any,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        into: Any = None,
    ) -> Any:
        """Send one request and wait for its answer (or its deadline).

        `into`: an array to receive the answer's single buffer straight into.
        """
        with self._lock:
            if self.error is not None:
                raise self.error
            sid, frames = start_call(self.proto, method, args, timeout, metadata, into)
            deadline = None if timeout is None else time.monotonic() + timeout
            self._send(frames)
            try:
                resp: Response = self._wait(
                    lambda e: type(e) is Response and e.stream_id == sid, deadline
                )
            except TimeoutError:
                self._send([[self.proto.cancel(sid)]])
                raise DeadlineExceededError(
                    message=f"{method} did not finish within {timeout:g} s"
                ) from None
            return call_result(resp)

    def close(self) -> None:
        """Close the connection; later calls fail with UnavailableError."""
        with self._lock:
            if self.error is None:
                self.error = UnavailableError(
                    message=f"client closed its connection to {self.address}"
                )
                self.sock.close()
