"""`vaccel-agent --processes N`: N worker processes serving the same addresses.

The parent process (`supervisor.supervise`) loads no plugin and serves no call. It reserves each
TCP/TLS port (a bound, never listening socket with SO_REUSEPORT, so port 0 resolves
once and a restarted worker finds its port free), binds each unix and vsock listener
once, and starts N workers: `vaccel-agent` again, with the same arguments, told by
the VACCEL_AGENT_WORKER variable which worker it is. Every worker binds its own
SO_REUSEPORT socket on each TCP/TLS port, so the kernel spreads new connections over
the workers, and accepts on the inherited unix and vsock listeners. A connection (and
so its sessions and resources) stays in the worker that accepted it.

Accounting: each worker gets an equal share of every agent-wide and per-peer budget
(memory, connections, sessions, calls in flight, resources; the shares add up to the
configured limit exactly). The limits keep their guarantee (the workers together never
hold more than the agent may) with nothing shared between processes on the hot path:
no lock and no shared counter per call. The price is fragmentation: one worker refuses
when its share is used up even if another has room, and one connection can use at
most 1/N of the agent's budget. SO_REUSEPORT spreads connections evenly by their
address hash, so with many connections the shares fill evenly; an operator whose
single clients need more runs fewer processes. Per-connection limits are unchanged
(capped at a worker's per-peer share).

Metrics: the parent serves `--metrics-address` itself. At each scrape it asks every
worker for its `stats.snapshot` over a control socket (a thread in the worker answers,
off the worker's event loop) and adds them up (`stats.merge`); a worker that ended
leaves its counters behind, so merged counters never go down. The parent restarts a
worker that dies, forwards SIGTERM and SIGINT to all of them (each drains) and SIGHUP
(each reloads), and exits when they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import threading
from typing import Any

from vaccel.buffers import POOL
from vaccel.protocol.address import Address
from vaccel.runtime import Runtime
from vaccel.transport.fdtransport import SocketServer

from .agent import Agent
from .config import AgentConfig
from .stats import snapshot

#: The variable that makes `vaccel-agent` a worker: JSON {index, count, control, fds}.
WORKER_ENV = "VACCEL_AGENT_WORKER"
#: Budgets shared out between the workers (AgentConfig attributes).
SHARED = (
    "max_memory",
    "max_connections",
    "max_sessions",
    "max_calls",
    "max_resources",
    "max_peer_memory",
    "max_peer_connections",
    "max_peer_sessions",
    "max_peer_calls",
    "max_peer_resources",
    "resource_cache",
    "buffer_pool",
)
#: Seconds the parent waits for a worker's snapshot before using its last one.
STATS_TIMEOUT = 2.0
#: Seconds between restarts of a worker that keeps dying.
RESTART_DELAY = 1.0


def share(total: int, index: int, count: int) -> int:
    """Worker `index`'s share of `total`: the shares of all `count` workers add up to it."""
    return max(1, total // count + (1 if index < total % count else 0))


def worker_config(config: AgentConfig, index: int, count: int) -> AgentConfig:
    """The settings of one worker: its share of every agent-wide and per-peer budget."""
    mine = dataclasses.replace(config, metrics_address=None)
    for name in SHARED:
        setattr(mine, name, share(getattr(config, name), index, count))
    mine.max_connection_memory = min(mine.max_connection_memory, mine.max_peer_memory)
    mine.max_connection_sessions = min(mine.max_connection_sessions, mine.max_peer_sessions)
    return mine


# ---------------------------------------------------------------------- the worker side


@dataclasses.dataclass
class WorkerSpec:
    """What the parent tells a worker (through VACCEL_AGENT_WORKER)."""

    index: int
    count: int
    control: int
    #: Inherited listening sockets of unix and vsock addresses, by address.
    fds: dict[str, int]

    @classmethod
    def from_env(cls) -> WorkerSpec | None:
        """This process's worker settings; None in a plain agent or the parent."""
        raw = os.environ.pop(WORKER_ENV, None)
        if not raw:
            return None
        data = json.loads(raw)
        return cls(int(data["index"]), int(data["count"]), int(data["control"]), data["fds"])


class WorkerAgent(Agent):
    """One worker of `--processes N`: its share of the budgets, listeners shared."""

    def __init__(self, runtime: Runtime, config: AgentConfig, spec: WorkerSpec) -> None:
        super().__init__(runtime, worker_config(config, spec.index, spec.count))
        POOL.limit = self.config.pool_share()
        self.spec = spec
        self.control = socket.socket(fileno=spec.control)

    async def listen(self, address: Address, ssl_context: Any) -> tuple[Any, Address]:
        """TCP/TLS: a SO_REUSEPORT socket of this worker; unix/vsock: the inherited one."""
        loop = asyncio.get_running_loop()
        if address.scheme in ("tcp", "tls"):
            tls = address.scheme == "tls" and ssl_context is not None
            server = await loop.create_server(  # tls: the agent runs the handshake itself
                self.tls_protocol(ssl_context) if tls else self.protocol,
                address.host,
                address.port,
                reuse_address=True,
                reuse_port=True,
                backlog=1024,
            )
            return server, address
        sock = socket.socket(fileno=self.spec.fds[str(address)])
        sock.setblocking(False)
        if address.scheme == "unix":
            return await loop.create_unix_server(self.protocol, sock=sock, backlog=1024), address
        return SocketServer(loop, sock, self.protocol), address

    async def start(self, addresses: list[Address]) -> list[Address]:
        """Serve, then tell the parent (and answer its requests for stats from a thread)."""
        bound = await super().start(addresses)
        self.control.sendall(b"ready\n")
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=self._answer_parent, args=(loop,), name="vaccel-worker-control", daemon=True
        )
        thread.start()
        return bound

    def _answer_parent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Control thread: a snapshot per request; the parent gone means stop."""
        with self.control.makefile("rwb") as stream:
            for line in stream:
                if line.strip() == b"stats":
                    stream.write(json.dumps(snapshot(self.state)).encode() + b"\n")
                    stream.flush()
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(self.request_stop)


__all__ = [
    "RESTART_DELAY",
    "STATS_TIMEOUT",
    "WORKER_ENV",
    "WorkerAgent",
    "WorkerSpec",
    "share",
    "worker_config",
]
