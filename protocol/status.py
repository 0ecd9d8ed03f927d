"""gRPC-style status codes carried by RESPONSE and GOAWAY frames."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """gRPC-style status codes of RESPONSE and GOAWAY frames (PROTOCOL.md, section 6)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def coerce(cls, value: int) -> Status:
        """A status from the wire; unknown numbers become UNKNOWN (a table lookup: hot path)."""
        return _BY_NUMBER.get(value, cls.UNKNOWN)


_BY_NUMBER = {int(s): s for s in Status}
