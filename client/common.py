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
from vaccel.protocol import auth
from vaccel.protocol.address import Address
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.connection import Connection
from vaccel.protocol.events import Auth, GoAway, Hello, Response
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
    into: Any = None,
) -> tuple[int, list[list[Buffer]]]:
    """A new stream and the frames of its request; BadArgument/ResourceExhausted if unsendable."""
    try:
        return proto.request(method, args, timeout, metadata, into)
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
        return refused_token(address, event.message)
    if event.status == Status.PERMISSION_DENIED:
        return PermissionDeniedError(message=text)
    if event.status == Status.RESOURCE_EXHAUSTED:
        return _Refused(message=text)
    return ConnectionLostError(message=text)


class _Refused(UnavailableError, ResourceExhaustedError):
    """The agent refused the connection for a limit: unavailable now, and why."""


def needs_token(address: Address) -> UnauthenticatedError:
    """The error for an agent that wants a token when we have none."""
    return UnauthenticatedError(
        message=f"the agent at {address} wants a token: set VACCEL_RPC_TOKEN "
        "(tenant:token) or VACCEL_RPC_TOKEN_FILE"
    )


def refused_token(address: Address, reason: str) -> UnauthenticatedError:
    """The error for an agent that did not accept our token (or failed to prove its own)."""
    return UnauthenticatedError(message=f"the agent at {address} refused the token: {reason}")


def keepalive_expired(address: Address, keepalive: float) -> ConnectionLostError:
    """The error for an agent that answered nothing, not even a PING, for too long."""
    return ConnectionLostError(
        message=f"agent at {address} answered nothing for {2 * keepalive:g} s, not even a "
        "keepalive PING: it is frozen, overloaded or unreachable"
    )


class Handshake:
    """The client's side of HELLO and AUTH, shared by the async and the blocking client."""

    def __init__(self, address: Address, token: str | None, public: bool = False) -> None:
        self.address = address
        self.token = token
        #: Without a token, stay unauthenticated for the agent's public methods (health).
        self.public = public
        self.tenant = ""
        self._nonce = b""
        self._sent: dict[str, Any] = {}

    def on_hello(self, proto: Connection, hello: Hello) -> bytes | None:
        """The AUTH frame to send when the agent wants a token, else None (we are done)."""
        if not hello.nonce or (self.public and not self.token):
            return None
        if not self.token:
            raise needs_token(self.address)
        self._nonce = hello.nonce
        self._sent = auth.answer(self.token, hello.nonce)
        return proto.auth(self._sent)

    def on_auth(self, proto: Connection, event: Auth) -> str:
        """Check the agent's AUTH reply; the tenant it accepted us as."""
        assert self.token is not None
        try:
            self.tenant = auth.check_reply(self.token, event.fields, self._nonce, self._sent)
        except auth.AuthFailure as exc:
            raise refused_token(self.address, str(exc)) from None
        proto.authenticated()
        return self.tenant


def token_from(env: dict[str, str]) -> str | None:
    """VACCEL_RPC_TOKEN, or the first line of VACCEL_RPC_TOKEN_FILE."""
    token = env.get("VACCEL_RPC_TOKEN")
    if token:
        return token
    path = env.get("VACCEL_RPC_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip() or None
    except OSError as exc:
        raise UnauthenticatedError(
            message=f"VACCEL_RPC_TOKEN_FILE={path!r} cannot be read: {exc.strerror}"
        ) from None
