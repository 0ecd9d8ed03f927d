"""The loop-driven socket transport that carries AF_VSOCK (uvloop's own transports cannot),
tested on the host over a unix socket: the same `SocketServer`/`SocketTransport` code, a
real agent in this process, many calls of mixed sizes overlapping on one connection in
both directions, cancellations, and large messages that fill the socket buffers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from vaccel import Config, OpType, Runtime
from vaccel.client.asyncclient import AsyncClient
from vaccel.protocol.address import Address
from vaccel.server.agent import Agent
from vaccel.server.config import AgentConfig
from vaccel.transport.fdtransport import SocketServer, SocketTransport

VADD = int(OpType.FPGA_VECTORADD)
EXEC = int(OpType.EXEC)


@pytest_asyncio.fixture
async def fd_agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, str]]:
    """An agent whose unix listener is served by SocketServer (as its vsock ones are)."""
    runtime = Runtime(Config("numpy", 0, exec_allow=["time:sleep"]))
    agent = Agent(runtime, AgentConfig().resolve())
    await agent.start([])
    path = str(tmp_path / "fd.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.setblocking(False)
    server = SocketServer(asyncio.get_running_loop(), listener, agent.protocol)
    try:
        yield agent, path
    finally:
        server.close()
        await agent.close()
        runtime.close()


async def _client(path: str) -> AsyncClient:
    loop = asyncio.get_running_loop()

    async def opener(factory: Any) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, path)
        protocol = factory()
        SocketTransport(loop, sock, protocol)
        await asyncio.sleep(0)  # connection_made runs on the next turn
        return protocol

    return await AsyncClient.open_with(opener, Address("unix", path=path))


async def _vadd(client: AsyncClient, sid: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    np.testing.assert_array_equal(await client.call("op", [sid, VADD, [a, b]]), a + b)


@pytest.mark.asyncio
@pytest.mark.both_loops
async def test_calls_overlap_on_one_connection(fd_agent: tuple[Agent, str]) -> None:
    """Four 0.3 s sleeps in flight at once take about 0.3 s, not 1.2 s."""
    _, path = fd_agent
    client = await _client(path)
    sid = await client.call("session.create", [0])
    start = time.monotonic()
    sleeps = [client.call("op", [sid, EXEC, ["time", "sleep", [0.3], [None]]]) for _ in range(4)]
    assert await asyncio.gather(*sleeps) == [[None]] * 4
    assert time.monotonic() - start < 0.9
    await client.close()


@pytest.mark.asyncio
@pytest.mark.both_loops
async def test_mixed_sizes_with_cancellations(fd_agent: tuple[Agent, str]) -> None:
    """60 vadds from 1 element to 4 Mi (16 MiB each way, past the socket buffers), a
    third cancelled while in flight; every answer right, and the connection still good."""
    agent, path = fd_agent
    client = await _client(path)
    sid = await client.call("session.create", [0])
    sizes = [1, 1000, 16_385, 300_000, 4 << 20]
    tasks = [
        asyncio.ensure_future(_vadd(client, sid, sizes[i % len(sizes)], i)) for i in range(60)
    ]
    for task in tasks[::3]:
        await asyncio.sleep(0.001)
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results
    await _vadd(client, sid, 12345, 1)
    await client.close()
    for _ in range(200):
        if not agent.connections and agent.state.memory.used == 0:
            break
        await asyncio.sleep(0.01)
    assert not agent.connections and agent.state.memory.used == 0
