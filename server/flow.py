"""Flow control and timeouts of one agent connection: the half of `AgentConnection` that
keeps a slow or silent client from holding the agent.

Backpressure: replies waiting in the transport count in the connection's memory, and
the connection is not read while they do not fit or pass --max-queued-replies.
Timeouts (`sweep`, once a second): the handshake, idle connections, frames that crawl
(slow-loris), and messages whose DATA arrives slower than --min-rate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vaccel.protocol.connection import Connection, State
from vaccel.protocol.limits import Account
from vaccel.protocol.status import Status
from vaccel.transport.adapter import Link

if TYPE_CHECKING:
    from .state import AgentState


class FlowControl:
    """Backpressure and timeouts over the connection's link, protocol and budgets."""

    state: AgentState
    link: Link | None
    proto: Connection | None
    memory: Account
    calls: dict[int, Any]
    reading_paused: bool
    out_charged: int
    opened: float
    _seen: int
    _active: float
    _partial_since: tuple[float, int] | None
    close: Callable[[Status, str], None]
    _answer: Callable[[int, Status, str], None]

    @property
    def describe(self) -> str:
        """The peer and tenant, for log lines (`AgentConnection.describe`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ backpressure

    def _charge_output(self) -> bool:
        """Charge what the transport holds unsent (replies a slow reader has not taken)
        to this connection's memory; False when it does not fit."""
        writer = self.link.writer if self.link is not None else None
        if writer is None or self.link is None or self.link.closed:
            return True
        held = writer.unsent()
        delta = held - self.out_charged
        if delta < 0:
            self.memory.give(-delta)
        elif delta > 0 and not self.memory.take(delta):
            return False
        self.out_charged = held
        return True

    def _check_backpressure(self) -> None:
        """Stop reading requests while too much is waiting to go out, or what waits does
        not fit in the connection's memory: a client that does not read its replies
        stops being read, and what it made the agent hold stays bounded."""
        link = self.link
        if link is None or link.writer is None:
            return
        fits = self._charge_output()
        too_much = link.writer.buffered() > self.state.config.max_queued_replies
        if not self.reading_paused and (not fits or too_much):
            self.reading_paused = True
            link.pause_reading()

    def _maybe_resume(self) -> None:
        link = self.link
        if not self.reading_paused or link is None or link.writer is None:
            return
        low = self.state.config.max_queued_replies // 2
        if self._charge_output() and link.writer.buffered() <= low:
            self.reading_paused = False
            link.resume_reading()

    def writing_paused(self, paused: bool) -> None:
        if paused:
            self._check_backpressure()
        else:
            self._charge_output()
            self._maybe_resume()

    # ------------------------------------------------------------------ timeouts

    def sweep(self, now: float) -> None:
        """Close what stalls (handshake, idle, slow frames); drop messages that crawl."""
        proto, config = self.proto, self.state.config
        if proto is None or self.link is None or self.link.closed:
            return
        if self.out_charged:  # the peer took what was waiting: give the charge back
            self._charge_output()
            self._maybe_resume()
        received = proto.reader.received
        if received != self._seen:
            self._seen, self._active = received, now
        silent = now - self._active
        if proto.state in (State.AWAIT_HELLO, State.AWAIT_AUTH):
            if config.handshake_timeout and now - self.opened > config.handshake_timeout:
                what = "HELLO" if proto.state is State.AWAIT_HELLO else "valid AUTH answer"
                self.close(Status.DEADLINE_EXCEEDED, f"no {what} within the handshake timeout")
            return
        if config.progress_timeout and self._frame_crawls(now, received):
            self.close(
                Status.DEADLINE_EXCEEDED,
                f"a frame arrived slower than {config.min_rate} bytes/s for "
                f"{config.progress_timeout:g} s (progress timeout)",
            )
            return
        idle = not self.calls and not proto.open_streams and not proto.assembling
        if config.idle_timeout and idle and silent > config.idle_timeout:
            self.close(Status.UNAVAILABLE, f"connection idle for {silent:.0f} s (idle timeout)")
            return
        if config.progress_timeout:
            for refused in proto.stalled(now, config.min_rate, config.progress_timeout):
                self.state.warnings.warn(
                    "progress", f"agent: dropped a stalled message from {self.describe}"
                )
                self._answer(refused.stream_id, refused.status, refused.message)
        self._maybe_resume()

    def _frame_crawls(self, now: float, received: int) -> bool:
        """True when a started frame has been arriving slower than the minimum rate."""
        assert self.proto is not None
        if not self.proto.reader.partial:
            self._partial_since = None
            return False
        if self._partial_since is None:
            self._partial_since = (now, received)
            return False
        since, at = self._partial_since
        elapsed = now - since
        config = self.state.config
        if elapsed < config.progress_timeout:
            return False
        if received - at >= config.min_rate * elapsed:
            self._partial_since = (now, received)  # a fair rate: measure the next period
            return False
        return True
