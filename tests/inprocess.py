"""An agent in the test's own process and event loop (real sockets), to look at its state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from vaccel import Config, Runtime
from vaccel.errors import NotSupportedError
from vaccel.plugins.rpc import RpcPlugin
from vaccel.protocol.address import Address, parse_address
from vaccel.server.agent import Agent
from vaccel.server.config import AgentConfig


@contextlib.asynccontextmanager
async def running_agent(
    tmp_path: Path, plugins: str = "numpy", address: str | None = None, **settings: Any
) -> AsyncIterator[tuple[Agent, str]]:
    """An agent serving `plugins` on a unix socket (or `address`), with `settings` applied."""
    runtime = Runtime(Config(plugins, 0))
    config = AgentConfig(**settings).resolve()
    agent = Agent(runtime, config)
    where = address or f"unix://{tmp_path}/agent.sock"
    (bound,) = await agent.start([parse_address(where)])
    try:
        yield agent, str(bound)
    finally:
        await agent.close()
        runtime.close()


class ThreadAgent:
    """An agent on its own event loop in a thread of this process (fast to start; sync
    sessions reach it over a real unix socket)."""

    def __init__(self, tmp: Path, plugins: str, **settings: Any) -> None:
        import asyncio
        import threading

        self.runtime = Runtime(Config(plugins, 0, **settings.pop("config", {})))
        self.agent = Agent(self.runtime, AgentConfig(**settings).resolve())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        where = parse_address(f"unix://{tmp}/{plugins.replace(':', '-')}.sock")
        future = asyncio.run_coroutine_threadsafe(self.agent.start([where]), self.loop)
        (bound,) = future.result(10)
        self.address = str(bound)

    def stop(self) -> None:
        """Shut the agent down and end its thread."""
        import asyncio

        asyncio.run_coroutine_threadsafe(self.agent.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.runtime.close()


async def memory_client(agent: Agent, chunk: int = 1 << 20, **options: Any) -> Any:
    """An AsyncClient joined to `agent` by an in-memory pipe (no socket): pieces of at
    most `chunk` bytes."""
    from vaccel.client.asyncclient import AsyncClient
    from vaccel.protocol.address import Address
    from vaccel.transport.memory import memory_pair

    async def opener(factory: Any) -> Any:
        return memory_pair(factory, agent.protocol, chunk=chunk)[0]

    return await AsyncClient.open_with(opener, Address("memory"), **options)


class MemoryRpcPlugin(RpcPlugin):
    """The rpc plugin, its connections made over an in-memory pipe (no socket) to an
    agent of this process on the connecting event loop (one per loop, made on first use).

    Load it as `VACCEL_PLUGINS=inprocess.MemoryRpcPlugin`; VACCEL_RPC_ADDRESS must parse
    but is never dialled. The agent serves the plugins named by the config's env
    `VACCEL_TEST_MEMORY_AGENT` (default noop), with this config's exec allow-list; the
    pipe delivers in pieces of `VACCEL_TEST_MEMORY_CHUNK` bytes (default 4093: frames
    split anywhere). Only AsyncSessions: a blocking client has no loop to pipe to.
    """

    def init(self) -> None:
        super().init()
        env = self.config.env
        self.served = env.get("VACCEL_TEST_MEMORY_AGENT", "noop")
        self.chunk = int(env.get("VACCEL_TEST_MEMORY_CHUNK", "4093"))
        self.agents: dict[asyncio.AbstractEventLoop, Agent] = {}

    def agent(self) -> Agent:
        """The agent of the running loop."""
        loop = asyncio.get_running_loop()
        agent = self.agents.get(loop)
        if agent is None:
            runtime = Runtime(Config(self.served, 0, exec_allow=list(self.config.exec_allow)))
            agent = Agent(runtime, AgentConfig().resolve())
            agent.state.serving = True  # no listener: the pipe is its only way in
            self.agents[loop] = agent
        return agent

    async def _async(self, address: Address) -> Any:
        return await memory_client(self.agent(), self.chunk, keepalive=self.config.rpc_keepalive)

    def _blocking(self, address: Address) -> Any:
        raise NotSupportedError(
            message="inprocess.MemoryRpcPlugin serves AsyncSessions only (the in-memory "
            "pipe needs the caller's event loop)"
        )

    def fini(self) -> None:
        """Close the connections, then the agents' runtimes."""
        try:
            super().fini()
        finally:
            for agent in self.agents.values():
                agent.state.runtime.close()
            self.agents.clear()
