"""Contiguous memory as a budget: size classes, LRU eviction, retries, waits, limits.

The pool is tested with a fake allocator (to make failures happen on cue) and through
the plugin on the model, whose 120 MiB CMA pool fails as pynq does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from pynqhelpers import sim as sim  # the fixture

from vaccel import Session
from vaccel.errors import ResourceExhaustedError
from vaccel.plugins.pynq.memory import MIN_CLASS, PAGE, BufferPool, size_class

KiB, MiB = 1 << 10, 1 << 20
F32 = np.float32


class FakeBuffer:
    """Stands for a pynq buffer: an address, and a free that the allocator sees."""

    def __init__(self, owner: FakeCma, size: int) -> None:
        self.owner = owner
        self.size = size
        self.physical_address = 0x1800_0000 + len(owner.made) * size
        self.freed = False

    def freebuffer(self) -> None:
        self.freed = True
        self.owner.in_use -= self.size


class FakeCma:
    """An allocator with a capacity; `fail_next` makes the next allocations fail."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.made: list[FakeBuffer] = []
        self.fail_next = 0

    def __call__(self, shape: tuple[int], dtype: Any) -> FakeBuffer:
        size = shape[0] * np.dtype(dtype).itemsize
        if self.fail_next or self.in_use + size > self.capacity:
            self.fail_next = max(0, self.fail_next - 1)
            raise RuntimeError("BO allocation failed: out of CMA")
        self.in_use += size
        buf = FakeBuffer(self, size)
        self.made.append(buf)
        return buf


# --- size classes ------------------------------------------------------------------------


def test_size_classes_are_few_pages_and_waste_at_most_a_quarter() -> None:
    sizes = [1, 100, 8191, 8193, 40_000, 280_000, 1_000_003, 16 * MiB - 4, 16 * MiB]
    for n in sizes:
        c = size_class(n)
        assert c >= max(n, MIN_CLASS) and c % PAGE == 0
        if n > 32 * KiB:
            assert c <= 1.25 * n
    assert size_class(16 * MiB) == 16 * MiB
    octave = {size_class(n) for n in range(4 * MiB + 1, 8 * MiB + 1, 4099)}
    assert len(octave) == 4  # a tail of any length lands in one of four buffers per octave


# --- the pool ------------------------------------------------------------------------------


def test_leases_reuse_idle_buffers_and_evict_least_recently_used() -> None:
    cma = FakeCma(1 * MiB)
    pool = BufferPool(cma, budget=64 * KiB)
    a, b, c = (pool.lease([16 * KiB]) for _ in range(3))
    for lease in (a, b, c):
        pool.release(lease)
    assert pool.lease([16 * KiB])[0] is c[0]  # the most recent idle buffer of its class
    pool.release(c)
    big = pool.lease([48 * KiB])  # 48 idle + 48 > 64: the two oldest go
    assert a[0].raw.freed and b[0].raw.freed and not c[0].raw.freed
    assert pool.evictions == 2 and pool.allocated == 64 * KiB
    pool.release(big)


def test_a_failed_allocation_is_retried_after_evicting() -> None:
    cma = FakeCma(48 * KiB)  # the board has less than the budget says
    pool = BufferPool(cma, budget=1 * MiB)
    pool.release(pool.lease([16 * KiB, 16 * KiB]))
    got = pool.lease([40 * KiB])  # fails at first: 32 KiB idle are freed, then it fits
    assert got[0].size == 40 * KiB and pool.retries >= 1 and pool.evictions == 2


def test_a_failed_allocation_with_nothing_to_evict_says_so() -> None:
    cma = FakeCma(16 * KiB)
    pool = BufferPool(cma, budget=1 * MiB)
    with pytest.raises(Exception, match="VACCEL_PYNQ_CMA_BYTES=1048576 assumes"):
        pool.lease([64 * KiB])
    assert pool.allocated == 0


def test_a_lease_larger_than_the_budget_names_the_limit() -> None:
    pool = BufferPool(FakeCma(1 * MiB), budget=40 * KiB)
    with pytest.raises(ResourceExhaustedError) as err:
        pool.lease([16 * KiB] * 3, "fpga_mmult")
    assert "VACCEL_PYNQ_CMA_BYTES=40960" in str(err.value) and "fpga_mmult" in str(err.value)


def test_a_lease_that_fits_later_waits_for_other_calls() -> None:
    pool = BufferPool(FakeCma(1 * MiB), budget=64 * KiB)
    held = pool.lease([48 * KiB])
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.lease([32 * KiB])))
    waiter.start()
    time.sleep(0.05)
    assert not got and pool.waits >= 1  # waiting, not failing
    pool.release(held)
    waiter.join(5)
    assert got and pool.allocated <= pool.budget


def test_quarantined_buffers_are_never_reused_and_shrink_the_budget() -> None:
    cma = FakeCma(1 * MiB)
    pool = BufferPool(cma, budget=64 * KiB)
    bad = pool.lease([32 * KiB])
    pool.quarantine(bad)
    again = pool.lease([32 * KiB])
    assert again[0] is not bad[0] and not bad[0].raw.freed
    pool.release(again)
    with pytest.raises(ResourceExhaustedError, match="quarantined by a faulted core"):
        pool.lease([48 * KiB])
    assert pool.free_quarantined() == 32 * KiB and bad[0].raw.freed
    pool.lease([48 * KiB])


# --- through the plugin, on the model's 120 MiB CMA ------------------------------------------


def test_four_mega_element_ops_fit_the_pynq_z1_cma(sim: Any) -> None:
    """The issue's failure: vadd, parallel and arraycopy at 4 Mi elements exhausted CMA."""
    runtime = sim()
    fabric = runtime.plugins[0].fabric
    assert fabric.pool.budget == 112 * MiB  # 120 MiB free, less the 8 MiB margin
    n = 4 * MiB
    a = np.full(n, 1.5, F32)
    b = np.full(n, 2.0, F32)
    ints = np.arange(n, dtype=np.int32)
    with Session(runtime=runtime) as s:
        assert np.array_equal(s.fpga_vadd(a, b), a + b)
        add, mult = s.fpga_parallel(a, b)  # reuses vadd's three 16 MiB buffers
        assert np.array_equal(add, a + b) and np.array_equal(mult, a * b)
        assert np.array_equal(s.fpga_arraycopy(ints), ints)
        assert fabric.pool.allocations == 4
        m = 3 * MiB  # other classes: 4 x 12 MiB more, 112 MiB in all
        add, mult = s.fpga_parallel(a[:m], b[:m])
        assert np.array_equal(add, a[:m] + b[:m])
        m = 5 * MiB // 2  # 2 x 10 MiB more: the least recently used go
        assert np.array_equal(s.fpga_arraycopy(ints[:m]), ints[:m])
    assert fabric.pool.evictions >= 1 and fabric.pool.allocated <= fabric.pool.budget
    assert fabric.board.violations == []


def test_a_budget_above_the_free_cma_is_survived_by_evicting(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_CMA_BYTES=str(200 * MiB))  # the model has 120 MiB
    fabric = runtime.plugins[0].fabric
    n = 4 * MiB
    a = np.ones(n, F32)
    ints = a.astype(np.int32)
    with Session(runtime=runtime) as s:
        assert np.array_equal(s.fpga_vadd(a, a), a + a)  # 3 x 16 MiB
        add, _ = s.fpga_parallel(a[: 3 * MiB], a[: 3 * MiB])  # 4 x 12 MiB: 96 MiB held
        assert np.array_equal(add, a[: 3 * MiB] * 2)
        m = 7 * MiB // 2  # 2 x 14 MiB: under the budget, but over the model's 120 MiB
        assert np.array_equal(s.fpga_arraycopy(ints[:m]), ints[:m])
    assert fabric.pool.retries >= 1  # the model refused, an idle buffer went, then it fit
    assert fabric.board.violations == []


def test_small_budgets_shrink_chunks_and_tiny_ones_name_the_limit(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_CMA_BYTES=str(48 * KiB))
    fabric = runtime.plugins[0].fabric
    a = np.arange(20_000, dtype=F32)
    m = np.ones(64 * 64, F32)
    with Session(runtime=runtime) as s:
        assert np.array_equal(s.fpga_vadd(a, a), a + a)  # 3 buffers of 16 KiB: 4096 per run
        assert fabric.cores["vadd"].runs == 5
        add, mult = s.fpga_parallel(a, a)  # 4 buffers of 12 KiB: 3072 per run
        assert np.array_equal(add, a + a) and np.array_equal(mult, a * a)
        assert fabric.cores["parallel"].runs == 7
        np.testing.assert_allclose(s.fpga_mmult(m, m), np.full(64 * 64, 64.0))  # 3 x 16 KiB
    small = sim(VACCEL_PYNQ_CMA_BYTES=str(40 * KiB))
    with Session(runtime=small) as s, pytest.raises(ResourceExhaustedError) as err:
        s.fpga_mmult(m, m)  # one 64 x 64 tile needs 3 x 16 KiB
    assert "VACCEL_PYNQ_CMA_BYTES=40960" in str(err.value) and "48 KiB" in str(err.value)
    tiny = sim(VACCEL_PYNQ_CMA_BYTES="16384")
    with Session(runtime=tiny) as s, pytest.raises(ResourceExhaustedError) as err:
        s.fpga_vadd([1.0], [2.0])
    assert "VACCEL_PYNQ_CMA_BYTES=16384" in str(err.value) and "24 KiB" in str(err.value)
