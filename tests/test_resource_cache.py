"""The agent's resource cache: a model is uploaded once per tenant, checked by digest,
kept within its byte budget, and never shared across tenants or charged twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from inprocess import running_agent

from vaccel import AsyncSession, Config, Resource, ResourceType, Runtime
from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import BadArgumentError, ResourceExhaustedError
from vaccel.resource import content_digest

MODEL = ResourceType.MODEL


def _content(seed: int, size: int) -> tuple[list[str], list[bytes]]:
    blob = np.random.default_rng(seed).integers(0, 255, size, np.uint8).tobytes()
    return ["model.bin"], [blob]


@pytest.mark.asyncio
async def test_many_sessions_on_many_connections_upload_a_model_once(tmp_path: Path) -> None:
    """40 sessions over 8 rpc runtimes register the same 2 MiB model at once: the agent
    receives its bytes once; every session gets a working copy with the right content."""
    size = 2 << 20
    path = tmp_path / "model.bin"
    path.write_bytes(_content(1, size)[1][0])
    async with running_agent(tmp_path, plugins="noop") as (agent, address):
        runtimes = [Runtime(Config("rpc", 0, rpc_address=address)) for _ in range(8)]
        try:

            async def one(i: int) -> int:
                async with AsyncSession(runtime=runtimes[i % 8]) as session:
                    model = Resource(str(path), MODEL)
                    await model.register_async(session)
                    rid = model.remote_id
                    await asyncio.sleep(0.05)  # overlap with the others
                    await model.unregister_async(session)
                    assert model.remote_id == 0
                    return rid

            ids = await asyncio.gather(*(one(i) for i in range(40)))
        finally:
            for runtime in runtimes:
                runtime.close()
        assert len(set(ids)) == 40 and all(ids)
        received, _ = agent.state.traffic()
        assert size <= received < 2 * size, received  # once, not 40 times
        cache = agent.state.resource_cache.stats()
        assert cache["stored"] == 1 and cache["hits"] >= 39 and cache["entries"] == 1
        # Nothing is in use now; the kept bytes are all the agent still holds.
        assert agent.state.memory.used == cache["bytes"] == size + len("model.bin")


@pytest.mark.asyncio
async def test_find_and_create_in_flight_on_one_connection(tmp_path: Path) -> None:
    """Mixed sizes, 60 creates and finds in flight at once on one connection, every
    resource's id distinct and each find answered from the cache or None."""
    async with running_agent(tmp_path, plugins="noop") as (agent, address):
        client = await AsyncClient.connect(address)
        contents = [_content(i, 1000 + 70_000 * (i % 5)) for i in range(20)]
        digests = [content_digest(*c) for c in contents]
        created = await asyncio.gather(
            *(
                client.call("resource.create", [int(MODEL), n, b, d])
                for (n, b), d in zip(contents, digests, strict=True)
            )
        )
        found = await asyncio.gather(
            *(client.call("resource.find", [int(MODEL), d]) for d in digests * 2),
            client.call("resource.find", [int(MODEL), "0" * 64]),
            client.call("resource.find", [int(ResourceType.DATA), digests[0]]),  # other type
        )
        assert found[-2:] == [None, None]
        ids = created + found[:-2]
        assert len(set(ids)) == 60
        owned = next(iter(agent.connections)).owned
        for rid, (names, blobs) in zip(found[:40], contents * 2, strict=True):
            resource = owned.resources[rid]
            assert resource.names == names and resource.blobs == blobs
        await client.close()


@pytest.mark.asyncio
async def test_a_wrong_digest_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    async with running_agent(tmp_path, plugins="noop") as (agent, address):
        client = await AsyncClient.connect(address)
        names, blobs = _content(2, 5000)
        with pytest.raises(BadArgumentError, match="digest .* does not match its content"):
            await client.call("resource.create", [int(MODEL), names, blobs, "ab" * 32])
        with pytest.raises(BadArgumentError, match="hex string"):
            await client.call("resource.create", [int(MODEL), names, blobs, 7])
        assert agent.state.resource_cache.stats()["entries"] == 0
        assert await client.call("resource.find", [int(MODEL), "ab" * 32]) is None
        await client.close()


@pytest.mark.asyncio
async def test_tenants_do_not_see_each_others_content(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:a-secret\nbob:b-secret\n")
    async with running_agent(tmp_path, plugins="noop", token_file=str(tokens)) as (_, address):
        alice = await AsyncClient.connect(address, token="alice:a-secret")
        bob = await AsyncClient.connect(address, token="bob:b-secret")
        names, blobs = _content(3, 100_000)
        digest = content_digest(names, blobs)
        await alice.call("resource.create", [int(MODEL), names, blobs, digest])
        assert await bob.call("resource.find", [int(MODEL), digest]) is None
        assert await alice.call("resource.find", [int(MODEL), digest]) is not None
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_the_cache_keeps_within_its_budget_and_never_drops_what_is_used(
    tmp_path: Path,
) -> None:
    """Limit 1 MiB: three 400 KB contents in use are all served, the third not kept; once
    freed, older unused ones are evicted for new ones, and the memory comes back."""
    async with running_agent(tmp_path, plugins="noop", resource_cache=1 << 20) as (
        agent,
        address,
    ):
        state, client = agent.state, await AsyncClient.connect(address)
        contents = [_content(10 + i, 400_000) for i in range(4)]
        digests = [content_digest(*c) for c in contents]
        rids = [
            await client.call("resource.create", [int(MODEL), n, b, d])
            for (n, b), d in zip(contents[:3], digests, strict=False)
        ]
        cache = state.resource_cache.stats()
        assert cache["entries"] == 2 and cache["bytes"] <= 1 << 20
        assert await client.call("resource.find", [int(MODEL), digests[2]]) is None
        for rid in rids:
            await client.call("resource.destroy", [rid])
        assert state.memory.used == state.resource_cache.stats()["bytes"]  # only the kept bytes
        n, b = contents[3]
        await client.call("resource.create", [int(MODEL), n, b, digests[3]])
        assert await client.call("resource.find", [int(MODEL), digests[0]]) is None  # evicted
        assert await client.call("resource.find", [int(MODEL), digests[1]]) is not None
        assert state.resource_cache.stats()["bytes"] <= 1 << 20
        await client.close()


@pytest.mark.asyncio
async def test_cached_content_still_counts_in_the_peers_memory(tmp_path: Path) -> None:
    """A peer cannot hold more than its memory through the cache: finding content costs
    the peer its bytes as an upload would (the agent-wide budget counts them once)."""
    settings = {"max_memory": 16 << 20, "max_peer_memory": 3 << 20, "resource_cache": 8 << 20}
    async with running_agent(tmp_path, plugins="noop", **settings) as (agent, address):
        client = await AsyncClient.connect(address)
        names, blobs = _content(20, 1 << 20)
        digest = content_digest(names, blobs)
        await client.call("resource.create", [int(MODEL), names, blobs, digest])
        await client.call("resource.find", [int(MODEL), digest])
        with pytest.raises(ResourceExhaustedError, match="memory limit of 3145728 is reached"):
            for _ in range(3):
                await client.call("resource.find", [int(MODEL), digest])
        assert agent.state.memory.used < 4 << 20  # the content once, not per resource
        await client.close()


@pytest.mark.asyncio
async def test_waiters_go_on_when_the_uploader_leaves_or_fails(tmp_path: Path) -> None:
    """A lookup waits for another connection's upload of the same content; if that
    connection goes away without it, or sends content that fails its digest, the waiters
    are answered None at once (they upload their own) and a cancelled wait costs nothing."""
    async with running_agent(tmp_path, plugins="noop") as (agent, address):
        names, blobs = _content(30, 200_000)
        digest = content_digest(names, blobs)
        first = await AsyncClient.connect(address)
        second = await AsyncClient.connect(address)
        assert await first.call("resource.find", [int(MODEL), digest]) is None  # claims it
        waiting = asyncio.ensure_future(second.call("resource.find", [int(MODEL), digest]))
        cancelled = asyncio.ensure_future(second.call("resource.find", [int(MODEL), digest]))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        cancelled.cancel()
        await first.close()
        assert await asyncio.wait_for(waiting, 2) is None  # now the second uploads
        with pytest.raises(BadArgumentError, match="does not match"):
            await second.call("resource.create", [int(MODEL), names, [b"x" + blobs[0]], digest])
        third = await AsyncClient.connect(address)
        assert await third.call("resource.find", [int(MODEL), digest]) is None  # claims anew
        rid = await second.call("resource.create", [int(MODEL), names, blobs, digest])
        assert rid and await asyncio.wait_for(
            second.call("resource.find", [int(MODEL), digest]), 2
        )
        await second.close()
        await third.close()
        assert agent.state.resource_cache.stats()["stored"] == 1
