"""Every limit the protocol enforces, checked before anything is buffered or allocated."""

from __future__ import annotations

import threading
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """What one side accepts from its peer; sent in HELLO so the peer can stay inside them."""

    #: Largest frame payload (any frame type); a header announcing more is a protocol error.
    max_frame: int = 4 * MiB
    #: Largest total of out-of-band buffers one message may announce.
    max_message: int = 1 * GiB
    #: Most requests one connection may have in flight at once.
    max_streams: int = 1024
    #: Most bytes of not-yet-complete messages buffered on one connection.
    max_pending: int = 2 * GiB
    #: Largest number of buffers one message may carry.
    max_buffers: int = 4096
    #: Deepest nesting of lists and maps in a message.
    max_depth: int = 32

    def to_wire(self) -> dict[str, int]:
        return {"frame": self.max_frame, "message": self.max_message, "streams": self.max_streams}


DEFAULT_LIMITS = Limits()


class Budget:
    """A shared allowance (bytes, sessions) that many connections draw on at once.

    The agent gives one to all its connections for request buffers: taken when a request's
    buffers are announced (before they are allocated), given back when it is answered,
    cancelled or its connection closes, so receiving, queueing and running calls together
    stay under `limit`; and one each for resource bytes and sessions clients keep.
    Thread-safe, since an agent may serve AF_VSOCK on a second event loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.limit:
                return False
            self.used += nbytes
            return True

    def give(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes
