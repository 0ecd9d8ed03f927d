"""vsock against TCP loopback, in the same `make test-vm` guest: latency and bandwidth ratios.

Run by vm/guest.sh inside the guest (it needs vsock loopback, CID 1). One agent (numpy
plugin) listens on vsock://ANY:0 and tcp://127.0.0.1:0; the same client code measures
both transports, alternating, with the sync Session (the blocking client) and with an
AsyncSession under the stdlib loop and under uvloop:

* noop latency: the median of sequential calls;
* fpga_vadd bandwidth at 8 MiB vectors (2 Mi float32 elements): payload bytes (two inputs
  and one output, 24 MiB) over the median call time; beside it, the same bytes sent and
  received on a plain socket of each transport (sendall/recv_into), the transport's own
  ratio; likewise a 64-byte ping-pong beside the noop latency.

The guest is emulated (QEMU TCG), so absolute times mean little; the ratios vsock/TCP do.
Each result goes to stdout as a "VMTEST-FIGURE ..." line, which vm/run.sh prints again
at the end. Exit status 1 when a measurement fails.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from vaccel import AsyncSession, Config, Runtime, Session
from vaccel.cli.spawn import SpawnedAgent, clean_env
from vaccel.compat import run

NOOP_CALLS = 300  # sequential noop calls per transport and client
VADD_ELEMENTS = 2 << 20  # 2 Mi float32 elements: 8 MiB a vector
VADD_CALLS = 5  # timed 8 MiB calls per transport and client (after one warm-up call)
PAYLOAD = 3 * 4 * VADD_ELEMENTS  # two inputs and one output
KNOWN = "issue 13 deliverable 2: uvloop's sock_connect cannot take an AF_VSOCK address"


def _raw_time(family: int, address: tuple[Any, ...], out: int, back: int, count: int) -> float:
    """Median round trip of `out` bytes sent and `back` bytes received on a plain socket.

    The baseline for the figures (no pyvaccel): what the transport itself gives, with a
    server thread of this process doing sendall/recv_into.
    """
    request, reply = bytearray(out), bytearray(back)
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)
    bound = listener.getsockname()

    def receive(sock: socket.socket, into: memoryview) -> None:
        got = 0
        while got < len(into):
            n = sock.recv_into(into[got:])
            if not n:
                raise ConnectionError("peer closed")
            got += n

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            inbox = memoryview(bytearray(out))
            for _ in range(count + 1):
                receive(conn, inbox)
                conn.sendall(reply)

    server = threading.Thread(target=serve)
    server.start()
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect((1, bound[1]) if family == socket.AF_VSOCK else bound)
    if family == socket.AF_INET:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inbox = memoryview(bytearray(back))
    samples = []
    with client, listener:
        for _ in range(count + 1):  # the first one warms up
            t0 = time.perf_counter()
            client.sendall(request)
            receive(client, inbox)
            samples.append(time.perf_counter() - t0)
        server.join()
    return statistics.median(samples[1:])


def _loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # no uvloop wheel on this platform
        return loops
    loops["uvloop"] = uvloop.new_event_loop
    return loops


def _sync_times(address: str, a: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Median noop latency and median 8 MiB vadd time, sync Session."""
    rt = Runtime(Config(plugins="vsock", rpc_address=address, log_level=0))
    try:
        with Session(runtime=rt) as s:
            s.noop()
            noop = []
            for _ in range(NOOP_CALLS):
                t0 = time.perf_counter()
                s.noop()
                noop.append(time.perf_counter() - t0)
            s.fpga_vadd(a, a)
            vadd = []
            for _ in range(VADD_CALLS):
                t0 = time.perf_counter()
                out = s.fpga_vadd(a, a)
                vadd.append(time.perf_counter() - t0)
            assert np.array_equal(out, a + a)
    finally:
        rt.close()
    return statistics.median(noop), statistics.median(vadd)


async def _timed(fn: Callable[[], Awaitable[Any]], count: int) -> float:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def _async_times(address: str, a: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Median noop latency and median 8 MiB vadd time, AsyncSession on the running loop."""
    rt = Runtime(Config(plugins="vsock", rpc_address=address, log_level=0))
    try:
        async with AsyncSession(runtime=rt) as s:
            await s.noop()
            noop = await _timed(s.noop, NOOP_CALLS)
            out = await s.fpga_vadd(a, a)
            assert np.array_equal(out, a + a)
            vadd = await _timed(lambda: s.fpga_vadd(a, a), VADD_CALLS)
    finally:
        rt.close()
    return noop, vadd


def _run_async(
    factory: Callable[[], asyncio.AbstractEventLoop], a: np.ndarray[Any, Any], address: str
) -> tuple[float, float]:
    return run(_async_times(address, a), loop_factory=factory)


def _figure(what: str, vsock: float, tcp: float, unit: str, scale: float) -> None:
    print(
        f"VMTEST-FIGURE {what}: vsock {vsock * scale:,.1f} {unit}, "
        f"TCP {tcp * scale:,.1f} {unit}, vsock/TCP {vsock / tcp:.2f}",
        flush=True,
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
        clients: dict[str, Callable[[str], tuple[float, float]]] = {
            "sync Session": functools.partial(_sync_times, a=a)
        }
        for name, factory in _loops().items():
            clients[f"AsyncSession {name}"] = functools.partial(_run_async, factory, a)
        # Plain sockets first: 64-byte ping-pong, then the vadd call's bytes each way.
        any_vsock, any_tcp = (socket.VMADDR_CID_ANY, 0xFFFFFFFF), ("127.0.0.1", 0)
        _figure(
            f"64-byte round trip, plain socket (median of {NOOP_CALLS})",
            _raw_time(socket.AF_VSOCK, any_vsock, 64, 64, NOOP_CALLS),
            _raw_time(socket.AF_INET, any_tcp, 64, 64, NOOP_CALLS),
            "us",
            1e6,
        )
        big = (PAYLOAD * 2 // 3, PAYLOAD // 3, VADD_CALLS)
        _figure(
            f"8 MiB vadd-sized transfer, plain socket (median of {VADD_CALLS})",
            PAYLOAD / _raw_time(socket.AF_VSOCK, any_vsock, *big),
            PAYLOAD / _raw_time(socket.AF_INET, any_tcp, *big),
            "MB/s",
            1e-6,
        )
        for client, measure in clients.items():
            try:
                times = {transport: measure(address) for transport, address in addresses.items()}
            except TypeError as exc:
                if client != "AsyncSession uvloop":
                    raise
                # The known bug the uvloop tests of tests/test_vsock.py expect (xfail).
                print(f"VMTEST-FIGURE {client}: not measured, known bug: {exc} ({KNOWN})")
                continue
            except Exception as exc:  # one client failing leaves the others' figures
                print(f"VMTEST-FIGURE {client} failed: {type(exc).__name__}: {exc}", flush=True)
                failed = True
                continue
            _figure(
                f"noop latency, {client} (median of {NOOP_CALLS})",
                times["vsock"][0],
                times["tcp"][0],
                "us",
                1e6,
            )
            _figure(
                f"8 MiB fpga_vadd bandwidth, {client} (2 in + 1 out, median of {VADD_CALLS})",
                PAYLOAD / times["vsock"][1],
                PAYLOAD / times["tcp"][1],
                "MB/s",
                1e-6,
            )
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
