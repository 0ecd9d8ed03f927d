"""Faults: timed-out cores, quarantined buffers, overlay reloads, and refused overlays.

A core that does not finish may still be writing: it is marked faulted, the buffers of
its call are quarantined (never reused), and either the overlay is reloaded
(VACCEL_PYNQ_RELOAD_ON_FAULT) or the core says it is unusable. An overlay whose .hwh
register map differs from the driver's is refused at load.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from pynqhelpers import sim as sim  # the fixture

from vaccel import Runtime, Session
from vaccel.errors import DeadlineExceededError, PluginError, PluginFailure
from vaccel.plugins.pynq.regcheck import register_problems
from vaccel.plugins.pynq.registers import ARRAYCOPY, VADD
from vaccel.plugins.pynq.sim import SimViolation

F32 = np.float32


def fabric_of(runtime: Runtime) -> Any:
    return runtime.plugins[0].fabric


# --- timeouts --------------------------------------------------------------------------------


def test_a_hung_core_is_marked_faulted_and_then_unusable(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_SIM_HANG="vadd_0", VACCEL_PYNQ_TIMEOUT="0.1")
    fabric = fabric_of(runtime)
    with Session(runtime=runtime) as s:
        with pytest.raises(DeadlineExceededError) as err:
            s.fpga_vadd([1.0], [2.0])
        assert "vadd_0" in str(err.value) and "ap_done" in str(err.value)
        assert "VACCEL_PYNQ_RELOAD_ON_FAULT" in str(err.value)
        assert fabric.pool.quarantined_bytes == 3 * 8192  # a, b, c: never reused
        started = time.monotonic()
        with pytest.raises(PluginFailure, match="core vadd_0 is unusable") as unusable:
            s.fpga_vadd([1.0], [2.0])
        assert time.monotonic() - started < 0.05  # no second wait on the hung core
        assert "quarantined" in str(unusable.value)
        assert s.fpga_arraycopy([7]) == [7]  # the other cores still work
    assert fabric.board.violations == [] and fabric.board.reloads == 0


def test_reload_on_fault_reloads_the_overlay_and_frees_the_quarantine(sim: Any) -> None:
    runtime = sim(
        VACCEL_PYNQ_SIM_HANG="vadd_0", VACCEL_PYNQ_TIMEOUT="0.1", VACCEL_PYNQ_RELOAD_ON_FAULT="1"
    )
    fabric = fabric_of(runtime)
    with Session(runtime=runtime) as s:
        with pytest.raises(DeadlineExceededError, match="overlay was reloaded"):
            s.fpga_vadd([1.0], [2.0])
        assert fabric.board.reloads == 1 and fabric.pool.quarantined_bytes == 0
        assert s.fpga_vadd([1.0], [2.0]) == [3.0]  # the reload cleared the hang
        assert s.fpga_arraycopy([7]) == [7]
    assert fabric.board.violations == []


def test_a_reload_waits_for_calls_running_on_other_cores(sim: Any) -> None:
    """Reprogramming resets every core: it must not cut a healthy core's run short."""
    runtime = sim(
        VACCEL_PYNQ_SIM_HANG="vadd_0",
        VACCEL_PYNQ_SIM_SLOW="arraycopy_0=0.25",
        VACCEL_PYNQ_TIMEOUT="0.4",
        VACCEL_PYNQ_RELOAD_ON_FAULT="1",
    )
    fabric = fabric_of(runtime)
    ints = np.arange(64, dtype=np.int32)
    results: list[bool] = []

    def copies() -> None:
        with Session(runtime=runtime) as s:
            for _ in range(4):  # 1 s of back-to-back runs, one in flight at the reload
                results.append(bool(np.array_equal(s.fpga_arraycopy(ints), ints)))

    worker = threading.Thread(target=copies)
    worker.start()
    time.sleep(0.05)
    with Session(runtime=runtime) as s, pytest.raises(DeadlineExceededError, match="reloaded"):
        s.fpga_vadd([1.0], [2.0])
    worker.join(10)
    assert results == [True] * 4 and fabric.board.reloads == 1
    assert fabric.board.violations == []


def test_a_failed_reload_leaves_every_core_unusable(sim: Any) -> None:
    runtime = sim(
        VACCEL_PYNQ_SIM_HANG="vadd_0", VACCEL_PYNQ_TIMEOUT="0.1", VACCEL_PYNQ_RELOAD_ON_FAULT="1"
    )
    fabric = fabric_of(runtime)

    def broken() -> None:
        raise RuntimeError("bitstream went missing")

    fabric.board.reload = broken
    with Session(runtime=runtime) as s:
        with pytest.raises(PluginFailure, match="reloading the overlay failed"):
            s.fpga_vadd([1.0], [2.0])
        with pytest.raises(PluginFailure, match="arraycopy_0 is unusable.*bitstream went missing"):
            s.fpga_arraycopy([7])


def _late_writer(sim: Any) -> tuple[Runtime, Any]:
    """vadd_0 finishes 0.3 s after its start, long after the 0.05 s timeout gave up."""
    runtime = sim(VACCEL_PYNQ_SIM_SLOW="vadd_0=0.3", VACCEL_PYNQ_TIMEOUT="0.05")
    return runtime, fabric_of(runtime)


def _keep_busy(s: Session, seconds: float) -> None:
    """Calls on another core that want buffers of the timed-out call's size class."""
    ints = np.arange(100, dtype=np.int32)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert np.array_equal(s.fpga_arraycopy(ints), ints)


def test_a_timed_out_core_that_writes_late_writes_into_quarantined_buffers(sim: Any) -> None:
    runtime, fabric = _late_writer(sim)
    with Session(runtime=runtime) as s:
        with pytest.raises(DeadlineExceededError):
            s.fpga_vadd(np.ones(100, F32), np.ones(100, F32))
        _keep_busy(s, 0.4)  # the late write lands meanwhile, in buffers nobody else has
    assert fabric.board.cores["vadd_0"].runs == 1  # it did finish, and wrote
    assert fabric.board.violations == []


def test_without_quarantine_the_late_write_is_caught(sim: Any) -> None:
    """The defect the quarantine fixes: the model sees the timed-out call's buffers reused."""
    runtime, fabric = _late_writer(sim)
    fabric.pool.quarantine = fabric.pool.release  # the old behaviour: buffers back to the pool
    with Session(runtime=runtime) as s:
        with pytest.raises(DeadlineExceededError):
            s.fpga_vadd(np.ones(100, F32), np.ones(100, F32))
        with pytest.raises(PluginFailure) as err:
            _keep_busy(s, 0.4)
    assert err.type is PluginFailure and SimViolation.__name__ in str(err.value)
    assert "while core(s) vadd_0 use it" in str(err.value)


# --- the register map, checked at load ---------------------------------------------------------


def test_an_overlay_with_32bit_addresses_is_refused(sim: Any) -> None:
    with pytest.raises(PluginError) as err:
        sim(VACCEL_PYNQ_SIM_ADDR32="1")
    text = str(err.value)
    assert "vadd_0" in text and "32-bit m_axi addresses" in text
    assert "config_interface -m_axi_addr64" in text


def _hwh(**regs: tuple[int, int]) -> dict[str, dict[str, int]]:
    base = {"CTRL": (0, 32), "GIER": (4, 32), "IP_IER": (8, 32), "IP_ISR": (12, 32)}
    return {n: {"address_offset": o, "size": s} for n, (o, s) in {**base, **regs}.items()}


def test_register_check_accepts_the_forms_vitis_hls_writes() -> None:
    split = _hwh(a_1=(0x10, 32), a_2=(0x14, 32), b_1=(0x1C, 32), b_2=(0x20, 32),
                 c_1=(0x28, 32), c_2=(0x2C, 32), len=(0x34, 32))  # fmt: skip
    assert register_problems(VADD, split) == []
    wide = _hwh(a=(0x10, 64), b=(0x1C, 64), c=(0x28, 64), len=(0x34, 32))
    assert register_problems(VADD, wide) == []
    renamed = _hwh(in_r_1=(0x10, 32), in_r_2=(0x14, 32), out_r_1=(0x1C, 32),
                   out_r_2=(0x20, 32), len=(0x28, 32))  # fmt: skip
    assert register_problems(ARRAYCOPY, renamed) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"b_1": (0x10, 32), "a_1": (0x1C, 32)}, "0x10 is b_1"),
        ({"len": (0x38, 32)}, "no register at 0x34 for len"),
        ({"scale": (0x40, 32)}, "scale at 0x40 is not an argument"),
        ({"c_2": (0x30, 32)}, "no register at 0x2c"),
    ],
)
def test_register_check_refuses_any_difference(change: dict[str, Any], words: str) -> None:
    good = dict(a_1=(0x10, 32), a_2=(0x14, 32), b_1=(0x1C, 32), b_2=(0x20, 32),
                c_1=(0x28, 32), c_2=(0x2C, 32), len=(0x34, 32))  # fmt: skip
    problems = register_problems(VADD, _hwh(**{**good, **change}))
    assert any(words in p for p in problems), problems


def test_an_overlay_without_a_register_list_is_refused(sim: Any) -> None:
    from vaccel.plugins.pynq import sim as model

    class Bare(model.SimOverlay):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            for entry in self.ip_dict.values():
                entry.pop("registers")

    original = model.SimOverlay
    model.SimOverlay = Bare  # type: ignore[misc]
    try:
        with pytest.raises(PluginError, match="lists no registers"):
            sim()
    finally:
        model.SimOverlay = original  # type: ignore[misc]


def test_violations_reach_the_caller(sim: Any) -> None:
    runtime = sim()
    fabric = fabric_of(runtime)
    fabric.board.violations.append("planted")
    with Session(runtime=runtime) as s, pytest.raises(PluginFailure, match="planted"):
        s.fpga_vadd([1.0], [2.0])
