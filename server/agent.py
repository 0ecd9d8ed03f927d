"""The agent: listeners, a sweeper that closes what stalls, and an orderly shutdown.

Every listener (TCP, TLS, unix, AF_VSOCK) runs on one event loop, uvloop where it is
installed: AF_VSOCK goes through the transport layer's loop-driven socket transport.
The sweeper visits every connection once a second for its timeouts. Shutdown stops
accepting, lets calls in flight finish for up to `--drain-timeout` seconds, cancels
what is left, says GOAWAY, frees every session, and returns (the process exits even if
plugin work is stuck in a pool thread: see `main`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from vaccel import log
from vaccel.protocol.address import Address
from vaccel.protocol.status import Status
from vaccel.runtime import Runtime
from vaccel.transport.adapter import Link
from vaccel.transport.sockets import listen

from .config import AgentConfig
from .handler import AgentConnection
from .metrics import MetricsServer, serve_agent_metrics
from .security import TlsHandshake, server_ssl_context, unix_socket_permissions
from .state import AgentState


class Agent:
    """Serves the vAccel API of `runtime` on every address, to many clients at once."""

    def __init__(self, runtime: Runtime, config: AgentConfig) -> None:
        self.state = AgentState(runtime, config)
        self.config = config
        self.bound: list[Address] = []
        self._servers: list[Any] = []
        self._unix_paths: list[str] = []
        self._stop: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.metrics: MetricsServer | None = None

    @property
    def connections(self) -> set[Any]:
        """The live connections."""
        return self.state.connections

    def protocol(self) -> Link:
        """A new connection's protocol (what a listener makes per accepted socket)."""
        return Link(AgentConnection(self.state))

    def tls_protocol(self, context: ssl.SSLContext) -> Callable[[], asyncio.BaseProtocol]:
        """A tls:// listener's factory: the agent runs each handshake itself, so that a
        refused one is logged and counted (`security.TlsHandshake`), then the
        connection's protocol takes over. The listener itself is plain TCP."""
        return lambda: TlsHandshake(context, self.protocol, self.state)

    async def listen(self, address: Address, ssl_context: Any) -> tuple[Any, Address]:
        """Serve one address (a worker of `--processes` shares its listeners instead)."""
        if address.scheme == "tls" and ssl_context is not None:
            tcp = Address("tcp", host=address.host, port=address.port)
            server, bound = await listen(tcp, self.tls_protocol(ssl_context))
            return server, Address("tls", host=bound.host, port=bound.port)
        return await listen(address, self.protocol, ssl_context)

    async def start(self, addresses: list[Address]) -> list[Address]:
        """Bind every address; returns them as bound (port 0 resolved)."""
        self._stop = asyncio.Event()
        ssl_context = None
        if any(a.scheme == "tls" for a in addresses):
            ssl_context = server_ssl_context(self.config)
        try:
            if self.config.metrics_address:
                self.metrics = serve_agent_metrics(self.config.metrics_address, self.state)
            for address in addresses:
                server, bound = await self.listen(address, ssl_context)
                self._servers.append(server)
                if address.scheme == "unix":
                    self._unix_paths.append(address.path)
                    unix_socket_permissions(address.path, self.config)
                self.bound.append(bound)
        except BaseException:
            await self.close()
            raise
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._warn_if_open(addresses)
        self.state.serving = True
        return self.bound

    def _warn_if_open(self, addresses: list[Address]) -> None:
        """Anyone who reaches a plain TCP port off loopback can use the accelerator: say so."""
        if self.state.tokens is not None:
            return
        for address in addresses:
            if address.scheme == "tcp" and not _loopback(address.host):
                message = (
                    f"vaccel-agent: warning: {address} accepts anyone who can reach it "
                    "(no --token-file, no TLS): see the README's Security section"
                )
                log.warning(message)
                print(message, file=sys.stderr, flush=True)

    def reload(self) -> None:
        """SIGHUP: re-read --token-file (a bad file keeps the old tokens)."""
        try:
            count = self.state.load_tokens()
        except ValueError as exc:
            log.error(f"agent: kept the old tokens: {exc}")
            return
        log.info(f"agent: reloaded {count} tokens")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.state.connections):
                conn.sweep(now)

    def request_stop(self) -> None:
        """Begin an orderly shutdown (SIGTERM, SIGINT)."""
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        """Run until `request_stop`, then shut down in order."""
        assert self._stop is not None, "start() first"
        await self._stop.wait()
        await self.close()

    async def close(self) -> None:
        """Stop accepting, let in-flight calls finish (bounded), say GOAWAY, close."""
        state = self.state
        state.draining = True
        for server in self._servers:
            server.close()
        deadline = time.monotonic() + self.config.drain_timeout
        while state.in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if state.in_flight():
            log.warning(
                f"agent: {state.in_flight()} calls still running after the "
                f"{self.config.drain_timeout:g} s drain timeout; cancelling them"
            )
        for conn in list(state.connections):
            conn.close(Status.UNAVAILABLE, "agent is shutting down")
        # Let the connections close and free their sessions (bounded).
        end = time.monotonic() + 2.0
        while (state.connections or state.tasks) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        for task in list(state.tasks):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._servers.clear()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unix_paths.clear()
        if self.metrics is not None:
            self.metrics.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
