"""The agent in this process (real unix sockets, real event loop), to look at its state:
what a connection owns is freed when it goes, and the memory budget comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from vaccel import Config, Runtime
from vaccel.client.asyncclient import AsyncClient
from vaccel.protocol.address import parse_address
from vaccel.server.agent import Agent


def test_connection_close_frees_its_sessions_and_budget(tmp_path: Path) -> None:
    async def go() -> None:
        runtime = Runtime(Config(plugins="numpy", log_level=0))
        agent = Agent(runtime, [parse_address(f"unix://{tmp_path}/a.sock")], drain_timeout=1)
        (address,) = await agent.start()
        try:
            client = await AsyncClient.connect(address)
            sids = [await client.call("session.create", [0]) for _ in range(5)]
            rid = await client.call("resource.create", [1, ["blob"], [b"x" * 5000]])
            await client.call("resource.register", [sids[0], rid])
            big = np.ones(1 << 18, np.float32)
            assert (await client.call("op", [sids[1], 19, [big, big]]))[0] == 2.0
            assert set(runtime.sessions) == set(sids)
            (conn,) = agent.connections
            assert len(conn.owned.sessions) == 5 and conn.owned.resource_bytes == 5000
            assert agent.sessions_budget.used == 5 and agent.resources_budget.used == 5000
            assert agent.budget.used == 0  # the vadd was answered: its buffers given back
            await client.close()
            for _ in range(100):
                if not runtime.sessions and not agent.connections:
                    break
                await asyncio.sleep(0.01)
            assert not runtime.sessions and not agent.connections
            assert conn.owned.resource_bytes == 0 and agent.budget.used == 0
            assert agent.sessions_budget.used == 0 and agent.resources_budget.used == 0
        finally:
            await agent.close()
            runtime.close()

    asyncio.run(go())


def test_refuses_connections_over_the_limit(tmp_path: Path) -> None:
    async def go() -> None:
        runtime = Runtime(Config(plugins="noop", log_level=0))
        agent = Agent(runtime, [parse_address(f"unix://{tmp_path}/b.sock")], max_connections=1)
        (address,) = await agent.start()
        try:
            first = await AsyncClient.connect(address)
            from vaccel.errors import UnavailableError

            try:
                await AsyncClient.connect(address, timeout=5)
            except UnavailableError as exc:
                assert "at most 1 connections" in str(exc) and "RESOURCE_EXHAUSTED" in str(exc)
            else:
                raise AssertionError("a second connection was accepted")
            from vaccel.client.blocking import BlockingClient

            try:
                await asyncio.to_thread(BlockingClient, address, 5)
            except UnavailableError as exc:
                assert "at most 1 connections" in str(exc)
            else:
                raise AssertionError("a second (blocking) connection was accepted")
            assert await first.call("session.create", [0]) >= 1
            await first.close()
        finally:
            await agent.close()
            runtime.close()

    asyncio.run(go())


def test_agent_wide_session_limit(tmp_path: Path) -> None:
    from vaccel.errors import ResourceExhaustedError

    async def go() -> None:
        runtime = Runtime(Config(plugins="noop", log_level=0))
        agent = Agent(runtime, [parse_address(f"unix://{tmp_path}/c.sock")], max_sessions=3)
        (address,) = await agent.start()
        try:
            a, b = await AsyncClient.connect(address), await AsyncClient.connect(address)
            kept = [await a.call("session.create", [0]) for _ in range(2)]
            await b.call("session.create", [0])
            try:
                await b.call("session.create", [0])
            except ResourceExhaustedError as exc:
                assert "limit of 3" in str(exc)
            else:
                raise AssertionError("a fourth session was created")
            await a.call("session.destroy", [kept[0]])
            assert await b.call("session.create", [0]) > 0
            await a.close()
            await b.close()
        finally:
            await agent.close()
            runtime.close()

    asyncio.run(go())


def test_close_frees_the_sessions_of_connected_clients(tmp_path: Path) -> None:
    async def go() -> None:
        runtime = Runtime(Config(plugins="noop", log_level=0))
        agent = Agent(runtime, [parse_address(f"unix://{tmp_path}/d.sock")], drain_timeout=1)
        (address,) = await agent.start()
        client = await AsyncClient.connect(address)
        for _ in range(3):
            await client.call("session.create", [0])
        assert len(runtime.sessions) == 3
        await agent.close()  # the client is still connected
        assert not runtime.sessions and not agent.connections
        await client.close()
        runtime.close()

    asyncio.run(go())
