"""The pynq plugin: its driver against the register-level model, and its load errors.

Runs in both environments: `.venv` (no pynq: the "not installed" error) and
`.venv-pynq` (the real pynq package, numpy<2: the "no device" errors).
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import VENV_BIN, tool_env
from vaccel.plugins.pynq.registers import AP_DONE, AP_IDLE, AP_START, CTRL, VADD
from vaccel.plugins.pynq.sim import SimBoard

from vaccel import Config, Runtime, Session
from vaccel.errors import DeadlineExceededError, NotSupportedError, PluginError

HAS_PYNQ = importlib.util.find_spec("pynq") is not None
F32 = np.float32


@pytest.fixture
def sim() -> Iterator[Any]:
    made: list[Runtime] = []

    def factory(**env: str) -> Runtime:
        runtime = Runtime(
            Config(plugins="pynq", log_level=0, env={"VACCEL_PYNQ_BOARD": "sim", **env})
        )
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        runtime.close()


def plugin_of(runtime: Runtime) -> Any:
    return runtime.plugins[0]


RNG = np.random.default_rng(5)


@pytest.mark.parametrize("n", [1, 5, 1000, 70_000])
def test_vadd_parallel_arraycopy_match_numpy(sim: Any, n: int) -> None:
    a = RNG.random(n, dtype=F32)
    b = RNG.random(n, dtype=F32)
    ints = RNG.integers(-(2**31), 2**31 - 1, n, dtype=np.int32)
    with Session(runtime=sim()) as s:
        np.testing.assert_array_equal(s.fpga_vadd(a, b), a + b)
        add, mult = s.fpga_parallel(a, b)
        np.testing.assert_array_equal(add, a + b)
        np.testing.assert_array_equal(mult, a * b)
        np.testing.assert_array_equal(s.fpga_arraycopy(ints), ints)


@pytest.mark.parametrize("n", [1, 2, 64, 65, 150])
def test_mmult_matches_numpy(sim: Any, n: int) -> None:
    a = RNG.random(n * n, dtype=F32)
    b = RNG.random(n * n, dtype=F32)
    with Session(runtime=sim()) as s:
        out = s.fpga_mmult(a, b)
    expected = (a.reshape(n, n).astype(np.float64) @ b.reshape(n, n)).reshape(-1)
    np.testing.assert_allclose(out, expected, rtol=1e-4)


def test_seed_vector_add_on_the_model(sim: Any) -> None:
    with Session(runtime=sim()) as s:
        out = s.fpga_vadd([5.0, 1.0, 2.1, 1.2, 5.2], [-2.2, 1.1, 6.4, 2.3, 6.1])
    assert [f"{v:f}" for v in out] == ["2.800000", "2.100000", "8.500000", "3.500000", "11.299999"]


def test_chunking_and_tiling_count_runs(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_CHUNK="1000")
    cores = plugin_of(runtime).cores
    a = RNG.random(2500, dtype=F32)
    m = RNG.random(150 * 150, dtype=F32)
    with Session(runtime=runtime) as s:
        np.testing.assert_array_equal(s.fpga_vadd(a, a), a + a)
        s.fpga_mmult(m, m)
    assert cores["vadd"].runs == 3  # 1000 + 1000 + 500
    assert cores["mmult"].runs == 27  # 3 x 3 output tiles, 3 k-tiles each


def test_buffers_are_reused_for_same_sizes(sim: Any) -> None:
    runtime = sim()
    cache = plugin_of(runtime).cache
    a = RNG.random(4096, dtype=F32)
    with Session(runtime=runtime) as s:
        s.fpga_vadd(a, a)
        first = cache.allocations
        for _ in range(5):
            s.fpga_vadd(a, a)
        assert cache.allocations == first == 3
        s.fpga_vadd(a[:100], a[:100])
        assert cache.allocations == 6


def test_core_that_never_finishes_times_out(sim: Any) -> None:
    runtime = sim(VACCEL_PYNQ_SIM_HANG="vadd_0", VACCEL_PYNQ_TIMEOUT="0.2")
    with Session(runtime=runtime) as s:
        with pytest.raises(DeadlineExceededError) as err:
            s.fpga_vadd([1.0], [2.0])
        assert "vadd_0" in str(err.value) and "ap_done" in str(err.value)
        assert s.fpga_arraycopy([7]) == [7]  # the other cores still work


def test_missing_core_is_a_load_error(sim: Any) -> None:
    with pytest.raises(PluginError) as err:
        sim(VACCEL_PYNQ_SIM_IPS="vadd_0,mmult_0")
    assert "'arraycopy_0'" in str(err.value) and "vadd_0" in str(err.value)
    assert "VACCEL_PYNQ_CORES" in str(err.value)


def test_cores_can_be_renamed_or_left_out(sim: Any) -> None:
    runtime = sim(
        VACCEL_PYNQ_SIM_IPS="vadd_1,mmult_0", VACCEL_PYNQ_CORES="vadd=vadd_1,arraycopy=,parallel="
    )
    with Session(runtime=runtime) as s:
        assert s.fpga_vadd([1.0], [1.0]) == [2.0]
        with pytest.raises(NotSupportedError, match="pynq"):
            s.fpga_arraycopy([1])


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VACCEL_PYNQ_CORES": "fft=fft_0"}, "op=ip"),
        ({"VACCEL_PYNQ_TIMEOUT": "soon"}, "not a number"),
        ({"VACCEL_PYNQ_CHUNK": "-4"}, "positive"),
        ({"VACCEL_PYNQ_BOARD": "zcu104"}, "expected 'pynq'"),
    ],
)
def test_bad_settings(sim: Any, env: dict[str, str], words: str) -> None:
    with pytest.raises(PluginError, match=words):
        sim(**env)


# --- the model itself is strict, so the driver's correctness is what the tests see ------


def test_model_computes_only_on_start_and_needs_cache_syncs() -> None:
    board = SimBoard(ips=["vadd_0"])
    core = board.overlay.vadd_0
    a, b, c = (board.allocate(shape=(4,), dtype=F32) for _ in range(3))
    a[:] = [1, 2, 3, 4]
    b[:] = [10, 20, 30, 40]
    for name, buf in (("a", a), ("b", b), ("c", c)):
        core.write(VADD.pointers[name], buf.physical_address & 0xFFFFFFFF)
        core.write(VADD.pointers[name] + 4, buf.physical_address >> 32)
    core.write(VADD.scalars["len"], 4)
    assert core.runs == 0 and core.read(CTRL) & AP_IDLE  # arguments alone do nothing
    core.write(CTRL, AP_START)  # inputs never flushed: the core sees zeros
    assert core.read(CTRL) & AP_DONE and not core.read(CTRL) & AP_DONE  # clear on read
    c.sync_from_device()
    assert c.tolist() == [0, 0, 0, 0]
    a.sync_to_device()
    b.sync_to_device()
    core.write(CTRL, AP_START)
    assert c.tolist() == [0, 0, 0, 0]  # not invalidated yet: the CPU view is stale
    c.sync_from_device()
    assert c.tolist() == [11, 22, 33, 44]


def test_model_faults_on_wrong_address_or_length() -> None:
    board = SimBoard(ips=["vadd_0"])
    core = board.overlay.vadd_0
    a = board.allocate(shape=(4,), dtype=F32)
    for name in ("a", "b", "c"):
        core.write(VADD.pointers[name], a.physical_address)
    core.write(VADD.scalars["len"], 5000)  # longer than the buffer
    core.write(CTRL, AP_START)
    assert not core.read(CTRL) & AP_DONE and "not a buffer" in core.faults[0]


# --- loading without a board ----------------------------------------------------------


@pytest.mark.skipif(HAS_PYNQ, reason="pynq is installed in this environment")
def test_without_the_pynq_package() -> None:
    with pytest.raises(PluginError) as err:
        Runtime(Config(plugins="pynq", log_level=0))
    assert "pynq package" in str(err.value) and "rpc" in str(err.value)


@pytest.mark.skipif(not HAS_PYNQ, reason="needs the pynq package (make test-pynq)")
def test_with_pynq_but_no_bitstream() -> None:
    with pytest.raises(PluginError, match="VACCEL_PYNQ_BITSTREAM"):
        Runtime(Config(plugins="pynq", log_level=0))


@pytest.mark.skipif(not HAS_PYNQ, reason="needs the pynq package (make test-pynq)")
def test_with_pynq_but_no_device(tmp_path: Any) -> None:
    bit = tmp_path / "overlay.bit"
    bit.write_bytes(b"\0" * 64)
    with pytest.raises(PluginError, match=r"\.hwh"):
        Runtime(Config(plugins="pynq", log_level=0, env={"VACCEL_PYNQ_BITSTREAM": str(bit)}))
    (tmp_path / "overlay.hwh").write_text("<xml/>")
    with pytest.raises(PluginError, match="no FPGA device"):
        Runtime(Config(plugins="pynq", log_level=0, env={"VACCEL_PYNQ_BITSTREAM": str(bit)}))


def test_vaccel_info_shows_the_plugin() -> None:
    ok = subprocess.run(
        [str(VENV_BIN / "vaccel"), "info"],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(VACCEL_PLUGINS="pynq", VACCEL_PYNQ_BOARD="sim"),
    )
    assert ok.returncode == 0 and "plugin pynq" in ok.stdout and "fpga_mmult" in ok.stdout
    bad = subprocess.run(
        [str(VENV_BIN / "vaccel"), "info"],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(VACCEL_PLUGINS="pynq"),
    )
    assert bad.returncode == 1 and "pynq" in bad.stderr
