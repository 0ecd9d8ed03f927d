"""Protocol violations, sans-IO: what the parser raises and nothing else."""

from __future__ import annotations

from .status import Status


class ProtocolError(Exception):
    """The peer broke the protocol; `status` is what a GOAWAY or RESPONSE reports.

    `fatal` means the frame stream can no longer be trusted: send GOAWAY, then close.
    A non-fatal error belongs to one stream (`stream_id`) and is answered on it.
    """

    def __init__(
        self,
        message: str,
        status: Status = Status.INVALID_ARGUMENT,
        *,
        fatal: bool = True,
        stream_id: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.fatal = fatal
        self.stream_id = stream_id
