"""The parent process of `vaccel-agent --processes N` (see `workers` for the design).

It loads no plugin and serves no call. It reserves each TCP/TLS port (a bound, never
listening SO_REUSEPORT socket, so port 0 resolves once and a restarted worker finds its
port free), binds each unix and vsock listener once, starts the N workers with the
VACCEL_AGENT_WORKER variable, serves the merged metrics, restarts a worker that dies,
forwards SIGTERM, SIGINT and SIGHUP, and exits when the workers have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from typing import Any

from vaccel import log
from vaccel.protocol.address import Address
from vaccel.transport.sockets import remove_stale_unix_socket, vsock_listener

from .config import AgentConfig
from .metrics import MetricsServer
from .stats import counters_only, merge
from .workers import RESTART_DELAY, STATS_TIMEOUT, WORKER_ENV


def _reserve_tcp(address: Address) -> tuple[list[socket.socket], Address]:
    """Bound (not listening) SO_REUSEPORT sockets holding the port for the workers."""
    infos = socket.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    held: list[socket.socket] = []
    port = address.port
    seen: set[tuple[int, str]] = set()
    try:
        for family, kind, proto, _, sockaddr in infos:
            if (family, str(sockaddr[0])) in seen:
                continue
            seen.add((family, str(sockaddr[0])))
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
            port = sock.getsockname()[1]
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held, Address(address.scheme, host=address.host, port=port)


def _listen_unix(address: Address) -> socket.socket:
    remove_stale_unix_socket(address.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address.path)
    sock.listen(1024)
    return sock


def _listen_vsock(address: Address) -> tuple[socket.socket, Address]:
    sock = vsock_listener(address)
    return sock, Address("vsock", cid=address.cid, port=sock.getsockname()[1])


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = False
        self.last: dict[str, Any] | None = None
        self.lock = asyncio.Lock()

    async def stats(self) -> dict[str, Any] | None:
        """A fresh snapshot (or the last one, if the worker is slow or gone)."""
        if not self.ready or self.reader is None or self.writer is None:
            return self.last
        async with self.lock:
            try:
                self.writer.write(b"stats\n")
                line = await asyncio.wait_for(self.reader.readline(), STATS_TIMEOUT)
            except (OSError, TimeoutError, asyncio.TimeoutError):
                return self.last
            if line:
                self.last = json.loads(line)
        return self.last


class Supervisor:
    """The parent of `--processes N`: ports, workers, merged metrics, shutdown."""

    def __init__(self, config: AgentConfig, argv: list[str], addresses: list[Address]) -> None:
        self.config = config
        self.argv = argv
        self.addresses = addresses
        self.count = config.processes
        self.bound: list[Address] = []
        self.held: list[socket.socket] = []
        self.fds: dict[str, int] = {}
        self.unix_paths: list[str] = []
        self.workers = [_Worker(i) for i in range(self.count)]
        self.retired: list[dict[str, Any]] = []
        self.stopping = asyncio.Event()
        self.metrics: MetricsServer | None = None
        self.loop = asyncio.get_running_loop()

    def bind(self) -> None:
        """Reserve TCP/TLS ports; bind unix and vsock listeners once for all workers."""
        for address in self.addresses:
            if address.scheme in ("tcp", "tls"):
                held, bound = _reserve_tcp(address)
                self.held += held
            elif address.scheme == "unix":
                sock = _listen_unix(address)
                self.held.append(sock)
                self.unix_paths.append(address.path)
                bound = address
                self.fds[str(bound)] = sock.fileno()
            else:
                sock, bound = _listen_vsock(address)
                self.held.append(sock)
                self.fds[str(bound)] = sock.fileno()
            self.bound.append(bound)

    async def spawn(self, worker: _Worker) -> None:
        """Start one worker and wait until it serves (or fails to start)."""
        mine, theirs = socket.socketpair()
        spec = {"index": worker.index, "count": self.count, "control": theirs.fileno()}
        spec["fds"] = self.fds  # type: ignore[assignment]
        env = dict(os.environ, **{WORKER_ENV: json.dumps(spec)})
        argv = list(self.argv)
        for address in self.bound:  # port 0 resolved: every worker binds the same port
            argv += ["-a", str(address)]
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "vaccel.server",
                *argv,
                env=env,
                pass_fds=[theirs.fileno(), *self.fds.values()],
            )
        finally:
            theirs.close()
        worker.reader, worker.writer = await asyncio.open_connection(sock=mine, limit=64 << 20)
        line = await worker.reader.readline()
        if line.strip() != b"ready":
            code = await worker.proc.wait()
            raise RuntimeError(f"worker {worker.index} exited with status {code} before serving")
        worker.ready = True

    async def watch(self, worker: _Worker) -> None:
        """Restart `worker` whenever it dies, until the agent stops."""
        while True:
            assert worker.proc is not None
            code = await worker.proc.wait()
            worker.ready = False
            if worker.writer is not None:
                worker.writer.close()
            if worker.last is not None:
                self.retired.append(counters_only(worker.last))
                worker.last = None
            if self.stopping.is_set():
                return
            log.warning(f"agent: worker {worker.index} exited with status {code}; restarting it")
            print(f"vaccel-agent: worker {worker.index} exited ({code}); restarting", flush=True)
            await asyncio.sleep(RESTART_DELAY)
            try:
                await self.spawn(worker)
            except (OSError, RuntimeError) as exc:
                log.error(f"agent: worker {worker.index} could not be restarted: {exc}")

    async def merged(self) -> dict[str, Any]:
        """Every worker's snapshot (and the ended ones' counters), added up."""
        found = await asyncio.gather(*(w.stats() for w in self.workers))
        items = [s for s in found if s is not None] + self.retired
        if not items:
            raise RuntimeError("no worker has answered yet")
        return merge(items)

    def _scrape(self) -> dict[str, Any]:
        """Metrics thread: ask the workers through the parent's loop."""
        future = asyncio.run_coroutine_threadsafe(self.merged(), self.loop)
        return future.result(STATS_TIMEOUT * 2)

    def signal(self, signum: int) -> None:
        """SIGTERM/SIGINT: every worker drains; the parent exits after them."""
        if not self.stopping.is_set():
            self.stopping.set()
            for worker in self.workers:
                if worker.proc is not None and worker.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.send_signal(signal.SIGTERM)

    def forward(self, signum: int) -> None:
        """SIGHUP (reload the token file): every worker reloads."""
        for worker in self.workers:
            if worker.ready and worker.proc is not None and worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signum)

    async def run(self, banner: str) -> int:
        """Serve until stopped; the exit status."""
        self.bind()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.signal, sig)
        self.loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
        try:
            await asyncio.gather(*(self.spawn(w) for w in self.workers))
        except (OSError, RuntimeError) as exc:
            print(f"vaccel-agent: {exc}", file=sys.stderr, flush=True)
            self.signal(signal.SIGTERM)
            await self._reap()
            return 1
        if self.config.metrics_address:
            self.metrics = MetricsServer(self.config.metrics_address, self._scrape)
        for address in self.bound:
            print(banner.format(address=address), flush=True)
        if self.metrics is not None:
            print(f"pyvaccel agent metrics: {self.metrics.url}", flush=True)
        print(f"pyvaccel agent workers: {self.count}", flush=True)
        print("Server is running, press Ctrl + C to exit", flush=True)
        watchers = [asyncio.ensure_future(self.watch(w)) for w in self.workers]
        await self.stopping.wait()
        code = await self._reap()
        for task in watchers:
            task.cancel()
        return code

    async def _reap(self) -> int:
        """Wait for the workers (drain timeout and a margin), then kill what is left."""
        grace = self.config.drain_timeout + 5.0
        code = 0
        for worker in self.workers:
            proc = worker.proc
            if proc is None:
                continue
            try:
                status = await asyncio.wait_for(proc.wait(), grace)
            except (TimeoutError, asyncio.TimeoutError):
                proc.kill()
                status = await proc.wait()
            code = code or (0 if status in (0, -signal.SIGTERM, -signal.SIGINT) else 1)
        return code

    def close(self) -> None:
        """Free the ports and socket files."""
        if self.metrics is not None:
            self.metrics.close()
        for sock in self.held:
            sock.close()
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


async def supervise(
    config: AgentConfig, argv: list[str], addresses: list[Address], banner: str
) -> int:
    """Run the parent of `--processes N` until SIGTERM; its exit status."""
    supervisor = Supervisor(config, _without_addresses(argv), addresses)
    try:
        return await supervisor.run(banner)
    finally:
        supervisor.close()


def _without_addresses(argv: list[str]) -> list[str]:
    """The command line minus -a/--address (the workers get the bound addresses)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-a", "--address"):
            skip = True
            continue
        if arg.startswith("--address="):
            continue
        if arg.startswith("-a") and len(arg) > 2:
            continue
        out.append(arg)
    return out


__all__ = ["Supervisor", "supervise"]
