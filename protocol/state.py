"""Where a connection is in its life (the explicit state of `Connection`)."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """Where a connection is in its life."""

    #: Nothing but HELLO (or a refusing GOAWAY) is accepted yet.
    AWAIT_HELLO = "await-hello"
    #: HELLO done, the agent wants a token: nothing but AUTH (and PING) until it is proven.
    AWAIT_AUTH = "await-auth"
    #: Handshake done: requests and responses flow.
    OPEN = "open"
    #: A GOAWAY was sent or received: nothing more is accepted.
    CLOSED = "closed"
