"""The protocol end to end without sockets: an AsyncClient and the agent of this process
joined by an in-memory pipe (`vaccel.transport.memory`). Frames arrive split at every
point (pieces of a few bytes), many calls of mixed sizes are in flight at once with
cancellations, flow control pauses the writer, and every answer is checked."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inprocess import memory_client, running_agent

from vaccel.client.asyncclient import AsyncClient
from vaccel.enums import OpType
from vaccel.errors import (
    BadArgumentError,
    ConnectionLostError,
    DeadlineExceededError,
    NotFoundError,
)
from vaccel.protocol.codec import INLINE_MAX

VADD = int(OpType.FPGA_VECTORADD)


async def _vadd(client: AsyncClient, sid: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    out = await client.call("op", [sid, VADD, [a, b]])
    np.testing.assert_array_equal(out, a + b)


@pytest.mark.asyncio
@pytest.mark.parametrize("chunk", [3, 4093, 1 << 20])
async def test_mixed_calls_with_cancellations_over_a_split_stream(
    tmp_path: Path, chunk: int
) -> None:
    """60 vadds of sizes on both sides of the inline limit (small ones in 3-byte pieces),
    a third cancelled at random moments, every completed answer right, and the
    connection still good after."""
    sizes = [1, 7, INLINE_MAX // 4 - 1, INLINE_MAX // 4 + 1, 100_000]
    if chunk < 16:  # a piece per loop iteration: keep the bytes few
        sizes = [1, 2, 7, 100, 1000]
    async with running_agent(tmp_path) as (agent, _):
        client = await memory_client(agent, chunk=chunk)
        sid = await client.call("session.create", [0])
        rnd = random.Random(chunk)
        tasks = [
            asyncio.ensure_future(_vadd(client, sid, sizes[i % len(sizes)] * (1 + i % 3), i))
            for i in range(60)
        ]
        for task in rnd.sample(tasks, 20):
            await asyncio.sleep(rnd.random() * 0.002)
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if not isinstance(r, (type(None), asyncio.CancelledError))]
        assert not errors, errors
        assert sum(r is None for r in results) >= 40
        await _vadd(client, sid, 12345, 99)
        assert len(agent.connections) == 1
        (conn,) = agent.connections
        for _ in range(200):  # cancelled calls are let go by the agent too
            if not conn.calls:
                break
            await asyncio.sleep(0.01)
        assert not conn.calls
        await client.close()


@pytest.mark.asyncio
async def test_large_messages_both_ways_pause_and_resume_the_writer(tmp_path: Path) -> None:
    """8 MiB arguments and results (over the pipe's high-water mark) in flight with small
    ones: flow control engages and nothing is lost or reordered within a message."""
    async with running_agent(tmp_path) as (agent, _):
        client = await memory_client(agent, chunk=64 * 1024)
        sid = await client.call("session.create", [0])
        sizes = [2 << 20, 3, 2 << 20, 1000, 2 << 20 - 1]
        await asyncio.gather(*(_vadd(client, sid, n, i) for i, n in enumerate(sizes * 2)))
        (conn,) = agent.connections
        assert conn.link is not None and client._link.transport is not None
        assert client._link.transport.pauses > 0 and conn.link.transport.pauses > 0
        await client.close()


@pytest.mark.asyncio
async def test_errors_and_goodbye_travel_the_pipe(tmp_path: Path) -> None:
    """Bad input gets its status over the pipe; closing the agent side ends the client's
    calls with ConnectionLostError and frees what the connection owned."""
    async with running_agent(tmp_path) as (agent, _):
        client = await memory_client(agent, chunk=5)
        with pytest.raises(NotFoundError, match="session 424242"):
            await client.call("op", [424242, VADD, [np.ones(3, np.float32)] * 2])
        sid = await client.call("session.create", [0])
        with pytest.raises(BadArgumentError):
            await client.call("op", [sid, VADD, [np.ones(3, np.float32), "x"]])
        assert agent.state.sessions.used == 1
        (conn,) = agent.connections
        slow: Any = asyncio.ensure_future(_vadd(client, sid, 3 << 20, 1))
        await asyncio.sleep(0)
        assert conn.link is not None
        conn.link.close()
        with pytest.raises(ConnectionLostError):
            await slow
        for _ in range(200):
            if agent.state.sessions.used == 0 and not agent.connections:
                break
            await asyncio.sleep(0.01)
        assert agent.state.sessions.used == 0 and not agent.connections
        assert agent.state.memory.used == 0


@pytest.mark.asyncio
async def test_calls_wait_while_the_agent_takes_nothing(tmp_path: Path) -> None:
    """The agent stops reading: the client's writer pauses, and new calls wait for it
    instead of piling their bytes up in the client (a deadline still ends the wait);
    once the agent reads again, every call completes with the right answer."""
    async with running_agent(tmp_path) as (agent, _):
        client = await memory_client(agent, chunk=64 * 1024)
        sid = await client.call("session.create", [0])
        (conn,) = agent.connections
        assert conn.link is not None
        conn.link.pause_reading()
        calls = [asyncio.ensure_future(_vadd(client, sid, 15_000, i)) for i in range(300)]
        for _ in range(20):
            await asyncio.sleep(0)
        sent = client._link.transport.get_write_buffer_size()
        assert 2 << 20 <= sent < 4 << 20  # the high-water mark, and a little over: not 36 MB
        assert client._h.resumed is not None
        with pytest.raises(DeadlineExceededError, match="could not be sent within"):
            await client.call("session.create", [0], timeout=0.05)
        conn.link.resume_reading()
        await asyncio.wait_for(asyncio.gather(*calls), 30)
        await client.close()
