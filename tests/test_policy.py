"""Where a call runs (issue 15, Deliver 3): `Runtime.route` and `vaccel.policy.CostModel`.

A blocking op runs in the pool until `SAMPLES` calls of its cost class were measured, then
inline (on the caller's thread: the event loop's, for an AsyncSession) if they took under
`INLINE_BELOW`. Which thread ran a call is seen from inside it: `exec` of this module's
`ident` returns the ident of the thread that ran it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from vaccel import Arg, AsyncSession, Config, OpType, Runtime
from vaccel.policy import SAMPLES, STRIKES

#: exec targets this module offers (it is importable as `test_policy` under pytest).
HERE = __name__


def ident(seconds: float = 0.0) -> int:
    """The ident of the thread running this exec, after sleeping `seconds`."""
    if seconds:
        time.sleep(seconds)
    return threading.get_ident()


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime(Config("numpy", 0, exec_allow=[f"{HERE}:ident", "math:hypot", "time:sleep"]))
    yield rt
    rt.close()


async def ran_on(s: AsyncSession, seconds: float = 0.0) -> int:
    (got,) = await s.exec(HERE, "ident", [seconds], [Arg(0)])
    return int(got)


def exec_route(rt: Runtime, s: AsyncSession, library: str, symbol: str, read: list[float]) -> bool:
    """Whether the runtime would run this exec inline now."""
    return rt.route(s, OpType.EXEC, (library, symbol, read, []), 0).inline


@pytest.mark.asyncio
async def test_a_cheap_exec_runs_on_the_loop_after_its_warm_up(runtime: Runtime) -> None:
    loop_thread = threading.get_ident()
    async with AsyncSession(runtime=runtime) as s:
        warm_up = [await ran_on(s) for _ in range(SAMPLES)]
        assert loop_thread not in warm_up  # measured in the pool first
        assert [await ran_on(s) for _ in range(20)] == [loop_thread] * 20  # then no hop
        for _ in range(SAMPLES):
            assert await s.exec("math", "hypot", [3.0, 4.0], [Arg(0.0)]) == [5.0]
        assert exec_route(runtime, s, "math", "hypot", [3.0, 4.0])
        assert await s.exec("math", "hypot", [5.0, 12.0], [Arg(0.0)]) == [13.0]


@pytest.mark.asyncio
async def test_an_expensive_exec_stays_in_the_pool(runtime: Runtime) -> None:
    loop_thread = threading.get_ident()
    async with AsyncSession(runtime=runtime) as s:
        threads = [await ran_on(s, 0.01) for _ in range(2 * SAMPLES)]
        assert loop_thread not in threads
        for _ in range(2 * SAMPLES):
            await s.exec("time", "sleep", [0.01])
        assert not exec_route(runtime, s, "time", "sleep", [0.01])  # 0.01 s >> INLINE_BELOW


@pytest.mark.asyncio
async def test_a_cheap_op_never_holds_the_loop_for_long(runtime: Runtime) -> None:
    """Cheap calls run inline without stalling the loop (a ticker keeps its pace), and small
    array ops are declared cheap by the plugin: inline from the first call, never measured."""
    import asyncio

    loop_thread = threading.get_ident()
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            start = time.perf_counter()
            await asyncio.sleep(0)
            lags.append(time.perf_counter() - start)

    async with AsyncSession(runtime=runtime) as s:
        for _ in range(SAMPLES):
            await ran_on(s)
        tick = asyncio.create_task(ticker())
        a = np.ones(256, np.float32)
        inline = 0
        for i in range(300):
            # On the loop, but for the calls after a preemption on a busy machine (one
            # strike: the class's smoothed cost sends it to the pool for a while).
            inline += await ran_on(s) == loop_thread
            np.testing.assert_array_equal(await s.fpga_vadd(a, a + i), a + a + i)
            await asyncio.sleep(0)
        stop = True
        await tick
        assert runtime.route(s, OpType.FPGA_VECTORADD, (a, a), 0).key is None  # not measured
    assert inline >= 0.9 * 300, inline
    lags.sort()
    assert len(lags) > 100
    assert lags[len(lags) // 2] < 1e-3  # a turn of the loop, an exec and a vadd inline
    assert lags[len(lags) * 95 // 100] < 5e-3


@pytest.mark.asyncio
async def test_a_cheap_class_turned_expensive_holds_the_loop_at_most_twice(
    runtime: Runtime,
) -> None:
    """exec's cost depends on its arguments' values, which its cost class does not see: a
    class measured cheap may run a slow call inline. After such a call the class goes to
    the pool until cheap calls bring its average down; a second one sends it to the pool
    for good, so warming it up again and again cannot keep holding the loop."""
    loop_thread = threading.get_ident()
    held = 0
    async with AsyncSession(runtime=runtime) as s:
        for _ in range(SAMPLES):
            await ran_on(s)
        assert await ran_on(s) == loop_thread
        for _ in range(5):  # an attacker: warm the class up, then a slow call
            for _ in range(60):
                await ran_on(s)
            start = time.perf_counter()
            held += await ran_on(s, 0.05) == loop_thread
            assert time.perf_counter() - start >= 0.05
        assert held == STRIKES
        for _ in range(60):  # cheap again, many times over: the pool for good
            assert await ran_on(s) != loop_thread
        assert not exec_route(runtime, s, HERE, "ident", [0.0])
