"""Concurrency torture: many calls of mixed sizes in flight on one connection, through a
real agent process, in both directions, with cancellations; every answer checked.
Hypothesis chooses mixes of sizes and cancel points too (a few examples per transport)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from agent_proc import AgentProcess, start_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaccel import AsyncSession, Config, Runtime, Session
from vaccel.protocol.codec import INLINE_MAX
from vaccel.protocol.connection import DATA_FRAME

F4 = 4  # bytes per float32
#: Element counts on both sides of every boundary: inline/out of band, one DATA frame,
#: the agent's 4 MiB frame limit, and several MiB.
SIZES = sorted(
    {1, 2, 255}
    | {INLINE_MAX // F4 + d for d in (-1, 0, 1)}
    | {DATA_FRAME // F4 + d for d in (-1, 0, 1)}
    | {4 * DATA_FRAME // F4 + d for d in (-1, 1)}
    | {3_000_001}
)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: Any) -> Iterator[AgentProcess]:
    sock = tmp_path_factory.mktemp("torture") / "agent.sock"
    proc = start_agent("tcp://127.0.0.1:0", f"unix://{sock}", plugins="numpy")
    yield proc
    assert proc.stop() == 0


@pytest.fixture(params=["tcp", "unix"])
def runtime(request: Any, agent: AgentProcess) -> Iterator[Runtime]:
    address = next(a for a in agent.addresses if a.startswith(request.param))
    rt = Runtime(Config(plugins="rpc", rpc_address=address, log_level=0))
    yield rt
    rt.close()


@pytest_asyncio.fixture
async def session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(runtime=runtime) as s:
        yield s


def _vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray[Any, Any], ...]:
    return rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)


async def _checked_call(s: AsyncSession, kind: str, n: int, seed: int) -> None:
    """One op with inputs of `n` elements, its answer compared with numpy's."""
    rng = np.random.default_rng(seed)
    a, b = _vectors(rng, n)
    if kind == "vadd":  # large request, large reply
        np.testing.assert_array_equal(await s.fpga_vadd(a, b), a + b)
    elif kind == "parallel":  # two large replies
        add, mult = await s.fpga_parallel(a, b)
        np.testing.assert_array_equal(add, a + b)
        np.testing.assert_array_equal(mult, a * b)
    elif kind == "copy":
        ints = rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int32)
        np.testing.assert_array_equal(await s.fpga_arraycopy(ints), ints)
    else:  # a small call among the large ones
        side = 1 + n % 16
        m1, m2 = _vectors(rng, side * side)
        want = (m1.reshape(side, side) @ m2.reshape(side, side)).reshape(-1)
        np.testing.assert_allclose(await s.fpga_mmult(m1, m2), want, rtol=1e-5)


def _plan(seed: int, count: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    kinds = ["vadd", "parallel", "copy", "mmult"]
    return [(rng.choice(kinds), rng.choice(SIZES)) for _ in range(count)]


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_concurrent_large_calls_on_one_session(session: AsyncSession) -> None:
    """The issue's reproduction: eight 1 MiB vadds at once on one AsyncSession."""
    n = (1 << 20) // F4
    await asyncio.gather(*(_checked_call(session, "vadd", n, i) for i in range(8)))


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_mixed_sizes_in_flight_on_one_connection(session: AsyncSession) -> None:
    plan = _plan(1, 48)
    await asyncio.gather(*(_checked_call(session, k, n, i) for i, (k, n) in enumerate(plan)))


@pytest.mark.both_loops
@pytest.mark.asyncio
async def test_cancellations_mid_transfer_leave_the_connection_sound(
    session: AsyncSession,
) -> None:
    rng = random.Random(7)
    for round_ in range(3):
        plan = _plan(100 + round_, 24)
        tasks = [
            asyncio.create_task(_checked_call(session, k, n, i)) for i, (k, n) in enumerate(plan)
        ]
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        victims = rng.sample(range(len(tasks)), len(tasks) // 2)
        for i in victims:
            tasks[i].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i not in victims or not isinstance(result, asyncio.CancelledError):
                assert result is None, f"call {i} ({plan[i]}): {result!r}"
    # The connection still carries correct answers of every size.
    await asyncio.gather(*(_checked_call(session, "vadd", n, n) for n in SIZES))


#: One call of a generated mix: its op, its element count, and after how many turns of
#: the event loop it is cancelled (None: it runs to its answer).
CALL = st.tuples(
    st.sampled_from(["vadd", "parallel", "copy", "mmult"]),
    st.one_of(st.sampled_from(SIZES[:-1]), st.integers(1, 2 * DATA_FRAME // F4)),
    st.one_of(st.none(), st.integers(0, 40)),
)


@settings(
    max_examples=20,
    deadline=None,
    # One session (one connection) for every example: what one mix leaves behind must not
    # hurt the next.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mix=st.lists(CALL, min_size=1, max_size=12))
@pytest.mark.asyncio
async def test_generated_mixes_with_cancellations(
    session: AsyncSession, mix: list[tuple[str, int, int | None]]
) -> None:
    tasks = [
        asyncio.create_task(_checked_call(session, kind, n, i))
        for i, (kind, n, _) in enumerate(mix)
    ]
    turns = sorted({cancel for _, _, cancel in mix if cancel is not None})
    done = 0
    for turn in turns:
        for _ in range(turn - done):
            await asyncio.sleep(0)
        done = turn
        for task, (_, _, cancel) in zip(tasks, mix, strict=True):
            if cancel == turn:
                task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for (kind, n, cancel), result in zip(mix, results, strict=True):
        if cancel is None or not isinstance(result, asyncio.CancelledError):
            assert result is None, f"{kind} of {n} (cancel {cancel}): {result!r}"
    await _checked_call(session, "vadd", 1000, len(mix))  # the connection is still sound


@pytest.mark.asyncio
async def test_many_sessions_on_one_loop(runtime: Runtime) -> None:
    sessions = [AsyncSession(runtime=runtime) for _ in range(16)]
    for s in sessions:
        await s.open()
    try:
        plan = _plan(3, 64)
        await asyncio.gather(
            *(_checked_call(sessions[i % len(sessions)], k, n, i) for i, (k, n) in enumerate(plan))
        )
    finally:
        for s in sessions:
            await s.close()


def test_sync_sessions_on_threads_mixed_sizes(runtime: Runtime) -> None:
    failures: list[str] = []

    def work(worker: int) -> None:
        rng = np.random.default_rng(worker)
        try:
            with Session(runtime=runtime) as s:
                for kind, n in _plan(worker, 6):
                    a, b = _vectors(rng, n)
                    if kind == "copy":
                        ints = rng.integers(0, 1000, n, dtype=np.int32)
                        assert np.array_equal(s.fpga_arraycopy(ints), ints)
                    else:
                        assert np.array_equal(s.fpga_vadd(a, b), a + b)
        except Exception as exc:  # collected: a thread's assertion must fail the test
            failures.append(f"worker {worker}: {exc!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
