"""The blocking client: the same sans-IO protocol over a plain socket, for sync callers.

A synchronous Session gains nothing from an event loop: a call is a send and a receive.
Driving `vaccel.protocol.Connection` straight from `sendall`/`recv_into` costs one
syscall each way, with no thread hop; responses are received straight into their
arrays (`get_buffer`). Calls on one connection are serialised by a lock, so threads may
share it; a call that passes its deadline sends CANCEL, and the late answer is skipped.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from vaccel.errors import (
    BadArgumentError,
    CancelledError,
    DeadlineExceededError,
    ResourceExhaustedError,
    UnavailableError,
    VaccelError,
    error_from_status,
)
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Connection, GoAway, Hello, Response
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.status import Status


def open_socket(address: Address, timeout: float) -> socket.socket:
    """A connected stream socket for any address kind (TCP_NODELAY on TCP)."""
    if address.scheme == "tcp":
        sock = socket.create_connection((address.host, address.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    family = socket.AF_UNIX if address.scheme == "unix" else getattr(socket, "AF_VSOCK", None)
    if family is None:
        raise OSError("AF_VSOCK is not supported on this platform")
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address.path if address.scheme == "unix" else (address.cid, address.port))
    except BaseException:
        sock.close()
        raise
    return sock


def unreachable(address: Address, exc: OSError, timeout: float) -> UnavailableError:
    """The error for an agent that could not be reached (refused, missing, timed out)."""
    if isinstance(exc, TimeoutError):
        return UnavailableError(message=f"agent at {address} did not answer within {timeout:g} s")
    return UnavailableError(message=f"cannot reach the agent at {address}: {exc.strerror or exc}")


def encode_error(method: str, exc: EncodeError) -> VaccelError:
    """The error for a request that cannot be sent (too large, or an unsendable value)."""
    message = str(exc)
    cls = ResourceExhaustedError if "limit" in message or "at most" in message else BadArgumentError
    return cls(message=f"{method}: {message}")


def response_error(resp: Response) -> VaccelError:
    """The error a failed response stands for."""
    if resp.status == Status.CANCELLED:
        return CancelledError(message=resp.message)
    return error_from_status(int(resp.status), resp.errno, resp.message)


#: Most buffers one sendmsg call takes (Linux's IOV_MAX is 1024).
_IOV_MAX = 1024


def send_all(sock: socket.socket, chunks: list[Any]) -> None:
    """Write every buffer with scatter-gather `sendmsg` calls (no join, no copy)."""
    views = [memoryview(c).cast("B") for c in chunks]
    while views:
        sent = sock.sendmsg(views[:_IOV_MAX])
        while sent:
            if sent >= views[0].nbytes:
                sent -= views[0].nbytes
                views.pop(0)
            else:
                views[0] = views[0][sent:]
                sent = 0
        while views and not views[0].nbytes:
            views.pop(0)


class BlockingClient:
    """One connection to an agent, used by synchronous code."""

    def __init__(self, address: str | Address, timeout: float = 10.0) -> None:
        try:
            self.address = parse_address(address) if isinstance(address, str) else address
        except AddressError as exc:
            raise BadArgumentError(message=str(exc)) from None
        self.proto = Connection(client=True, agent="pyvaccel-client/0.1.0")
        self._lock = threading.Lock()
        self.error: VaccelError | None = None
        try:
            self.sock = open_socket(self.address, timeout)
        except OSError as exc:
            raise unreachable(self.address, exc, timeout) from None
        try:
            self._send([[self.proto.hello()]])
            self.peer: Hello = self._wait(
                lambda e: isinstance(e, Hello), time.monotonic() + timeout
            )
        except TimeoutError:
            self.sock.close()
            raise UnavailableError(
                message=f"agent at {self.address} did not complete the handshake within "
                f"{timeout:g} s"
            ) from None
        except BaseException:
            self.sock.close()
            raise

    @property
    def closed(self) -> bool:
        return self.error is not None

    def _broken(self, message: str) -> UnavailableError:
        self.error = UnavailableError(message=message)
        self.sock.close()
        return self.error

    def _send(self, frames: list[list[Any]]) -> None:
        try:
            if len(frames) == 1 and len(frames[0]) == 1:
                self.sock.sendall(frames[0][0])
            else:
                send_all(self.sock, [c for f in frames for c in f])
        except OSError as exc:
            reason = f"connection to the agent at {self.address} was lost: {exc}"
            self._read_goaway(reason)
            raise self._broken(reason) from None

    def _read_goaway(self, reason: str) -> None:
        """After a failed send: if the agent said why it closed (GOAWAY), raise that."""
        try:
            self._wait(lambda e: False, time.monotonic() + 0.5)
        except UnavailableError as exc:
            if self.error is exc and "closed the connection" in exc.message:
                raise
        except (TimeoutError, OSError):
            pass

    def _wait(self, match: Any, deadline: float | None) -> Any:
        """Receive until an event satisfies `match`; raises on deadline or loss."""
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            elif self.sock.gettimeout() is not None:  # settimeout is a syscall: only on change
                self.sock.settimeout(None)
            try:
                n = self.sock.recv_into(self.proto.get_buffer())
            except TimeoutError:
                raise
            except OSError as exc:
                raise self._broken(
                    f"connection to the agent at {self.address} was lost: {exc}"
                ) from None
            if not n:
                raise self._broken(f"connection to the agent at {self.address} was lost")
            try:
                events = self.proto.buffer_updated(n)
            except ProtocolError as exc:
                raise self._broken(
                    f"agent at {self.address} broke the protocol: {exc.message}"
                ) from None
            for event in events:
                if isinstance(event, GoAway):
                    raise self._broken(
                        f"agent at {self.address} closed the connection: "
                        f"{event.message} ({event.status.name})"
                    )
                if match(event):
                    return event

    def call(
        self,
        method: str,
        args: Any,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and wait for its answer (or its deadline)."""
        with self._lock:
            if self.error is not None:
                raise self.error
            try:
                sid, frames = self.proto.request(method, args, timeout, metadata)
            except EncodeError as exc:
                raise encode_error(method, exc) from None
            deadline = None if timeout is None else time.monotonic() + timeout
            self._send(frames)
            try:
                resp: Response = self._wait(
                    lambda e: type(e) is Response and e.stream_id == sid, deadline
                )
            except TimeoutError:
                self.proto.forget(sid)
                self._send([[self.proto.cancel(sid)]])
                raise DeadlineExceededError(
                    message=f"{method} did not finish within {timeout:g} s"
                ) from None
            if resp.status:
                raise response_error(resp)
            return resp.result

    def close(self) -> None:
        with self._lock:
            if self.error is None:
                self.error = UnavailableError(message="client closed")
                self.sock.close()
