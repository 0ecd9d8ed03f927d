"""Every limit the protocol enforces, and the budgets that memory and slots are charged to.

Lengths are checked against `Limits` before anything is buffered or allocated. What a
peer makes this side hold (receive buffers, messages being assembled, calls in flight)
is charged to an `Account`: a chain of `Budget`s (this connection, its peer, its tenant,
the whole agent), each of which must have room, so no single connection, peer or tenant
can use up what the others need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """What one side accepts from its peer; partly sent in HELLO so the peer stays inside."""

    #: Largest DATA frame payload; a header announcing more is a protocol error.
    max_frame: int = 4 * MiB
    #: Largest payload of any other frame (a REQUEST/RESPONSE body, HELLO, GOAWAY).
    max_header: int = 1 * MiB
    #: Largest HELLO payload (before HELLO nothing larger is buffered).
    max_hello: int = 4 * KiB
    #: Largest total of out-of-band buffers one message may announce.
    max_message: int = 1 * GiB
    #: Most requests one connection may have in flight at once.
    max_streams: int = 1024
    #: Most bytes of not-yet-complete messages buffered on one connection.
    max_pending: int = 2 * GiB
    #: Largest number of buffers one message may carry.
    max_buffers: int = 4096
    #: Deepest nesting of lists and maps in a message body.
    max_depth: int = 32
    #: Most values (list and map entries, all levels together) in one message body:
    #: bounds the time decoding may hold the event loop.
    max_elements: int = 16384

    def to_wire(self) -> dict[str, int]:
        """The limits a peer must respect, as HELLO announces them."""
        return {
            "frame": self.max_frame,
            "header": self.max_header,
            "message": self.max_message,
            "streams": self.max_streams,
        }


DEFAULT_LIMITS = Limits()


class Budget:
    """A shared allowance (bytes, sessions, calls) that many users draw on at once.

    `take` either reserves the whole amount or nothing; `give` returns it. Refusals are
    counted (`refused`) for metrics. Budgets belong to one event loop's thread (the
    agent's); work in pool threads hands its releases back to that thread.
    """

    __slots__ = ("limit", "name", "peak", "refused", "used")

    def __init__(self, limit: int, name: str = "budget") -> None:
        self.limit = limit
        self.name = name
        self.used = 0
        self.peak = 0
        self.refused = 0

    def take(self, amount: int) -> bool:
        """Reserve `amount`; False (and nothing reserved) if it does not fit."""
        used = self.used + amount
        if used > self.limit:
            self.refused += 1
            return False
        self.used = used
        if used > self.peak:
            self.peak = used
        return True

    def give(self, amount: int) -> None:
        """Return what `take` reserved."""
        self.used -= amount

    @property
    def free(self) -> int:
        """What is left to take."""
        return self.limit - self.used

    def __repr__(self) -> str:
        return f"<Budget {self.name} {self.used}/{self.limit}>"


class Account:
    """A chain of budgets charged together: all of them must have room, or none is charged.

    `refusal` names the budget that said no last time, so an error can name the limit.
    """

    __slots__ = ("budgets", "held", "refusal")

    def __init__(self, budgets: Sequence[Budget]) -> None:
        self.budgets = list(budgets)
        self.held = 0
        self.refusal: Budget | None = None

    def take(self, amount: int) -> bool:
        """Charge `amount` to every budget of the chain, or to none."""
        if amount <= 0:
            return True
        budgets = self.budgets
        for budget in budgets:
            if budget.used + amount > budget.limit:
                budget.refused += 1
                self.refusal = budget
                return False
        for budget in budgets:
            used = budget.used = budget.used + amount
            if used > budget.peak:
                budget.peak = used
        self.held += amount
        return True

    def extend(self, budget: Budget) -> None:
        """Add a budget to the chain, charging it what the account already holds."""
        budget.used += self.held
        budget.peak = max(budget.peak, budget.used)
        self.budgets.append(budget)

    def give(self, amount: int) -> None:
        """Return `amount` to every budget of the chain."""
        if amount <= 0:
            return
        for budget in self.budgets:
            budget.used -= amount
        self.held -= amount

    def release_all(self) -> None:
        """Return everything still held (the connection closed)."""
        self.give(self.held)

    def refusal_message(self, amount: int, what: str) -> str:
        """Why the last `take` of `amount` failed, naming the limit."""
        budget = self.refusal
        if budget is None:
            return f"{amount} bytes of {what} do not fit"
        return (
            f"{what}: {amount} more bytes exceed the {budget.name} limit "
            f"({budget.used} of {budget.limit} in use)"
        )


#: An account that never refuses (tests, the client side).
def unlimited() -> Account:
    """An account with no budget in its chain."""
    return Account([])
