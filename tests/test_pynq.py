"""The pynq plugin: its ops against the register-level model, its settings, load errors.

Runs in both environments: `.venv` (no pynq: the "not installed" error) and
`.venv-pynq` (Python 3.10 like a PYNQ 3.x image, the real pynq package, numpy<2: the
"no device" errors). The model's own strictness is tested in test_pynq_model.py, the
CMA budget in test_pynq_memory.py, faults in test_pynq_faults.py, threads in
test_pynq_concurrency.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
from typing import Any

import numpy as np
import pytest
from conftest import VENV_BIN, tool_env
from pynqhelpers import sim as sim  # the fixture

from vaccel import Config, Runtime, Session
from vaccel.errors import BadArgumentError, NotSupportedError, PluginError

HAS_PYNQ = importlib.util.find_spec("pynq") is not None
F32 = np.float32


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
    cores = plugin_of(runtime).fabric.cores
    a = RNG.random(2500, dtype=F32)
    m = RNG.random(150 * 150, dtype=F32)
    with Session(runtime=runtime) as s:
        np.testing.assert_array_equal(s.fpga_vadd(a, a), a + a)
        s.fpga_mmult(m, m)
    assert cores["vadd"].runs == 3  # 1000 + 1000 + 500
    assert cores["mmult"].runs == 27  # 3 x 3 output tiles, 3 k-tiles each


def test_buffers_are_reused_and_tails_share_size_classes(sim: Any) -> None:
    runtime = sim()
    pool = plugin_of(runtime).fabric.pool
    a = RNG.random(4096, dtype=F32)
    with Session(runtime=runtime) as s:
        s.fpga_vadd(a, a)
        first = pool.allocations
        for _ in range(5):
            s.fpga_vadd(a, a)
        assert pool.allocations == first == 3
        for n in (4000, 3900, 3100):  # other lengths, same size class: the same buffers
            np.testing.assert_array_equal(s.fpga_vadd(a[:n], a[:n]), a[:n] + a[:n])
        assert pool.allocations == 3
        s.fpga_vadd(a[:100], a[:100])  # the smallest class: new buffers
        assert pool.allocations == 6


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("fpga_vadd", ([], [])),
        ("fpga_parallel", (np.empty(0, F32), np.empty(0, F32))),
        ("fpga_arraycopy", ([],)),
        ("fpga_mmult", ([], [])),
    ],
)
def test_empty_inputs_are_bad_arguments(sim: Any, op: str, args: tuple[Any, ...]) -> None:
    runtime = sim()
    with Session(runtime=runtime) as s, pytest.raises(BadArgumentError, match="empty"):
        getattr(s, op)(*args)
    assert plugin_of(runtime).fabric.pool.allocations == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.ones(5, F32), np.ones(5, F32)),
        (np.ones((2, 8), F32), np.ones((2, 8), F32)),
        (np.ones(16, F32), np.ones((2, 8), F32)),
    ],
)
def test_mmult_wants_square_matrices(sim: Any, a: Any, b: Any) -> None:
    runtime = sim()
    with Session(runtime=runtime) as s, pytest.raises(BadArgumentError, match="square"):
        s.fpga_mmult(a, b)
    assert plugin_of(runtime).fabric.pool.allocations == 0


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
        ({"VACCEL_PYNQ_CMA_BYTES": "lots"}, "VACCEL_PYNQ_CMA_BYTES.*not a number"),
        ({"VACCEL_PYNQ_RELOAD_ON_FAULT": "sometimes"}, "VACCEL_PYNQ_RELOAD_ON_FAULT"),
        ({"VACCEL_PYNQ_SIM_SLOW": "vadd_0=soon"}, "ip=seconds"),
    ],
)
def test_bad_settings(sim: Any, env: dict[str, str], words: str) -> None:
    with pytest.raises(PluginError, match=words):
        sim(**env)


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
