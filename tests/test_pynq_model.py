"""The register-level model is strict, and independent of the driver it checks.

Its register map comes from the HLS sources (checked here against hls/*.cpp and
hls/REGISTERS.md), its cores keep the ap_ctrl_hs protocol, check MMIO accesses as pynq
does, and report every way a core or the CPU can corrupt memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaccel import Config, Runtime, Session
from vaccel.plugins.pynq import simlayout
from vaccel.plugins.pynq.driver import HlsCore
from vaccel.plugins.pynq.memory import Buffer
from vaccel.plugins.pynq.registers import CORES, VADD, CoreSpec
from vaccel.plugins.pynq.sim import SimBoard, SimViolation
from vaccel.plugins.pynq.simcore import MAX_LEN, N_MAX
from vaccel.plugins.pynq.simmemory import CMA_BASE, CMA_SIZE, DDR_SIZE, POISON

HLS = Path(__file__).resolve().parent.parent / "hls"
F32 = np.float32
MiB = 1 << 20
START, DONE, IDLE, READY = 1, 2, 4, 8


def program(core: Any, pointers: dict[str, Any], scalars: dict[str, int]) -> None:
    """Write arguments by the model's own layout (not the driver's)."""
    for name, buf in pointers.items():
        words = core.layout.arg(name).words
        address = buf if isinstance(buf, int) else buf.physical_address
        core.write(words[0], address & 0xFFFF_FFFF)
        if len(words) == 2:
            core.write(words[1], address >> 32)
    for name, value in scalars.items():
        core.write(core.layout.arg(name).words[0], value & 0xFFFF_FFFF)


def finish(core: Any, limit: int = 100) -> int:
    """Poll the control register until ap_done; returns the reads it took."""
    for i in range(1, limit + 1):
        if core.read(0) & DONE:
            return i
    raise AssertionError(f"{core.name} not done after {limit} reads")


def vadd_board(n: int = 4, **kw: Any) -> tuple[SimBoard, Any, list[Any]]:
    board = SimBoard(ips=["vadd_0"], **kw)
    bufs = [board.allocate(shape=(n,), dtype=F32) for _ in range(3)]
    return board, board.overlay.vadd_0, bufs


def start_vadd(core: Any, a: Any, b: Any, c: Any, length: int = 4) -> None:
    """Give the vadd core its pointers (buffers or addresses) and length; set ap_start."""
    program(core, {"a": a, "b": b, "c": c}, {"len": length})
    core.write(0, START)


# --- the register map: from the sources, independent of the driver -------------------------


@pytest.mark.parametrize("kernel", list(simlayout.KERNEL_SIGNATURES))
def test_model_signatures_and_pragmas_are_the_hls_sources(kernel: str) -> None:
    source = (HLS / f"{kernel}.cpp").read_text()
    proto = re.search(r'extern "C" void \w+\([^)]*\)', source)
    assert proto is not None
    assert " ".join(proto.group(0).split()) == simlayout.KERNEL_SIGNATURES[kernel]
    _, args = simlayout.parse_signature(proto.group(0))
    for arg in args:
        if arg.pointer:
            assert re.search(rf"m_axi port = {arg.name} offset = slave bundle = \w+", source)
        else:
            assert re.search(rf"s_axilite port = {arg.name}\b", source)
    assert re.search(r"s_axilite port = return", source)
    limit = re.search(r"constexpr int (MAX_LEN|N_MAX) = (.+);", source)
    assert limit is not None and eval(limit.group(2)) == (N_MAX if kernel == "mmult" else MAX_LEN)


def test_build_script_pins_64bit_addresses() -> None:
    tcl = (HLS / "build_hls.tcl").read_text()
    assert re.search(r"^\s*config_interface -m_axi_addr64\b", tcl, re.M)


def _registers_md() -> dict[str, dict[str, tuple[int, ...]]]:
    """hls/REGISTERS.md's tables: kernel -> argument -> offsets."""
    tables: dict[str, dict[str, tuple[int, ...]]] = {}
    kernel = ""
    for line in (HLS / "REGISTERS.md").read_text().splitlines():
        head = re.match(r"## (\w+) \(IP", line)
        if head:
            kernel = head.group(1)
            tables[kernel] = {}
        row = re.match(r"\| (0x[0-9A-F]{2}(?: / 0x[0-9A-F]{2})?) \| (\w+)", line)
        if kernel and row:
            offsets = tuple(int(o, 16) for o in row.group(1).split(" / "))
            tables[kernel][row.group(2)] = offsets
    return tables


def test_the_documented_maps_are_the_layout_rule() -> None:
    documented = _registers_md()
    for kernel, layout in simlayout.kernel_layouts().items():
        assert documented[kernel] == {p.arg.name: p.words for p in layout.args}


def test_the_driver_map_agrees_with_the_independent_one() -> None:
    for kernel, layout in simlayout.kernel_layouts().items():
        spec = CORES[kernel]
        derived = {p.arg.name: p.words[0] for p in layout.args}
        assert derived == {**spec.pointers, **spec.scalars}


def test_layout_rule_with_32bit_addresses() -> None:
    layout = simlayout.kernel_layouts(addr64=False)["vadd"]
    assert [(p.arg.name, p.words) for p in layout.args] == [
        ("a", (0x10,)),
        ("b", (0x18,)),
        ("c", (0x20,)),
        ("len", (0x28,)),
    ]
    names = simlayout.hwh_registers(simlayout.kernel_layouts()["arraycopy"])
    assert {n: r["address_offset"] for n, r in names.items() if r["address_offset"] >= 0x10} == {
        "in_r_1": 0x10,
        "in_r_2": 0x14,
        "out_r_1": 0x1C,
        "out_r_2": 0x20,
        "len": 0x28,
    }


# --- the handshake ----------------------------------------------------------------------------


def test_handshake_start_held_idle_low_then_done_and_ready_clear_on_read() -> None:
    board, core, (a, b, c) = vadd_board(latency=4)
    assert core.read(0) == IDLE | READY
    assert core.read(0) == IDLE  # ap_ready cleared on read
    start_vadd(core, a, b, c)
    seen = [core.read(0) for _ in range(5)]
    assert seen[:3] == [START] * 3  # ap_start held until ready, ap_idle low
    assert seen[3] == DONE | IDLE | READY
    assert seen[4] == IDLE  # ap_done and ap_ready were cleared by the read that saw them
    assert core.runs == 1 and board.violations == []


def test_computes_only_on_start_and_needs_cache_syncs() -> None:
    board, core, (a, b, c) = vadd_board()
    a[:] = [1, 2, 3, 4]
    b[:] = [10, 20, 30, 40]
    program(core, {"a": a, "b": b, "c": c}, {"len": 4})
    assert core.runs == 0  # arguments alone do nothing
    a.sync_to_device()
    b.sync_to_device()
    core.write(0, START)
    finish(core)
    assert c.tolist() == [0, 0, 0, 0]  # not invalidated yet: the CPU view is stale
    c.sync_from_device()
    assert c.tolist() == [11, 22, 33, 44]


def test_unflushed_inputs_reach_the_core_only_in_part() -> None:
    board, core, (a, b, c) = vadd_board(4096)
    a[:] = 1.0
    b[:] = 0.0
    b.sync_to_device()  # a is never flushed: only randomly evicted lines reach DDR
    start_vadd(core, a, b, c, 4096)
    finish(core)
    c.sync_from_device()
    assert 0 < np.count_nonzero(c) < 4096


def test_dirty_lines_in_an_output_buffer_overwrite_results() -> None:
    board, core, (a, b, c) = vadd_board(4096)
    a[:] = 1.0
    b[:] = 2.0
    c[:] = -1.0  # written by the CPU and never flushed: dirty lines
    a.sync_to_device()
    b.sync_to_device()
    start_vadd(core, a, b, c, 4096)
    finish(core)
    c.sync_from_device()
    stale = np.count_nonzero(c == -1.0)
    assert 0 < stale < 4096 and np.all((c == 3.0) | (c == -1.0))


def test_mmio_is_checked_as_pynq_checks_it() -> None:
    board, core, _ = vadd_board()
    with pytest.raises(ValueError, match="Data type must be int or bytes"):
        core.write(0x10, np.uint32(5))  # pynq wants a Python int
    with pytest.raises(ValueError, match="Data type must be int or bytes"):
        core.write(0x10, True)
    with pytest.raises(MemoryError, match="Unaligned write"):
        core.write(0x12, 1)
    with pytest.raises(MemoryError, match="Unaligned read"):
        core.read(0x13)
    with pytest.raises(ValueError, match="negative"):
        core.write(-4, 1)
    with pytest.raises(OverflowError):
        core.write(0x10, 1 << 32)
    with pytest.raises(OverflowError):
        core.write(0x10, -1)
    with pytest.raises(IndexError):
        core.write(0x1_0000, 1)
    core.write(0x10, (0x1234).to_bytes(4, "little") + (0x1).to_bytes(4, "little"))
    assert (core.read(0x10), core.read(0x14)) == (0x1234, 1)
    assert board.violations == []


def test_writes_to_reserved_offsets_are_violations() -> None:
    board, core, _ = vadd_board()
    with pytest.raises(SimViolation, match="reserved offset 0x18"):
        core.write(0x18, 1)  # a's reserved word
    assert "0x18" in board.violations[0]
    with pytest.raises(SimViolation, match="earlier violation"):  # and they stick
        board.allocate(shape=(4,), dtype=F32)


def test_writes_while_busy_are_violations() -> None:
    board, core, (a, b, c) = vadd_board(latency=50)
    start_vadd(core, a, b, c)
    with pytest.raises(SimViolation, match="while the core is busy"):
        core.write(0x34, 2)


def test_hung_core_stays_busy_until_the_overlay_is_reloaded() -> None:
    board, core, (a, b, c) = vadd_board(hang={"vadd_0"})
    start_vadd(core, a, b, c)
    assert all(core.read(0) == START for _ in range(10_000))
    board.reload()
    assert core.read(0) & IDLE and core.runs == 0
    start_vadd(core, a, b, c)  # registers were reset too
    finish(core)
    assert board.violations == []


# --- contiguous memory ------------------------------------------------------------------------


def test_cma_is_120_mib_inside_512_mib_of_ddr_and_fails_as_pynq_does() -> None:
    board = SimBoard(ips=[])
    assert board.cma_free() == 120 * MiB
    bufs = [board.allocate(shape=(16 * MiB,), dtype=np.uint8) for _ in range(7)]
    for buf in bufs:
        assert CMA_BASE <= buf.physical_address < CMA_BASE + CMA_SIZE <= DDR_SIZE
        assert buf.physical_address % 4096 == 0
    with pytest.raises(RuntimeError, match="BO allocation failed"):
        board.allocate(shape=(16 * MiB,), dtype=np.uint8)  # 8 MiB left
    bufs[1].freebuffer()
    bufs[3].freebuffer()  # 40 MiB free, but in pieces of 16, 16 and 8
    assert board.cma_free() == 40 * MiB
    with pytest.raises(RuntimeError, match="BO allocation failed"):
        board.allocate(shape=(24 * MiB,), dtype=np.uint8)
    assert board.allocate(shape=(16 * MiB,), dtype=np.uint8).physical_address == (
        bufs[1].physical_address
    )


def test_freed_memory_is_poisoned_and_new_buffers_are_zeroed() -> None:
    board = SimBoard(ips=[])
    a = board.allocate(shape=(1024,), dtype=np.uint32)
    a[:] = 7
    a.sync_to_device()
    address = a.physical_address
    a.freebuffer()
    assert board.memory.ddr[address : address + 8].view("<u4").tolist() == [POISON] * 2
    b = board.allocate(shape=(1024,), dtype=np.uint32)
    assert b.physical_address == address and not b.any()


def test_freeing_a_buffer_a_core_uses_is_a_violation() -> None:
    board, core, (a, b, c) = vadd_board(latency=50)
    start_vadd(core, a, b, c)
    with pytest.raises(SimViolation, match="use after free"):
        c.freebuffer()


def test_a_core_writing_into_reallocated_memory_is_caught() -> None:
    board, core, (a, b, c) = vadd_board(latency=50)
    start_vadd(core, a, b, c)
    with pytest.raises(SimViolation):
        c.freebuffer()
    board.violations.clear()  # go on, to see what the core does next
    d = board.allocate(shape=(4,), dtype=F32)
    assert d.physical_address == c.physical_address
    with pytest.raises(SimViolation, match="wrote c .* reallocated as buffer #4"):
        finish(core)


def test_cache_maintenance_while_a_core_runs_is_a_violation() -> None:
    board, core, (a, b, c) = vadd_board(latency=50)
    start_vadd(core, a, b, c)
    with pytest.raises(SimViolation, match="sync_from_device on buffer #3 .* while core"):
        c.sync_from_device()


# --- bad pointers complete and corrupt ----------------------------------------------------------


def test_a_length_past_the_buffer_completes_and_is_caught() -> None:
    board, core, (a, b, c) = vadd_board(5)  # 20 bytes, then guard words to the page end
    start_vadd(core, a, b, c, 6)
    with pytest.raises(SimViolation, match="past the end of buffer #3") as err:
        finish(core)
    assert "guard words" in str(err.value)
    assert core.runs == 1 and core.run is None  # completed, never hung


@pytest.mark.parametrize(
    ("address", "where"),
    [
        (0x0010_0000, "memory the kernel owns"),
        (0x4000_0000, "outside the 512 MiB of DDR"),
        (CMA_BASE + CMA_SIZE - 4096, "free CMA memory"),
    ],
)
def test_wild_pointers_complete_and_are_caught(address: int, where: str) -> None:
    board, core, (a, b, c) = vadd_board()
    start_vadd(core, a, b, address)
    with pytest.raises(SimViolation, match=where):
        finish(core)


def test_a_nonzero_high_address_word_is_caught() -> None:
    board, core, (a, b, c) = vadd_board()
    start_vadd(core, a, b, c.physical_address | (1 << 32))
    with pytest.raises(SimViolation, match="high address word"):
        finish(core)


# --- arithmetic as the cores do it ------------------------------------------------------------


def test_subnormals_are_flushed_to_zero() -> None:
    tiny = np.float32(1e-39)  # subnormal in float32
    runtime = Runtime(Config(plugins="pynq", log_level=0, env={"VACCEL_PYNQ_BOARD": "sim"}))
    try:
        with Session(runtime=runtime) as s:
            out = s.fpga_vadd(np.array([tiny, 1.0, 2.0], F32), np.array([0.0, tiny, 1e-20], F32))
            np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
            add, mult = s.fpga_parallel(np.array([1e-20, 3.0], F32), np.array([1e-20, tiny], F32))
            np.testing.assert_array_equal(mult, [0.0, 0.0])  # 1e-40 would be subnormal
            np.testing.assert_array_equal(add, [F32(2e-20), 3.0])
    finally:
        runtime.close()


# --- the model catches offset errors in a driver ------------------------------------------------


def _drive(spec: CoreSpec, board: SimBoard, n: int = 8) -> tuple[Any, np.ndarray[Any, Any]]:
    core = HlsCore(board.overlay.vadd_0, "vadd_0", spec, timeout=1.0)
    bufs = {k: Buffer(board.allocate(shape=(n * 4,), dtype=np.uint8), n * 4) for k in "abc"}
    a, b, c = (bufs[k].view(np.dtype(F32), n) for k in "abc")
    a[:] = np.arange(n)
    b[:] = 100
    a.sync_to_device()
    b.sync_to_device()
    core.run(bufs, {"len": n})
    c.sync_from_device()
    return core, np.array(c)


def test_the_model_catches_a_driver_offset_written_into_a_reserved_word() -> None:
    wrong = CoreSpec("vadd", {"a": 0x10, "b": 0x18, "c": 0x28}, {"len": 0x34}, VADD.dtype, 64)
    with pytest.raises(SimViolation, match="reserved offset 0x18"):
        _drive(wrong, SimBoard(ips=["vadd_0"]))


def test_the_model_catches_a_driver_map_on_32bit_cores() -> None:
    with pytest.raises(SimViolation, match="reserved offset 0x14"):
        _drive(VADD, SimBoard(ips=["vadd_0"], addr32=True))


def test_swapped_pointers_give_wrong_results_on_the_model() -> None:
    _, good = _drive(VADD, SimBoard(ips=["vadd_0"]))
    assert good.tolist() == [100 + i for i in range(8)]
    swapped = CoreSpec("vadd", {"a": 0x28, "b": 0x1C, "c": 0x10}, {"len": 0x34}, VADD.dtype, 64)
    _, bad = _drive(swapped, SimBoard(ips=["vadd_0"]))
    assert bad.tolist() != good.tolist()
