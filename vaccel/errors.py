"""One root error, subclassed by who is at fault.

Every failure that leaves the public API is a `VaccelError` carrying an errno-style
`code` and a message that names what was wrong. Lower layers (msgpack, sockets,
plugin imports) are translated at the boundaries so nothing leaks out raw.
"""

from __future__ import annotations

import errno

from .error import FFIError


class VaccelError(FFIError):
    """Root of every error pyvaccel raises; `code` is an errno number.

    It is a vaccel-python `FFIError` (a RuntimeError), so applications written for
    vaccel-python catch it unchanged.
    """

    default_code = errno.EIO

    def __init__(self, code: int | str | None = None, message: str = "") -> None:
        # VaccelError(code, message) as vaccel-python; a bare message works too.
        if isinstance(code, str):
            message = message or code
            number = self.default_code
        else:
            number = self.default_code if code is None else int(code)
        super().__init__(number, message)

    def __str__(self) -> str:
        name = errno.errorcode.get(self.code, str(self.code))
        return f"{self.message} ({name})"


class BadArgumentError(VaccelError, ValueError):
    """The caller passed something the operation cannot accept."""

    default_code = errno.EINVAL


class NotSupportedError(VaccelError):
    """No loaded plugin implements what was asked for."""

    default_code = errno.ENOTSUP


class NotFoundError(VaccelError):
    """A session, resource, file or symbol that was named does not exist."""

    default_code = errno.ENOENT


class PermissionDeniedError(VaccelError):
    """The caller may not do this (an exec target off the allow-list, a foreign session)."""

    default_code = errno.EPERM


class PluginError(VaccelError):
    """A plugin could not be found, imported or initialised."""

    default_code = errno.ELIBACC


class PluginFailure(VaccelError):
    """A plugin failed while running an operation (its fault, not the caller's)."""

    default_code = errno.EIO


class RemoteError(VaccelError):
    """The agent reported a failure we could not map more precisely."""

    default_code = errno.EREMOTEIO


class DeadlineExceededError(VaccelError, TimeoutError):
    """The call did not finish before its deadline."""

    default_code = errno.ETIMEDOUT


class UnavailableError(VaccelError, ConnectionError):
    """The agent cannot be reached, or went away mid-call."""

    default_code = errno.ECONNREFUSED


class ConnectionLostError(UnavailableError):
    """An established connection to the agent broke (reset, closed, or the agent froze)."""

    default_code = errno.ECONNRESET


class SessionLostError(ConnectionLostError):
    """The session lived on an agent connection that is gone: its state went with it.

    It is never recreated behind the caller's back; open a new session.
    """

    default_code = errno.ENOTCONN


class UnauthenticatedError(PermissionDeniedError):
    """The agent refused our credentials, or wants some we did not give."""

    default_code = errno.EACCES


class ResourceExhaustedError(VaccelError):
    """A limit was hit: message size, streams in flight, sessions."""

    default_code = errno.ENOSPC


class CancelledError(VaccelError):
    """The call was cancelled before it finished."""

    default_code = errno.ECANCELED


# gRPC-style status numbers (vaccel.protocol.Status) for each kind of fault, so the agent
# can report an error and the client can raise the same class with the same errno.
_STATUS_OF: list[tuple[type[VaccelError], int]] = [
    (CancelledError, 1),
    (UnauthenticatedError, 16),
    (BadArgumentError, 3),
    (DeadlineExceededError, 4),
    (NotFoundError, 5),
    (PermissionDeniedError, 7),
    (ResourceExhaustedError, 8),
    (PluginError, 9),
    (NotSupportedError, 12),
    (PluginFailure, 13),
    (UnavailableError, 14),
    (RemoteError, 2),
]
_CLASS_OF = {status: cls for cls, status in _STATUS_OF}
_CLASS_OF[6] = BadArgumentError  # ALREADY_EXISTS
_CLASS_OF[11] = BadArgumentError  # OUT_OF_RANGE
_CLASS_OF[16] = UnauthenticatedError  # UNAUTHENTICATED
_CLASS_OF[10] = ConnectionLostError  # ABORTED: the agent abandoned the call


def status_of(exc: VaccelError) -> int:
    """The status number that reports `exc` on the wire."""
    for cls, status in _STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 2


def error_from_status(status: int, errno_: int, message: str) -> VaccelError:
    """The VaccelError a client raises for a failed call (errno kept when the agent sent one)."""
    cls = _CLASS_OF.get(status, RemoteError)
    return cls(errno_ or None, message)
