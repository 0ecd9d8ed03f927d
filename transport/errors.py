"""Errors translated at the IO boundary: sockets, TLS, the protocol and encoding.

Everything below this layer raises its own exceptions (OSError, ssl.SSLError,
ProtocolError, EncodeError); everything above sees only `VaccelError`s that name the
agent and say what happened, as httpcore's `map_exceptions` does for HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import ssl
from collections.abc import Iterator

from vaccel.errors import (
    BadArgumentError,
    CancelledError,
    ConnectionLostError,
    ResourceExhaustedError,
    UnavailableError,
    VaccelError,
    error_from_status,
)
from vaccel.protocol.address import Address
from vaccel.protocol.codec import EncodeError
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Response
from vaccel.protocol.status import Status


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the agent's certificate is not trusted: {exc.verify_message or exc.reason}"
    reason = exc.reason or str(exc)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return f"the agent did not speak TLS ({reason}): is it a plain tcp:// listener?"
    if "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason or "UNKNOWN_CA" in reason:
        return f"the agent refused the TLS handshake ({reason}): does it want a client certificate?"
    return f"TLS failed: {reason}"


def unreachable(address: Address, exc: BaseException, timeout: float) -> UnavailableError:
    """The error for an agent that could not be reached (refused, missing, timed out)."""
    if isinstance(exc, ssl.SSLError):
        return UnavailableError(
            errno.EPROTO, f"cannot reach the agent at {address}: {_tls_reason(exc)}"
        )
    if isinstance(exc, TimeoutError):
        return UnavailableError(
            errno.ETIMEDOUT, f"agent at {address} did not answer within {timeout:g} s"
        )
    code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.ECONNREFUSED
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return UnavailableError(code, f"cannot reach the agent at {address}: {text}")


def lost(
    address: Address, exc: BaseException | None = None, handshaking: bool = False
) -> ConnectionLostError:
    """The error for a connection to the agent that broke (during the handshake: say why
    that may be, a TLS refusal or a plain client at a TLS port)."""
    if isinstance(exc, ssl.SSLError):
        return ConnectionLostError(
            errno.EPROTO, f"connection to the agent at {address} failed: {_tls_reason(exc)}"
        )
    reason = f": {exc}" if exc else ""
    if handshaking:
        hint = (
            "is it a tls:// listener (then connect with tls://), or does it want a client "
            "certificate?"
            if address.scheme != "tls"
            else "did it refuse our client certificate (or want one)?"
        )
        return ConnectionLostError(
            message=f"the agent at {address} closed the connection during the handshake"
            f"{reason}: {hint}"
        )
    return ConnectionLostError(message=f"connection to the agent at {address} was lost{reason}")


def broke_protocol(
    address: Address, exc: ProtocolError, handshaking: bool = False
) -> ConnectionLostError:
    """The error for an agent (or a non-agent peer) that broke the protocol.

    A peer that breaks it before its HELLO is not a pyvaccel agent at all (an HTTP
    server, say): say so, rather than quote the frame it seemed to send.
    """
    if handshaking:
        return ConnectionLostError(
            errno.EPROTO, f"{address} is not a pyvaccel agent (its first bytes: {exc.message})"
        )
    return ConnectionLostError(
        errno.EPROTO, f"agent at {address} broke the protocol: {exc.message}"
    )


@contextlib.contextmanager
def map_connect_errors(address: Address, timeout: float) -> Iterator[None]:
    """Translate what connecting and the handshake raise into UnavailableError."""
    try:
        yield
    except VaccelError:
        raise
    except ProtocolError as exc:
        raise broke_protocol(address, exc, handshaking=True) from None
    except (OSError, EOFError) as exc:  # TimeoutError and ssl.SSLError included
        raise unreachable(address, exc, timeout) from None


def encode_error(method: str, exc: EncodeError) -> VaccelError:
    """The error for a request that cannot be sent (too large, or an unsendable value)."""
    cls = ResourceExhaustedError if exc.status == Status.RESOURCE_EXHAUSTED else BadArgumentError
    return cls(message=f"{method}: {exc.message}")


def response_error(resp: Response) -> VaccelError:
    """The error a failed response stands for."""
    if resp.status == Status.CANCELLED:
        return CancelledError(message=resp.message)
    return error_from_status(int(resp.status), resp.errno, resp.message)
