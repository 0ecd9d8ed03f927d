"""What every connection of an agent shares: settings, budgets, peers, tasks, counters.

`AgentState` is what a connection receives (as uvicorn's `ServerState`): the runtime,
the settings, the agent-wide budgets, one `PeerState` per peer (a TCP source address,
a vsock CID or a unix uid) with that peer's budgets, the live connections, and every
task the agent started (so shutdown can cancel them). Each limit is a `Budget`; a
connection charges a chain of them (its own, its peer's, the agent's) so no one
connection or peer can use up what the others need.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vaccel import log
from vaccel.protocol.auth import load_tokens
from vaccel.protocol.limits import Account, Budget, Limits
from vaccel.runtime import Runtime

from .config import AgentConfig, parse_list
from .resource_cache import ResourceCache

AGENT_NAME = "pyvaccel-agent/0.2.0"
#: Upper bounds (seconds) of the call latency histogram's buckets (then +Inf).
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass
class PeerState:
    """One peer's share of the agent."""

    key: str
    memory: Budget
    connections: Budget
    sessions: Budget
    calls: Budget
    resources: Budget
    live: int = 0


@dataclass
class TenantState:
    """One tenant's quotas (issue: multi-tenant agents); budgets only where configured."""

    name: str
    budgets: dict[str, Budget] = field(default_factory=dict)


class RateLimitedLog:
    """Warnings about refusals, at most one line per kind per interval (and a count)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warn(self, kind: str, message: str) -> None:
        """Log `message` unless a line of this kind went out less than `interval` ago."""
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.interval:
            self._suppressed[kind] += 1
            return
        self._last[kind] = now
        more = self._suppressed.pop(kind, 0)
        log.warning(message + (f" ({more} more like it suppressed)" if more else ""))


class AgentState:
    """The shared state of one agent process."""

    def __init__(self, runtime: Runtime, config: AgentConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.name = AGENT_NAME
        self.limits = Limits(
            max_frame=config.max_frame,
            max_header=config.max_header,
            max_buffers=config.max_buffers,
            max_elements=config.max_elements,
            max_depth=config.max_depth,
            max_message=min(config.max_message, config.max_connection_memory),
            max_streams=config.max_streams,
            max_pending=config.max_connection_memory,
        )
        # The warm buffer pool is set aside from --max-memory: what calls hold plus the
        # pool's idle buffers stays within it.
        # (`vaccel-agent` sizes the process's pool so: see `main`).
        self.memory = Budget(config.max_memory - config.pool_share(), "agent memory (--max-memory)")
        self.connections_budget = Budget(
            config.max_connections, "agent connections (--max-connections)"
        )
        self.sessions = Budget(config.max_sessions, "agent sessions (--max-sessions)")
        self.calls = Budget(config.max_calls, "agent calls in flight (--max-calls)")
        self.resources = Budget(config.max_resources, "agent resources (--max-resources)")
        self.resource_cache = ResourceCache(config.resource_cache or 0, self.memory)
        self.peers: dict[str, PeerState] = {}
        self.tenants: dict[str, TenantState] = {}
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        #: Refusals by limit name, authentication failures by reason (metrics).
        self.refusals: Counter[str] = Counter()
        self.auth_failures: Counter[str] = Counter()
        self.calls_total: Counter[tuple[str, str]] = Counter()
        #: Calls answered by (tenant, status).
        self.tenant_calls: Counter[tuple[str, str]] = Counter()
        #: Call latency by method: counts per LATENCY_BUCKETS upper bound, and the sum.
        self.latency: dict[str, list[float]] = {}
        #: Bytes received and sent by connections that have closed (live ones add theirs).
        self.bytes_in = 0
        self.bytes_out = 0
        self.draining = False
        self.serving = False
        self.warnings = RateLimitedLog()
        #: tenant -> token, when clients must authenticate (--token-file).
        self.tokens: dict[str, bytes] | None = None
        self.load_tokens()
        self.allow_cids = parse_list(config.allow_cid, "--allow-cid")
        self.allow_uids = parse_list(config.allow_uid, "--allow-uid")

    def load_tokens(self) -> int:
        """(Re)read --token-file (at start and on SIGHUP); how many tokens it holds."""
        path = self.config.token_file
        if not path:
            return 0
        try:
            with open(path, encoding="utf-8") as handle:
                tokens = load_tokens(handle.read(), path)
        except OSError as exc:
            raise ValueError(f"--token-file {path}: {exc.strerror}") from None
        if not tokens:
            raise ValueError(f"--token-file {path} holds no tenant:token line")
        self.tokens = tokens
        return len(tokens)

    def auth_failed(self, peer: str, reason: str, kind: str, cause: str = "") -> None:
        """Count and log an authentication failure or a refused peer.

        `kind` is the metric's reason label (token, unauthenticated, peer, tls); the log
        says at most one line per kind, and per `cause` where given (a TLS refusal: no
        certificate, an untrusted one, plain text, ...), every five seconds.
        """
        self.auth_failures[kind] += 1
        bucket = f"auth-{kind}-{cause}" if cause else f"auth-{kind}"
        self.warnings.warn(bucket, f"agent: refused {peer}: {reason}")

    # ------------------------------------------------------------------ peers

    def peer(self, key: str) -> PeerState:
        """The state of peer `key` (made on its first connection)."""
        peer = self.peers.get(key)
        if peer is None:
            c = self.config
            peer = PeerState(
                key,
                Budget(c.max_peer_memory, f"per-peer memory (--max-peer-memory, peer {key})"),
                Budget(
                    c.max_peer_connections,
                    f"per-peer connections (--max-peer-connections, peer {key})",
                ),
                Budget(c.max_peer_sessions, f"per-peer sessions (--max-peer-sessions, peer {key})"),
                Budget(
                    c.max_peer_calls, f"per-peer calls in flight (--max-peer-calls, peer {key})"
                ),
                Budget(
                    c.max_peer_resources, f"per-peer resources (--max-peer-resources, peer {key})"
                ),
            )
            self.peers[key] = peer
        return peer

    def peer_gone(self, peer: PeerState) -> None:
        """One connection of `peer` closed; forget the peer with its last one."""
        peer.live -= 1
        if peer.live <= 0 and peer.memory.used <= 0:
            self.peers.pop(peer.key, None)

    def tenant(self, name: str) -> TenantState:
        """The quotas of tenant `name` (none configured: no extra budget)."""
        tenant = self.tenants.get(name)
        if tenant is None:
            limits = self.config.tenants.get(name, {})
            tenant = TenantState(
                name,
                {
                    key: Budget(value, f"tenant {name}'s {key.replace('_', '-')}")
                    for key, value in limits.items()
                },
            )
            self.tenants[name] = tenant
        return tenant

    # ------------------------------------------------------------------ refusals

    def refused(self, account: Account, what: str, kind: str) -> str:
        """Count and log (rate-limited) a refusal; returns the message for the client."""
        budget = account.refusal
        name = budget.name if budget is not None else what
        self.refusals[name.split(" (")[0]] += 1
        limit = f" of {budget.limit}" if budget is not None else ""
        message = f"{what} refused: the {name} limit{limit} is reached"
        self.warnings.warn(kind, f"agent: refused {message}")
        return message

    # ------------------------------------------------------------------ measurements

    def observe(self, method: str, seconds: float) -> None:
        """One call of `method` took `seconds` (a latency histogram per method)."""
        counts = self.latency.get(method)
        if counts is None:
            counts = self.latency[method] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the last: +Inf
        counts[-1] += seconds

    def traffic(self) -> tuple[int, int]:
        """Bytes received and sent so far, live connections included."""
        received, sent = self.bytes_in, self.bytes_out
        for conn in list(self.connections):
            received += conn.bytes_in
            sent += conn.bytes_out
        return received, sent

    # ------------------------------------------------------------------ tasks

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` until it ends; shutdown cancels what is left."""
        self.tasks.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(f"agent task failed: {task.exception()!r}")

    def in_flight(self) -> int:
        """Calls being worked on, all connections together."""
        return sum(len(c.calls) for c in list(self.connections))
