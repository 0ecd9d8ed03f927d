"""What a `Connection` reports to its owner: one class per event, sans-IO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .status import Status


@dataclass(slots=True)
class Hello:
    """The peer's handshake: protocol version, its name, the limits it accepts."""

    version: int
    agent: str
    limits: dict[str, int]
    caps: list[str]
    nonce: bytes = b""
    auth: dict[str, Any] | None = None


@dataclass(slots=True)
class Request:
    """A complete request (agent side): method, arguments, deadline, metadata."""

    stream_id: int
    method: str
    args: Any
    timeout: float | None
    metadata: dict[str, str]
    #: Bytes of this connection's account the request holds until it is answered.
    held: int = 0


@dataclass(slots=True)
class Response:
    """A complete response (client side)."""

    stream_id: int
    status: Status
    message: str
    errno: int
    result: Any


@dataclass(slots=True)
class Rejected:
    """A request refused before it reached the application; answer it with this status."""

    stream_id: int
    status: Status
    message: str


@dataclass(slots=True)
class Cancel:
    """The client gave up on a stream: stop its work, send no response."""

    stream_id: int


@dataclass(slots=True)
class GoAway:
    """The peer is closing the connection, and why."""

    status: Status
    message: str
    last_stream_id: int


@dataclass(slots=True)
class Ping:
    """A liveness probe (or its answer, `ack`)."""

    payload: bytes
    ack: bool


@dataclass(slots=True)
class Auth:
    """The client's answer to the agent's challenge (agent side), or the agent's verdict."""

    fields: dict[str, Any]


Event = Hello | Request | Response | Rejected | Cancel | GoAway | Ping | Auth
