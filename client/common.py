"""What the async and the blocking client share: starting a call, reading its answer,
the keepalive policy and the errors a GOAWAY stands for (all sans-IO)."""

from __future__ import annotations

from typing import Any

from vaccel.errors import (
    ConnectionLostError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from vaccel.protocol.address import Address
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Connection
from vaccel.protocol.events import GoAway, Response
from vaccel.protocol.frames import Buffer
from vaccel.protocol.status import Status
from vaccel.transport.errors import encode_error, response_error

CLIENT_NAME = "pyvaccel-client/0.2.0"
#: Seconds of silence after which a client PINGs its agent; an agent that then stays
#: silent as long again is declared dead (so a frozen agent fails calls within 2x this).
DEFAULT_KEEPALIVE = 5.0


def start_call(
    proto: Connection,
    method: str,
    args: Any,
    timeout: float | None,
    metadata: dict[str, str] | None,
) -> tuple[int, list[list[Buffer]]]:
    """A new stream and the frames of its request; BadArgument/ResourceExhausted if unsendable."""
    try:
        return proto.request(method, args, timeout, metadata)
    except EncodeError as exc:
        raise encode_error(method, exc) from None


def call_result(resp: Response) -> Any:
    """The result of a response, or the VaccelError it reports."""
    if resp.status:
        raise response_error(resp)
    return resp.result


def goaway_error(address: Address, event: GoAway) -> UnavailableError | PermissionDeniedError:
    """The error a client raises when its agent closes the connection with GOAWAY."""
    text = f"agent at {address} closed the connection: {event.message} ({event.status.name})"
    if event.status == Status.UNAUTHENTICATED:
        return UnauthenticatedError(message=text)
    if event.status == Status.PERMISSION_DENIED:
        return PermissionDeniedError(message=text)
    if event.status == Status.RESOURCE_EXHAUSTED:
        return _Refused(message=text)
    return ConnectionLostError(message=text)


class _Refused(UnavailableError, ResourceExhaustedError):
    """The agent refused the connection for a limit: unavailable now, and why."""


def keepalive_expired(address: Address, keepalive: float) -> ConnectionLostError:
    """The error for an agent that answered nothing, not even a PING, for too long."""
    return ConnectionLostError(
        message=f"agent at {address} answered nothing for {2 * keepalive:g} s, not even a "
        "keepalive PING: it is frozen, overloaded or unreachable"
    )
