"""Several agents per client (issue 14): sessions spread over three agent processes, one
killed (new sessions all succeed, the others' sessions untouched, its own lost with
SessionLostError), restarted on the same port (new sessions reach it again); a name
that resolves to several addresses means all of them."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from agent_proc import SpawnedAgent, start_agent

from vaccel import AsyncSession, Config, Runtime, Session
from vaccel.errors import ConnectionLostError, SessionLostError, UnavailableError
from vaccel.plugins.rpc import links
from vaccel.protocol.address import Address, parse_address

A = np.arange(64, dtype=np.float32)


def port_of(address: str) -> int:
    return parse_address(address).port


class Agents:
    """Three agent processes on 127.0.0.1; any of them can be killed and restarted."""

    def __init__(self, count: int = 3) -> None:
        self.procs: list[SpawnedAgent] = [start_agent("tcp://127.0.0.1:0") for _ in range(count)]
        self.addresses = [p.addresses[0] for p in self.procs]

    def kill(self, i: int) -> None:
        self.procs[i].proc.kill()
        self.procs[i].proc.wait(10)
        self.procs[i].stop()  # closes its pipe

    def restart(self, i: int) -> None:
        deadline = time.monotonic() + 10
        while True:  # the port is free once the killed process is gone; retry briefly
            try:
                self.procs[i] = start_agent(self.addresses[i])
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert self.procs[i].addresses == [self.addresses[i]]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.proc.poll() is None:
                assert proc.stop() == 0
            else:
                proc.stop()


@pytest.fixture
def agents() -> Iterator[Agents]:
    group = Agents()
    yield group
    group.stop()


def rpc_runtime(addresses: list[str]) -> Runtime:
    return Runtime(Config("rpc", 0, rpc_address=",".join(addresses)))


def works(s: Session) -> bool:
    return bool(np.array_equal(s.fpga_vadd(A, A), A + A))


@pytest.mark.timeout(90)
def test_sessions_spread_survive_a_dead_agent_and_return_to_a_restarted_one(
    agents: Agents,
) -> None:
    runtime = rpc_runtime(agents.addresses)
    opened: list[Session] = []
    try:
        for _ in range(9):
            s = Session(runtime=runtime)
            opened.append(s)
            assert s.is_remote and works(s)
        spread = Counter(s.remote_address for s in opened)
        assert spread == Counter({a: 3 for a in agents.addresses}), spread

        dead = agents.addresses[1]
        agents.kill(1)
        survivors = [s for s in opened if s.remote_address != dead]
        lost = [s for s in opened if s.remote_address == dead]
        ids = {s.id: s.remote_id for s in survivors}
        # New sessions all succeed, none on the dead agent.
        fresh = [Session(runtime=runtime) for _ in range(8)]
        opened += fresh
        assert all(works(s) for s in fresh)
        assert dead not in {s.remote_address for s in fresh}
        assert {s.remote_address for s in fresh} == set(agents.addresses) - {dead}
        # The sessions on the other agents are untouched: same agent, same id, working.
        assert all(works(s) and s.remote_id == ids[s.id] for s in survivors)
        # The dead agent's sessions fail with the clear error, every time.
        for s in lost:
            with pytest.raises(SessionLostError, match="lost with its agent at"):
                s.fpga_vadd(A, A)
            with pytest.raises(SessionLostError):
                s.noop()

        # Restarted on the same port: a background health check brings it back.
        agents.restart(1)
        deadline = time.monotonic() + 20
        landed: list[Session] = []
        while not landed and time.monotonic() < deadline:
            s = Session(runtime=runtime)
            opened.append(s)
            assert works(s)
            if s.remote_address == dead:
                landed.append(s)
            time.sleep(0.05)
        assert landed, "no new session reached the restarted agent"
        more = [Session(runtime=runtime) for _ in range(6)]
        opened += more
        assert Counter(s.remote_address for s in more)[dead] >= 1
    finally:
        for s in opened:
            s.close()
        runtime.close()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_async_sessions_spread_and_fail_over(agents: Agents) -> None:
    runtime = rpc_runtime(agents.addresses)
    opened: list[AsyncSession] = []
    try:
        for _ in range(6):
            s = AsyncSession(runtime=runtime)
            await s.open()
            opened.append(s)
        assert Counter(s.remote_address for s in opened) == Counter(
            {a: 2 for a in agents.addresses}
        )
        results = await asyncio.gather(*(s.fpga_vadd(A, A) for s in opened))
        assert all(np.array_equal(r, A + A) for r in results)

        dead = agents.addresses[0]
        await asyncio.to_thread(agents.kill, 0)
        await asyncio.sleep(0.1)  # the loop hears the hang-up
        fresh = []
        for _ in range(6):
            s = AsyncSession(runtime=runtime)
            await s.open()
            fresh.append(s)
        opened += fresh
        assert dead not in {s.remote_address for s in fresh}
        for s in opened:
            if s.remote_address == dead:
                with pytest.raises(SessionLostError):
                    await s.fpga_vadd(A, A)
            else:
                assert np.array_equal(await s.fpga_vadd(A, A), A + A)

        await asyncio.to_thread(agents.restart, 0)
        deadline = time.monotonic() + 20
        back = False
        while not back and time.monotonic() < deadline:
            s = AsyncSession(runtime=runtime)
            await s.open()
            opened.append(s)
            back = s.remote_address == dead
            await asyncio.sleep(0.05)
        assert back, "no new async session reached the restarted agent"
    finally:
        for s in opened:
            await s.close()
        runtime.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_fewest_outstanding_calls_win(agents: Agents) -> None:
    """A session busy with calls on one agent sends new sessions to the others."""
    runtime = rpc_runtime(agents.addresses[:2])
    try:
        first = AsyncSession(runtime=runtime)
        await first.open()
        busy = first.remote_address
        placement = runtime.plugins[0].placement  # type: ignore[attr-defined]
        (endpoint,) = [e for e in placement.endpoints if str(e.address) == busy]
        # Keep calls in flight on the first agent: big vector adds take a while to move.
        big = np.ones(1 << 22, dtype=np.float32)
        calls = [asyncio.ensure_future(first.fpga_vadd(big, big)) for _ in range(4)]
        for _ in range(1000):
            if endpoint.outstanding == 4:
                break
            await asyncio.sleep(0.001)
        placed = []
        for _ in range(4):
            s = AsyncSession(runtime=runtime)
            await s.open()
            placed.append(s)
        still = endpoint.outstanding
        others = [s.remote_address for s in placed]
        for result in await asyncio.gather(*calls):
            assert np.array_equal(result, big + big)
        if still == 0:
            pytest.skip("the calls ended before the sessions were placed (a very fast host)")
        assert others.count(busy) == 0, (busy, others)
        for s in [first, *placed]:
            await s.close()
    finally:
        runtime.close()


def test_connection_refused_marks_down_and_a_background_check_brings_it_back() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    endpoint = links.Endpoint(parse_address(f"tcp://127.0.0.1:{port}"))
    answers = iter([False, False, True])
    checked: list[float] = []

    def probe(address: Address) -> bool:
        checked.append(time.monotonic())
        return next(answers)

    endpoint.failed(probe)
    assert not endpoint.healthy
    deadline = time.monotonic() + 10
    while not endpoint.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert endpoint.healthy and len(checked) == 3
    assert checked[2] - checked[1] > checked[1] - checked[0] > 0  # backoff grows
    assert endpoint.backoff == links.BACKOFF_START


def test_a_kept_connection_to_a_dead_agent_is_not_reused() -> None:
    proc = start_agent("tcp://127.0.0.1:0")
    runtime = rpc_runtime(proc.addresses)
    try:
        with Session(runtime=runtime) as s:
            assert works(s)
            placement = runtime.plugins[0].placement  # type: ignore[attr-defined]
            link = placement.endpoints[0].sync
            assert link is not None and not links.gone(link)
            proc.proc.kill()
            proc.proc.wait(10)
            deadline = time.monotonic() + 5
            while not links.gone(link) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert links.gone(link)
            # A new session is not placed on the dead connection: it says the agent is gone.
            with pytest.raises(UnavailableError) as failure:
                Session(runtime=runtime)
            # Refused by the address (a new connection was tried), not lost mid-call on
            # the old one.
            assert not isinstance(failure.value, ConnectionLostError), failure.value
            assert "refused" in failure.value.message.lower()
            with pytest.raises(SessionLostError):
                s.noop()
    finally:
        proc.stop()
        runtime.close()


# ---------------------------------------------------------------------- names


def fake_resolver(names: dict[str, list[str]]) -> Any:
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            out = []
            for ip in names[host]:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                sockaddr = (ip, int(port), 0, 0) if ":" in ip else (ip, int(port))
                out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        return real(host, port, *args, **kwargs)

    return resolve


def test_expand_a_name_to_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_resolver({"agents.test": ["127.0.0.1", "::1", "127.0.0.1"]})
    )
    many = links.expand(parse_address("tcp://agents.test:8192"))
    assert [str(a) for a in many] == ["tcp://127.0.0.1:8192", "tcp://[::1]:8192"]
    # tls keeps the name (its certificate is checked against it); unix/vsock are one place.
    assert links.expand(parse_address("tls://agents.test:8192")) == [
        parse_address("tls://agents.test:8192")
    ]
    assert len(links.expand(parse_address("unix:///run/vaccel.sock"))) == 1
    # Unresolvable now: kept, so that connecting says why.
    assert links.expand(parse_address("tcp://no-such-host.invalid:1")) == [
        parse_address("tcp://no-such-host.invalid:1")
    ]
    placement = links.Placement(
        [parse_address("tcp://agents.test:8192"), parse_address("tcp://[::1]:8192")]
    )
    assert [str(e.address) for e in placement.endpoints] == [
        "tcp://127.0.0.1:8192",
        "tcp://[::1]:8192",
    ]


def test_localhost_means_every_address_it_resolves_to() -> None:
    found = {info[4][0] for info in socket.getaddrinfo("localhost", 1, type=socket.SOCK_STREAM)}
    if len(found) < 2:
        pytest.skip(
            f"localhost resolves to {sorted(found)} only here (the fake resolver covers it)"
        )
    assert len(links.expand(parse_address("tcp://localhost:1"))) == len(found)


@pytest.mark.timeout(60)
def test_sessions_spread_over_the_addresses_of_one_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two agents on one port, 127.0.0.1 and ::1; the client names them once."""
    v4 = start_agent("tcp://127.0.0.1:0")
    port = port_of(v4.addresses[0])
    try:
        v6 = start_agent(f"tcp://[::1]:{port}")
    except RuntimeError:
        v4.stop()
        pytest.skip("::1 cannot listen on the port 127.0.0.1 got")
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({"agents.test": ["127.0.0.1", "::1"]}))
    runtime = rpc_runtime([f"tcp://agents.test:{port}"])
    try:
        sessions = [Session(runtime=runtime) for _ in range(4)]
        assert Counter(s.remote_address for s in sessions) == Counter(
            {f"tcp://127.0.0.1:{port}": 2, f"tcp://[::1]:{port}": 2}
        )
        assert all(works(s) for s in sessions)
        for s in sessions:
            s.close()
    finally:
        runtime.close()
        assert v4.stop() == 0 and v6.stop() == 0


async def _resources_held(address: str) -> int:
    from vaccel.client.asyncclient import AsyncClient

    client = await AsyncClient.connect(address)
    try:
        stats = await client.call("agent.stats", [])
        return int(stats["budgets"]["resources"][0])
    finally:
        await client.close()


@pytest.mark.timeout(60)
def test_a_resource_goes_to_the_agent_of_each_session_using_it(agents: Agents) -> None:
    """One Resource registered with six sessions spread over three agents: each agent
    gets its own copy (once per connection, whatever the sessions on it), calls needing
    it work there, and unregistering from the last session frees every copy."""
    from vaccel import Resource, ResourceType

    runtime = rpc_runtime(agents.addresses)
    sessions = [Session(runtime=runtime) for _ in range(6)]
    model = Resource.from_buffer(b"weights" * 1000, ResourceType.MODEL, name="model.bin")
    try:
        assert {s.remote_address for s in sessions} == set(agents.addresses)
        for s in sessions:
            s.register_resource(model)
            assert works(s)
        held = [asyncio.run(_resources_held(a)) for a in agents.addresses]
        assert held == [1, 1, 1], held
        for s in sessions:
            s.unregister_resource(model)
        held = [asyncio.run(_resources_held(a)) for a in agents.addresses]
        assert held == [0, 0, 0], held
    finally:
        for s in sessions:
            s.close()
        runtime.close()
