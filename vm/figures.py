"""vsock against TCP loopback, in the same `make test-vm` guest: latency and bandwidth ratios.

Run by vm/guest.sh inside the guest (it needs vsock loopback, CID 1). One agent (numpy
plugin) listens on vsock://ANY:0 and tcp://127.0.0.1:0. The same client code measures
both transports with the sync Session (the blocking client), and with an AsyncSession
under the stdlib loop and under uvloop:

* noop latency: the median of sequential calls;
* fpga_vadd bandwidth at 8 MiB vectors (2 Mi float32 elements): the payload bytes (two
  inputs and one output, 24 MiB) over the median call time.

Beside them are baselines without pyvaccel: a 64-byte ping-pong and the vadd call's bytes
each way, on a plain socket of each transport (sendall/recv_into against a server thread).
They give the transport's own ratio.

The guest is emulated (QEMU TCG) on a host that may be busy, so absolute times mean
little; the ratio vsock/TCP is what counts. Two things keep it steady. vm/guest.sh pins
this process and its agent to one vCPU: a wakeup across vCPUs costs anything from 0.1 to
8 ms under emulation. And both transports' connections are open at once, with the
measurements alternating between them in rounds, so a change of load hits both alike.
Each result goes to stdout as a "VMTEST-FIGURE ..." line, which vm/run.sh prints again at
the end. The exit status is 1 when a measurement fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np

from vaccel import AsyncSession, Config, Runtime, Session
from vaccel.cli.spawn import SpawnedAgent, clean_env
from vaccel.compat import run

NOOP_CALLS = 300  # sequential noop calls per transport and client
ROUNDS = 10  # the noop calls alternate between the transports in this many batches
VADD_ELEMENTS = 2 << 20  # 2 Mi float32 elements: 8 MiB a vector
VADD_CALLS = 5  # timed 8 MiB calls per transport and client (after one warm-up call)
PAYLOAD = 3 * 4 * VADD_ELEMENTS  # two inputs and one output
TRANSPORTS = ("vsock", "tcp")

#: Per transport: (median noop seconds, median 8 MiB vadd seconds).
Times = dict[str, tuple[float, float]]


# ---------------------------------------------------------------------------- plain sockets


def _receive(sock: socket.socket, into: memoryview) -> None:
    got = 0
    while got < len(into):
        n = sock.recv_into(into[got:])
        if not n:
            raise ConnectionError("peer closed")
        got += n


class RawPair:
    """A connected plain socket of one transport, answered by a server thread.

    Each exchange sends `out` bytes and receives `back` bytes. The server learns the sizes
    from an 8-byte header, then answers with that many bytes.
    """

    def __init__(self, family: int) -> None:
        listener = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_VSOCK:
            listener.bind((socket.VMADDR_CID_ANY, 0xFFFFFFFF))  # any free port
        else:
            listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        self.server = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self.server.start()
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.connect((1, port) if family == socket.AF_VSOCK else ("127.0.0.1", port))
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @staticmethod
    def _serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        listener.close()
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = memoryview(bytearray(8))
        with conn:
            while True:
                try:
                    _receive(conn, header)
                except ConnectionError:
                    return
                out = int.from_bytes(header[:4], "little")
                back = int.from_bytes(header[4:], "little")
                _receive(conn, memoryview(bytearray(out)))
                conn.sendall(bytes(back))

    def exchange(self, out: bytes, inbox: memoryview) -> float:
        """Seconds to send `out` and receive len(inbox) bytes back."""
        t0 = time.perf_counter()
        self.sock.sendall(len(out).to_bytes(4, "little") + len(inbox).to_bytes(4, "little"))
        self.sock.sendall(out)
        _receive(self.sock, inbox)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.sock.close()
        self.server.join(10)


def _raw_times() -> Times:
    """Plain sockets: 64-byte ping-pong and vadd-sized exchange, transports alternating."""
    pairs = {"vsock": RawPair(socket.AF_VSOCK), "tcp": RawPair(socket.AF_INET)}
    small, small_in = bytes(64), memoryview(bytearray(64))
    big, big_in = bytes(PAYLOAD * 2 // 3), memoryview(bytearray(PAYLOAD // 3))
    ping: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    bulk: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    try:
        for pair in pairs.values():  # warm up
            pair.exchange(small, small_in)
            pair.exchange(big, big_in)
        for _ in range(ROUNDS):
            for t, pair in pairs.items():
                ping[t] += [pair.exchange(small, small_in) for _ in range(NOOP_CALLS // ROUNDS)]
        for _ in range(VADD_CALLS):
            for t, pair in pairs.items():
                bulk[t].append(pair.exchange(big, big_in))
    finally:
        for pair in pairs.values():
            pair.close()
    return {t: (statistics.median(ping[t]), statistics.median(bulk[t])) for t in TRANSPORTS}


# ---------------------------------------------------------------------------- pyvaccel


@contextlib.contextmanager
def _runtimes(addresses: dict[str, str]) -> Iterator[dict[str, Runtime]]:
    """One vsock-plugin runtime per transport, closed at the end."""
    made = {
        t: Runtime(Config(plugins="vsock", rpc_address=a, log_level=0))
        for t, a in addresses.items()
    }
    try:
        yield made
    finally:
        for runtime in made.values():
            runtime.close()


def _sync_times(addresses: dict[str, str], a: np.ndarray[Any, Any]) -> Times:
    """Sync Sessions on both transports, measured alternately."""
    noop: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    vadd: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    with _runtimes(addresses) as runtimes, contextlib.ExitStack() as stack:
        sessions = {t: stack.enter_context(Session(runtime=runtimes[t])) for t in TRANSPORTS}
        for s in sessions.values():  # warm up, and check the answer once
            s.noop()
            assert np.array_equal(s.fpga_vadd(a, a), a + a)
        for _ in range(ROUNDS):
            for t, s in sessions.items():
                for _ in range(NOOP_CALLS // ROUNDS):
                    t0 = time.perf_counter()
                    s.noop()
                    noop[t].append(time.perf_counter() - t0)
        for _ in range(VADD_CALLS):
            for t, s in sessions.items():
                t0 = time.perf_counter()
                s.fpga_vadd(a, a)
                vadd[t].append(time.perf_counter() - t0)
    return {t: (statistics.median(noop[t]), statistics.median(vadd[t])) for t in TRANSPORTS}


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def _async_times(addresses: dict[str, str], a: np.ndarray[Any, Any]) -> Times:
    """AsyncSessions on both transports, on the running loop, measured alternately."""
    noop: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    vadd: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    with _runtimes(addresses) as runtimes:
        async with contextlib.AsyncExitStack() as stack:
            sessions = {
                t: await stack.enter_async_context(AsyncSession(runtime=runtimes[t]))
                for t in TRANSPORTS
            }
            for s in sessions.values():
                await s.noop()
                assert np.array_equal(await s.fpga_vadd(a, a), a + a)
            for _ in range(ROUNDS):
                for t, s in sessions.items():
                    for _ in range(NOOP_CALLS // ROUNDS):
                        noop[t].append(await _timed(s.noop))
            for _ in range(VADD_CALLS):
                for t, s in sessions.items():
                    vadd[t].append(await _timed(lambda s=s: s.fpga_vadd(a, a)))  # type: ignore[misc]
    return {t: (statistics.median(noop[t]), statistics.median(vadd[t])) for t in TRANSPORTS}


def _loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # no uvloop wheel on this platform
        return loops
    loops["uvloop"] = uvloop.new_event_loop
    return loops


# ---------------------------------------------------------------------------- report


def _figure(what: str, vsock: float, tcp: float, unit: str, scale: float) -> None:
    print(
        f"VMTEST-FIGURE {what}: vsock {vsock * scale:,.1f} {unit}, "
        f"TCP {tcp * scale:,.1f} {unit}, vsock/TCP {vsock / tcp:.2f}",
        flush=True,
    )


def _report(client: str, times: Times, latency: str, bandwidth: str) -> None:
    _figure(
        f"{latency}, {client} (median of {NOOP_CALLS})",
        times["vsock"][0],
        times["tcp"][0],
        "us",
        1e6,
    )
    _figure(
        f"{bandwidth}, {client} (2 in + 1 out, median of {VADD_CALLS})",
        PAYLOAD / times["vsock"][1],
        PAYLOAD / times["tcp"][1],
        "MB/s",
        1e-6,
    )


def main() -> int:
    agent = SpawnedAgent(["vsock://ANY:0", "tcp://127.0.0.1:0"], clean_env(VACCEL_PLUGINS="numpy"))
    failed = False
    try:
        port = next(a for a in agent.addresses if a.startswith("vsock")).rsplit(":", 1)[1]
        addresses = {
            "vsock": f"vsock://1:{port}",
            "tcp": next(a for a in agent.addresses if a.startswith("tcp")),
        }
        a = np.random.default_rng(0).standard_normal(VADD_ELEMENTS).astype(np.float32)
        _report("plain socket", _raw_times(), "64-byte round trip", "8 MiB vadd's bytes")
        clients: dict[str, Callable[[], Times]] = {
            "sync Session": lambda: _sync_times(addresses, a)
        }
        for name, factory in _loops().items():
            clients[f"AsyncSession {name}"] = lambda f=factory: run(  # type: ignore[misc]
                _async_times(addresses, a), loop_factory=f
            )
        for client, measure in clients.items():
            try:
                times = measure()
            except Exception as exc:  # one client failing leaves the others' figures
                print(f"VMTEST-FIGURE {client} failed: {type(exc).__name__}: {exc}", flush=True)
                failed = True
                continue
            _report(client, times, "noop latency", "8 MiB fpga_vadd bandwidth")
    except Exception as exc:
        print(f"VMTEST-FIGURE failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        status = agent.stop()
    if status != 0:
        print(f"VMTEST-FIGURE failed: the agent exited with status {status}", flush=True)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
