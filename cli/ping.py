"""`vaccel ping ADDR`: reach an agent and time a few round trips."""

from __future__ import annotations

import asyncio

from vaccel.client.asyncclient import AsyncClient
from vaccel.client.credentials import client_credentials
from vaccel.config import Config
from vaccel.protocol.address import parse_address


async def _ping(address: str, count: int, timeout: float) -> None:
    parsed = parse_address(address)
    kwargs = client_credentials(Config.from_env(), [parsed]).for_address(parsed)
    client = await AsyncClient.connect(parsed, timeout, public=True, **kwargs)
    peer = client.peer.agent if client.peer else "?"
    print(f"connected to {address} ({peer})")
    try:
        for i in range(count):
            rtt = await client.ping()
            print(f"ping {i + 1}: {rtt * 1e6:.0f} us")
    finally:
        await client.close()


def ping(address: str | None, count: int, timeout: float = 10.0) -> int:
    """Reach the agent at `address` (default VACCEL_RPC_ADDRESS) and time `count` PINGs.

    Waits at most `timeout` seconds for the connection and its handshake; raises
    UnavailableError (or UnauthenticatedError) naming the agent when that fails.
    """
    where = address or Config.from_env().rpc_address.split(",")[0].strip()
    asyncio.run(_ping(where, max(1, count), max(0.001, timeout)))
    return 0
