"""The agent in this process (real unix sockets, real event loop), to look at its state:
what a connection owns is freed when it goes, and its budgets come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from inprocess import running_agent

from vaccel.client.asyncclient import AsyncClient
from vaccel.client.blocking import BlockingClient
from vaccel.enums import OpType
from vaccel.errors import ResourceExhaustedError, UnavailableError


async def _until(check: object, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_connection_close_frees_its_sessions_and_budget(tmp_path: Path) -> None:
    async with running_agent(tmp_path, drain_timeout=1) as (agent, address):
        state = agent.state
        client = await AsyncClient.connect(address)
        sids = [await client.call("session.create", [0]) for _ in range(5)]
        rid = await client.call("resource.create", [1, ["blob"], [b"x" * 5000]])
        await client.call("resource.register", [sids[0], rid])
        big = np.ones(1 << 18, np.float32)
        assert (await client.call("op", [sids[1], int(OpType.FPGA_VECTORADD), [big, big]]))[0] == 2
        runtime = state.runtime
        assert {s.id for s in runtime.closeables} == set(sids)
        (conn,) = agent.connections
        assert conn.owned is not None and len(conn.owned.sessions) == 5
        assert state.sessions.used == 5 and state.resources.used == 1
        # Only the resource (and the receive buffer it needed) is held: the vadd is answered.
        assert 5000 <= state.memory.used < 5000 + 1024 + 300_000
        await client.close()
        await _until(lambda: not runtime.closeables and not agent.connections)
        assert not list(runtime.closeables) and not agent.connections
        await _until(lambda: state.memory.used == 0)
        assert state.memory.used == 0 and state.sessions.used == 0 and state.resources.used == 0
        assert state.calls.used == 0 and state.connections_budget.used == 0


@pytest.mark.asyncio
async def test_refuses_connections_over_the_limit(tmp_path: Path) -> None:
    async with running_agent(tmp_path, "noop", max_connections=1) as (_, address):
        first = await AsyncClient.connect(address)
        with pytest.raises(UnavailableError, match="connections.*limit of 1") as info:
            await AsyncClient.connect(address, timeout=5)
        assert "RESOURCE_EXHAUSTED" in str(info.value)
        with pytest.raises(UnavailableError, match="limit of 1"):
            await asyncio.to_thread(BlockingClient, address, 5)
        assert await first.call("session.create", [0]) >= 1
        await first.close()


@pytest.mark.asyncio
async def test_agent_wide_session_limit(tmp_path: Path) -> None:
    async with running_agent(tmp_path, "noop", max_sessions=3, max_peer_sessions=10) as (
        _,
        address,
    ):
        a, b = await AsyncClient.connect(address), await AsyncClient.connect(address)
        kept = [await a.call("session.create", [0]) for _ in range(2)]
        await b.call("session.create", [0])
        with pytest.raises(ResourceExhaustedError, match=r"agent sessions \(--max-sessions\)"):
            await b.call("session.create", [0])
        await a.call("session.destroy", [kept[0]])
        assert await b.call("session.create", [0]) > 0
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_close_frees_the_sessions_of_connected_clients(tmp_path: Path) -> None:
    async with running_agent(tmp_path, "noop", drain_timeout=1) as (agent, address):
        client = await AsyncClient.connect(address)
        for _ in range(3):
            await client.call("session.create", [0])
        runtime = agent.state.runtime
        assert len(runtime.closeables) == 3
        await agent.close()  # the client is still connected
        assert not list(runtime.closeables) and not agent.connections
        await client.close()


@pytest.mark.asyncio
async def test_a_client_killed_mid_transfer_gives_its_budget_back(tmp_path: Path) -> None:
    from vaccel.protocol.connection import Connection

    async with running_agent(tmp_path, address="tcp://127.0.0.1:0") as (agent, address):
        state = agent.state
        host, port = address[len("tcp://") :].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = Connection(client=True)
        writer.write(conn.hello())
        await reader.read(4096)  # the agent's HELLO
        big = np.ones(2 << 20, np.float32)  # 8 MiB each way
        _, frames = conn.request("op", [1, int(OpType.FPGA_VECTORADD), [big, big]])
        wire = b"".join(bytes(c) for f in frames for c in f)
        writer.write(wire[: len(wire) // 2])  # half of it, then the client dies
        await writer.drain()
        await _until(lambda: state.memory.used > 8 << 20)
        assert state.memory.used > 8 << 20  # the half-received message is charged
        writer.transport.abort()
        await _until(lambda: state.memory.used == 0 and not agent.connections)
        assert state.memory.used == 0 and not agent.connections


@pytest.mark.asyncio
async def test_a_new_session_on_a_connection_dying_underneath_retries_once(
    tmp_path: Path,
) -> None:
    """The agent drops a kept connection just as a new session is created on it: the
    create is lost with it, and the rpc plugin retries once on a fresh connection."""
    from vaccel import AsyncSession, Config, Runtime

    async with running_agent(tmp_path, drain_timeout=1) as (agent, address):
        runtime = Runtime(Config("rpc", 0, rpc_address=address))
        try:
            async with AsyncSession(runtime=runtime) as first:
                (conn,) = agent.connections
                assert conn.link is not None
                conn.link.transport.abort()  # the client has not heard it yet
                async with AsyncSession(runtime=runtime) as second:
                    assert second.remote_id > first.remote_id
                    assert await second.fpga_vadd([1.0], [2.0]) == [3.0]
                assert len(agent.connections) == 1 and next(iter(agent.connections)) is not conn
        finally:
            runtime.close()


@pytest.mark.asyncio
async def test_protocol_limits_are_settings(tmp_path: Path) -> None:
    """--max-elements, --max-depth, --max-buffers and --max-header take effect, each
    refusal naming its limit; the connection stays usable after the per-call ones."""
    from vaccel.errors import BadArgumentError

    settings = {"max_elements": 100, "max_depth": 4, "max_buffers": 2, "max_header": 64 << 10}
    async with running_agent(tmp_path, **settings) as (_, address):
        client = await AsyncClient.connect(address)
        sid = await client.call("session.create", [0])
        vadd = int(OpType.FPGA_VECTORADD)
        too_many = r"too large to decode: 200 exceeds .*\(100\)"
        with pytest.raises(ResourceExhaustedError, match=too_many):
            await client.call("op", [sid, vadd, [[1.0] * 200, [1.0] * 200]])
        with pytest.raises(BadArgumentError, match="deeper than 4 levels"):
            await client.call("op", [sid, vadd, [[[[[[1.0]]]]], [1.0]]])
        three = [np.ones(20_000, np.float32)] * 3  # out of band: three buffers
        with pytest.raises(ResourceExhaustedError, match="3 buffers; the limit is 2"):
            await client.call("op", [sid, int(OpType.EXEC), ["m", "f", three, []]])
        assert await client.call("op", [sid, vadd, [[1.0], [2.0]]]) is not None
        with pytest.raises(ResourceExhaustedError, match="exceeds the peer's 65536-byte limit"):
            await client.call("op", [sid, vadd, [["x" * 70_000], [1.0]]])  # announced in HELLO
        await client.close()


@pytest.mark.asyncio
async def test_large_results_return_their_pooled_buffers_at_once(tmp_path: Path) -> None:
    """A large call's buffers (its request data, its result) go back to the warm pool as
    soon as it is answered, with the garbage collector off: nothing holds them in a
    reference cycle, so steady-state calls reuse warm memory instead of fresh pages."""
    import gc

    from vaccel.buffers import POOL

    async with running_agent(tmp_path) as (_, address):
        client = await AsyncClient.connect(address)
        sid = await client.call("session.create", [0])
        a = np.ones(1 << 20, np.float32)  # 4 MiB each way: pooled, and run in the pool
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                out = await client.call("op", [sid, int(OpType.FPGA_VECTORADD), [a, a]])
                del out
            allocated = POOL.allocated
            for _ in range(10):
                out = await client.call("op", [sid, int(OpType.FPGA_VECTORADD), [a, a]])
                assert out[0] == 2.0
                del out
            assert POOL.allocated == allocated, "buffers were not returned to the pool"
        finally:
            gc.enable()
        await client.close()
