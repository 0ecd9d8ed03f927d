"""Calls from many threads: every op and size mixed, on a small CMA budget, on the model.

The model raises on any use after free, buffer shared by two cores, cache maintenance
on a buffer a core is using, or register write while busy; the results are checked
against numpy. Also: calls on different cores overlap, calls on one core do not.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pynqhelpers import sim as sim  # the fixture

from vaccel import Session

F32 = np.float32
#: Lengths around the 4096-element chunk the tests set, and matrix sizes around the tile.
SIZES = (1, 5, 1000, 4095, 4096, 4097, 9000, 70_000)
MATRICES = (1, 2, 17, 63, 64, 65, 100)
STREAM_OPS = ("vadd", "parallel", "arraycopy")


def mixed_jobs(threads: int, rounds: int = 2, seed: int = 11) -> list[list[tuple[str, int]]]:
    """Every (op, size) `rounds` times, shuffled and dealt to `threads` workers."""
    jobs = [(op, n) for op, n in itertools.product(STREAM_OPS, SIZES)]
    jobs += [("mmult", n) for n in MATRICES]
    jobs *= rounds
    order = np.random.default_rng(seed).permutation(len(jobs))
    return [[jobs[i] for i in order[w::threads]] for w in range(threads)]


def check_call(session: Session, op: str, n: int, rng: np.random.Generator) -> None:
    """One call, its answer compared with numpy's."""
    if op == "arraycopy":
        ints = rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int32)
        assert np.array_equal(session.fpga_arraycopy(ints), ints), (op, n)
        return
    if op == "mmult":
        a = rng.uniform(0.5, 2.0, n * n).astype(F32)
        b = rng.uniform(0.5, 2.0, n * n).astype(F32)
        want = (a.reshape(n, n).astype(np.float64) @ b.reshape(n, n)).reshape(-1)
        np.testing.assert_allclose(session.fpga_mmult(a, b), want, rtol=1e-4, err_msg=str(n))
        return
    a = rng.uniform(0.5, 2.0, n).astype(F32)
    b = rng.uniform(0.5, 2.0, n).astype(F32)
    if op == "vadd":
        assert np.array_equal(session.fpga_vadd(a, b), a + b), (op, n)
    else:
        add, mult = session.fpga_parallel(a, b)
        assert np.array_equal(add, a + b) and np.array_equal(mult, a * b), (op, n)


def run_mixed(open_session: Callable[[], Session], threads: int = 8) -> int:
    """Each thread runs its share of the mixed jobs in a session of its own."""

    def worker(index: int, jobs: list[tuple[str, int]]) -> int:
        rng = np.random.default_rng(100 + index)
        with open_session() as session:
            for op, n in jobs:
                check_call(session, op, n, rng)
        return len(jobs)

    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(worker, range(threads), mixed_jobs(threads)))
    return sum(done)


def test_threads_mixing_every_op_and_size_on_a_small_budget(sim: Any) -> None:
    runtime = sim(
        VACCEL_PYNQ_CHUNK="4096", VACCEL_PYNQ_CMA_BYTES=str(160 * 1024), VACCEL_PYNQ_SIM_LATENCY="8"
    )
    fabric = runtime.plugins[0].fabric
    calls = run_mixed(lambda: Session(runtime=runtime))
    assert calls == 2 * (len(STREAM_OPS) * len(SIZES) + len(MATRICES))
    assert fabric.board.violations == []
    assert fabric.pool.allocated <= fabric.pool.budget and fabric.pool.leased_bytes == 0
    assert fabric.pool.quarantined_bytes == 0
    assert all(slot.fault is None for slot in fabric.slots.values())


def _track_runs(fabric: Any) -> dict[str, int]:
    """Record how many runs were in flight at once: per core, and in all."""
    lock = threading.Lock()
    now: dict[str, int] = {}
    peak = {"all": 0}
    for name, core in fabric.board.cores.items():
        start, complete = core._start, core._complete

        def tracked_start(name: str = name, start: Callable[[], None] = start) -> None:
            with lock:
                now[name] = now.get(name, 0) + 1
                peak[name] = max(peak.get(name, 0), now[name])
                peak["all"] = max(peak["all"], sum(now.values()))
            start()

        def tracked_complete(name: str = name, complete: Callable[[], None] = complete) -> None:
            with lock:
                now[name] -= 1
            complete()

        core._start, core._complete = tracked_start, tracked_complete
    return peak


def test_calls_on_different_cores_overlap(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_SIM_SLOW="vadd_0=0.05,arraycopy_0=0.05")
    fabric = runtime.plugins[0].fabric
    peak = _track_runs(fabric)

    def calls(op: str) -> None:
        rng = np.random.default_rng(1)
        with Session(runtime=runtime) as s:
            for _ in range(3):
                check_call(s, op, 100, rng)

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(calls, ["vadd", "arraycopy"]))
    assert peak["all"] == 2  # both cores ran at once
    assert time.monotonic() - started < 6 * 0.05  # not one after the other
    assert fabric.board.violations == []


def test_calls_on_one_core_take_turns(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_SIM_SLOW="vadd_0=0.03")
    fabric = runtime.plugins[0].fabric
    peak = _track_runs(fabric)

    def calls(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with Session(runtime=runtime) as s:
            for _ in range(2):
                check_call(s, "vadd", 50, rng)

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(calls, range(4)))
    assert peak["vadd_0"] == 1 and time.monotonic() - started >= 8 * 0.03
    assert fabric.board.violations == []
