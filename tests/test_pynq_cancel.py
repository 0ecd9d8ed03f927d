"""Deadlines and cancellation reach the pynq plugin's work (issue 8, Deliver 6).

The chunk and tile loops check between core runs, and the wait for ap_done checks while
it polls, raising what the numpy ops raise (`vaccel.cancel`). A core cannot be stopped
mid-run: a run given up on keeps its buffers until the next call on that core has seen it
finish, so the model (which raises on any reuse of memory a core still writes) stays
clean, and the plugin serves the next call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from agent_proc import SpawnedAgent, clean_env
from pynqhelpers import sim as sim  # the fixture

from vaccel import AsyncSession, Config, OpType, Runtime, Session
from vaccel.cancel import CallScope
from vaccel.errors import CancelledError, DeadlineExceededError, PluginFailure

F32 = np.float32
#: 64 runs of 1024 elements, 50 ms each: 3.2 s of work if nothing stops it.
LONG = {"VACCEL_PYNQ_SIM_SLOW": "vadd_0=0.05", "VACCEL_PYNQ_CHUNK": "1024"}
LONG_N = 64 * 1024


def one_worker(**env: str) -> Runtime:
    """A runtime on the model whose pool has a single thread (so a stuck call shows)."""
    return Runtime(
        Config(plugins="pynq", log_level=0, env={"VACCEL_PYNQ_BOARD": "sim", **env}),
        max_workers=1,
    )


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made:
        runtime.close()


def fabric_of(runtime: Runtime) -> Any:
    return runtime.plugins[0].fabric


def submit_vadd(
    runtime: Runtime, session: Session, n: int, scope: CallScope
) -> concurrent.futures.Future[Any]:
    """A vadd in the runtime's pool under `scope`, as the agent runs it."""
    a = np.ones(n, F32)
    args = (a, a)
    route = runtime.route(session, OpType.FPGA_VECTORADD, args, 0)
    assert not route.inline
    return runtime.submit(route, session, OpType.FPGA_VECTORADD, args, scope)


# --- between runs -----------------------------------------------------------------------------


#: 20,000 quick runs of 16 elements: seconds of work, and never a wait long enough to poll.
MANY = {"VACCEL_PYNQ_CHUNK": "16"}
MANY_N = 16 * 20_000


@pytest.mark.parametrize("how", ["deadline", "cancel"])
def test_a_long_stream_stops_between_runs_with_numpys_error(
    runtimes: list[Runtime], how: str
) -> None:
    runtime = one_worker(**MANY)
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    core = fabric.cores["vadd"]
    with Session(runtime=runtime) as s:
        start = time.monotonic()
        scope = CallScope(start + 0.2 if how == "deadline" else None)
        future = submit_vadd(runtime, s, MANY_N, scope)
        if how == "cancel":
            time.sleep(0.2)
            scope.cancel()
        want = DeadlineExceededError if how == "deadline" else CancelledError
        text = "passed its deadline while running" if how == "deadline" else "was cancelled"
        with pytest.raises(want, match=text):
            future.result(10)
        assert time.monotonic() - start < 0.5  # not the seconds the whole stream takes
        assert 10 <= core.runs < 20_000 // 2
        assert not core.abandoned  # stopped between runs: nothing left running
        assert fabric.pool.leased_bytes == 0 and fabric.pool.quarantined_bytes == 0
        np.testing.assert_array_equal(s.fpga_vadd([1.0], [2.0]), [3.0])  # usable after
    assert fabric.board.violations == []


def test_a_stream_of_slow_runs_stops_near_its_deadline(runtimes: list[Runtime]) -> None:
    """Runs of 50 ms: the deadline mostly finds the core running (the wait polls it)."""
    runtime = one_worker(**LONG)
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    with Session(runtime=runtime) as s:
        start = time.monotonic()
        future = submit_vadd(runtime, s, LONG_N, CallScope(start + 0.2))
        with pytest.raises(DeadlineExceededError, match="passed its deadline while running"):
            future.result(5)
        assert time.monotonic() - start < 0.3
        assert fabric.cores["vadd"].runs <= 5
        np.testing.assert_array_equal(s.fpga_vadd([1.0], [2.0]), [3.0])  # usable after
        assert time.monotonic() - start < 0.5
    assert fabric.pool.leased_bytes == 0 and fabric.board.violations == []


@pytest.mark.asyncio
async def test_an_async_caller_giving_up_frees_the_pool_thread(runtimes: list[Runtime]) -> None:
    """The one pool thread is free again within a run of the timeout, not after 3.2 s."""
    runtime = one_worker(**LONG)
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    async with AsyncSession(runtime=runtime) as s:
        a = np.ones(LONG_N, F32)
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):  # not the builtin before Python 3.11
            await asyncio.wait_for(s.fpga_vadd(a, a), 0.2)
        ints = np.arange(100, dtype=np.int32)
        np.testing.assert_array_equal(await s.fpga_arraycopy(ints), ints)  # another core
        np.testing.assert_array_equal(await s.fpga_vadd([1.0], [2.0]), [3.0])  # the same one
        assert time.monotonic() - start < 0.8
    assert fabric.cores["vadd"].runs <= 10
    assert fabric.board.violations == []


def test_mmult_stops_between_tiles(runtimes: list[Runtime]) -> None:
    runtime = one_worker(VACCEL_PYNQ_SIM_SLOW="mmult_0=0.05")
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    m = np.ones(256 * 256, F32)  # 4 x 4 output tiles, 4 k-tiles each: 64 runs, 3.2 s
    with Session(runtime=runtime) as s:
        route = runtime.route(s, OpType.FPGA_MMULT, (m, m), 0)
        start = time.monotonic()
        future = runtime.submit(route, s, OpType.FPGA_MMULT, (m, m), CallScope(start + 0.2))
        with pytest.raises(DeadlineExceededError, match="deadline while running"):
            future.result(5)
        assert time.monotonic() - start < 0.5
        assert fabric.cores["mmult"].runs <= 8
        eye = np.eye(3, dtype=F32).reshape(-1)
        np.testing.assert_array_equal(s.fpga_mmult(eye, eye), eye)
    assert fabric.board.violations == []


# --- while a core runs ------------------------------------------------------------------------


def test_a_run_given_up_on_keeps_its_buffers_until_the_core_is_done(
    runtimes: list[Runtime],
) -> None:
    """One 0.4 s run, cancelled after 0.1 s: the call ends then, the core writes on into
    buffers nobody else gets (calls on another core meanwhile want buffers of that size
    class), and the next vadd waits for the run, then answers right."""
    runtime = one_worker(VACCEL_PYNQ_SIM_SLOW="vadd_0=0.4")
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    core = fabric.cores["vadd"]
    with Session(runtime=runtime) as s:
        scope = CallScope()
        start = time.monotonic()
        future = submit_vadd(runtime, s, 100, scope)
        time.sleep(0.1)
        scope.cancel("gave up")
        with pytest.raises(CancelledError, match="gave up"):
            future.result(5)
        assert time.monotonic() - start < 0.3
        assert core.abandoned and len(fabric.slots["vadd"].pending) == 3
        ints = np.arange(100, dtype=np.int32)
        while time.monotonic() - start < 0.55:  # the late write lands meanwhile
            np.testing.assert_array_equal(s.fpga_arraycopy(ints), ints)
        np.testing.assert_array_equal(s.fpga_vadd([1.0, 2.0], [2.0, 3.0]), [3.0, 5.0])
        assert not core.abandoned and fabric.slots["vadd"].pending == []
        assert core.runs == 2  # the abandoned run counted once, when seen done
    assert fabric.pool.leased_bytes == 0 and fabric.pool.quarantined_bytes == 0
    assert fabric.board.violations == []


def test_a_call_waiting_for_a_run_given_up_on_can_give_up_too(runtimes: list[Runtime]) -> None:
    runtime = one_worker(VACCEL_PYNQ_SIM_SLOW="vadd_0=0.4")
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    with Session(runtime=runtime) as s:
        first = CallScope()
        future = submit_vadd(runtime, s, 100, first)
        time.sleep(0.05)
        first.cancel()
        with pytest.raises(CancelledError):
            future.result(5)
        start = time.monotonic()
        second = submit_vadd(runtime, s, 100, CallScope(start + 0.1))
        with pytest.raises(DeadlineExceededError, match="deadline while running"):
            second.result(5)
        assert time.monotonic() - start < 0.3  # it did not wait out the first run
        assert fabric.cores["vadd"].abandoned and len(fabric.slots["vadd"].pending) == 3
        np.testing.assert_array_equal(s.fpga_vadd([1.0], [2.0]), [3.0])
    assert fabric.pool.leased_bytes == 0 and fabric.board.violations == []


@pytest.mark.parametrize("reload", [False, True])
def test_a_run_given_up_on_that_never_ends_faults_the_core(
    runtimes: list[Runtime], reload: bool
) -> None:
    """A hung core: the next call waits the core's timeout (from the run's start), then
    the core is faulted as a timed-out call's would be: unusable, or reloaded and the
    call served."""
    env = {"VACCEL_PYNQ_SIM_HANG": "vadd_0", "VACCEL_PYNQ_TIMEOUT": "0.3"}
    if reload:
        env["VACCEL_PYNQ_RELOAD_ON_FAULT"] = "1"
    runtime = one_worker(**env)
    runtimes.append(runtime)
    fabric = fabric_of(runtime)
    with Session(runtime=runtime) as s:
        start = time.monotonic()
        future = submit_vadd(runtime, s, 100, CallScope(start + 0.05))
        with pytest.raises(DeadlineExceededError, match="deadline while running"):
            future.result(5)
        if reload:
            assert s.fpga_vadd([1.0], [2.0]) == [3.0]
            assert fabric.board.reloads == 1 and fabric.pool.quarantined_bytes == 0
        else:
            with pytest.raises(PluginFailure, match="vadd_0 is unusable.*gave up on"):
                s.fpga_vadd([1.0], [2.0])
            assert fabric.pool.quarantined_bytes == 3 * 8192
        assert 0.3 <= time.monotonic() - start < 1.0
        assert s.fpga_arraycopy([7]) == [7]  # the other cores still work
    assert fabric.board.violations == []


# --- through a real agent ---------------------------------------------------------------------


def test_an_agents_deadline_reaches_a_running_fpga_call() -> None:
    """One pool worker; a client's 0.3 s deadline on 3.2 s of FPGA work: the call ends near
    the deadline, and the worker and core serve the next calls at once."""
    proc = SpawnedAgent(
        ["tcp://127.0.0.1:0"],
        clean_env(VACCEL_PLUGINS="pynq", VACCEL_PYNQ_BOARD="sim", **LONG),
        extra_args=["--workers", "1"],
    )
    runtime = Runtime(Config("rpc", 0, rpc_address=proc.addresses[0], rpc_timeout=0.3))
    try:
        with Session(runtime=runtime) as s:
            a = np.ones(LONG_N, F32)
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                s.fpga_vadd(a, a)
            assert time.monotonic() - start < 0.8
            start = time.monotonic()
            ints = np.arange(100, dtype=np.int32)
            np.testing.assert_array_equal(s.fpga_arraycopy(ints), ints)
            np.testing.assert_array_equal(s.fpga_vadd([1.0], [2.0]), [3.0])
            assert time.monotonic() - start < 0.5  # not behind the rest of the stream
    finally:
        runtime.close()
        assert proc.stop() == 0
    log = proc.stderr_text()
    assert "Traceback" not in log and "violation" not in log.lower(), log[-3000:]
