"""The agent: listeners, the connections they accept, and an orderly shutdown.

TCP and unix listeners run on the main event loop (uvloop where available). AF_VSOCK
listeners run on a stdlib asyncio loop in a thread of their own, because uvloop sets
TCP_NODELAY on every stream socket it adopts and AF_VSOCK refuses that (OSError 92).
Both loops share the runtime (plugins, the bounded pool). Every task the agent starts is
tracked, so shutdown can wait for in-flight calls and then cancel what is left.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable
from typing import Any

from vaccel import log
from vaccel.protocol.address import Address
from vaccel.protocol.limits import DEFAULT_LIMITS, Budget, Limits
from vaccel.protocol.status import Status
from vaccel.runtime import Runtime

from .connection import AgentConnection
from .listeners import listen


class _LoopThread:
    """A stdlib asyncio loop in a thread (for AF_VSOCK listeners)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="vaccel-vsock", daemon=True
        )
        self.thread.start()

    def run(self, coro: Awaitable[Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class Agent:
    """Serves the vAccel API of `runtime` on every address, to many clients at once."""

    def __init__(
        self,
        runtime: Runtime,
        addresses: list[Address],
        *,
        limits: Limits = DEFAULT_LIMITS,
        max_connections: int = 4096,
        handshake_timeout: float = 10.0,
        drain_timeout: float = 10.0,
        max_memory: int | None = None,
        max_sessions: int = 65536,
    ) -> None:
        self.runtime = runtime
        self.addresses = addresses
        self.limits = limits
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.drain_timeout = drain_timeout
        #: Request buffers held at once, all connections together (default: half the RAM).
        self.budget = Budget(max_memory or default_memory_budget())
        #: What clients keep between calls: resource bytes (same limit) and sessions.
        self.resources_budget = Budget(self.budget.limit)
        self.sessions_budget = Budget(max_sessions)
        self.name = "pyvaccel-agent/0.1.0"
        self.bound: list[Address] = []
        self.connections: set[AgentConnection] = set()
        self._lock = threading.Lock()
        self._servers: list[tuple[asyncio.AbstractEventLoop, asyncio.Server]] = []
        self._vsock: _LoopThread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop: asyncio.Event | None = None

    # ------------------------------------------------------------------ bookkeeping

    def connection_opened(self, conn: AgentConnection) -> bool:
        with self._lock:
            if len(self.connections) >= self.max_connections:
                return False
            self.connections.add(conn)
            return True

    def connection_closed(self, conn: AgentConnection, cleanup: Awaitable[None]) -> None:
        with self._lock:
            self.connections.discard(conn)
        assert conn.loop is not None
        self.track(conn.loop.create_task(cleanup))  # type: ignore[arg-type]

    def track(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(f"agent task failed: {task.exception()!r}")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[Address]:
        """Bind every address; returns them as bound (port 0 resolved)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            for address in self.addresses:
                if address.scheme == "vsock" and _is_uvloop(loop):
                    if self._vsock is None:
                        self._vsock = _LoopThread()
                    server, bound = self._vsock.run(
                        listen(self._vsock.loop, address, lambda: AgentConnection(self)), 10
                    )
                    self._servers.append((self._vsock.loop, server))
                else:
                    server, bound = await listen(loop, address, lambda: AgentConnection(self))
                    self._servers.append((loop, server))
                self.bound.append(bound)
        except BaseException:
            await self.close()
            raise
        return self.bound

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        """Run until `request_stop`, then shut down in order."""
        if self._stop is None:
            await self.start()
        assert self._stop is not None
        await self._stop.wait()
        await self.close()

    def in_flight(self) -> int:
        return sum(len(c.tasks) for c in list(self.connections))

    async def close(self) -> None:
        """Stop accepting, let in-flight calls finish (bounded), say GOAWAY, close."""
        for loop, server in self._servers:
            _call(loop, server.close)
        deadline = time.monotonic() + self.drain_timeout
        while self.in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.loop is not None:
                # Calls still running past the drain timeout are cancelled; the close
                # then frees each connection's sessions in a task of its own.
                for task in list(conn.tasks.values()):
                    _call(conn.loop, task.cancel)
                _call(conn.loop, conn.goaway, Status.UNAVAILABLE, "agent is shutting down")
        # Let those cleanup tasks (freeing sessions) run to completion.
        end = time.monotonic() + 2.0
        while (self.connections or self._tasks) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        self._servers.clear()
        if self._vsock is not None:
            self._vsock.stop()
            self._vsock = None


def default_memory_budget() -> int:
    """Half of this machine's memory, for request buffers in flight."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 4 << 30


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


def _call(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Call fn on loop's thread (directly if that is this thread)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(fn, *args)
