"""`vaccel ping ADDR`: reach an agent and time a few round trips."""

from __future__ import annotations

import asyncio

from vaccel.client.asyncclient import AsyncClient
from vaccel.client.credentials import client_credentials
from vaccel.config import Config
from vaccel.protocol.address import parse_address


async def _ping(address: str, count: int) -> None:
    parsed = parse_address(address)
    kwargs = client_credentials(Config.from_env(), [parsed]).for_address(parsed)
    client = await AsyncClient.connect(parsed, public=True, **kwargs)
    peer = client.peer.agent if client.peer else "?"
    print(f"connected to {address} ({peer})")
    try:
        for i in range(count):
            rtt = await client.ping()
            print(f"ping {i + 1}: {rtt * 1e6:.0f} us")
    finally:
        await client.close()


def ping(address: str | None, count: int) -> int:
    """Reach the agent at `address` (default VACCEL_RPC_ADDRESS) and time `count` PINGs."""
    asyncio.run(_ping(address or Config.from_env().rpc_address, max(1, count)))
    return 0
