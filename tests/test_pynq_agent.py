"""The seed's setup: an agent whose plugin is pynq serves the rpc plugin of another host
(here the register-level model stands in for the board, behind a real agent process).

The model raises on any memory or protocol violation, so a race inside the agent shows
up as a failed call here, besides any wrong answer.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
from agent_proc import AgentProcess, start_agent
from conftest import VENV_BIN, tool_env
from test_pynq_concurrency import MATRICES, SIZES, STREAM_OPS, run_mixed

from vaccel import Config, Runtime, Session


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    proc = start_agent(
        "tcp://127.0.0.1:0", plugins="pynq", VACCEL_PYNQ_BOARD="sim", VACCEL_PYNQ_CHUNK="4096"
    )
    yield proc
    assert proc.stop() == 0


def test_seed_remote_vector_add_through_a_pynq_agent(agent: AgentProcess) -> None:
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", "pynq_vector_add_generic"],
        capture_output=True,
        text=True,
        timeout=60,
        env=tool_env(
            VACCEL_BACKENDS="/usr/local/lib/libvaccel-vsock.so", VACCEL_VSOCK=agent.addresses[0]
        ),
    ).stdout.splitlines()
    assert out[1:] == ["2.800000", "2.100000", "8.500000", "3.500000", "11.299999"]


def test_every_fpga_op_remote_matches_numpy(agent: AgentProcess) -> None:
    rng = np.random.default_rng(9)
    a = rng.random(10_000, dtype=np.float32)
    b = rng.random(10_000, dtype=np.float32)
    m = rng.random(100 * 100, dtype=np.float32)
    runtime = Runtime(Config(plugins="rpc", rpc_address=agent.addresses[0], log_level=0))
    try:
        with Session(runtime=runtime) as s:
            np.testing.assert_array_equal(s.fpga_vadd(a, b), a + b)
            add, mult = s.fpga_parallel(a, b)
            np.testing.assert_array_equal(add, a + b)
            np.testing.assert_array_equal(mult, a * b)
            assert s.fpga_arraycopy(list(range(50))) == list(range(50))
            np.testing.assert_allclose(
                s.fpga_mmult(m, m).reshape(100, 100),
                m.reshape(100, 100).astype(np.float64) @ m.reshape(100, 100),
                rtol=1e-4,
            )
    finally:
        runtime.close()


def test_threads_mixing_every_op_and_size_through_the_agent() -> None:
    """The issue's failure: four threads mixing ops and sizes corrupted the shared cache."""
    proc = start_agent(
        "tcp://127.0.0.1:0",
        plugins="pynq",
        VACCEL_PYNQ_BOARD="sim",
        VACCEL_PYNQ_CHUNK="4096",
        VACCEL_PYNQ_CMA_BYTES=str(160 * 1024),  # room for about two calls at once
        VACCEL_PYNQ_SIM_LATENCY="8",
    )
    runtime = Runtime(Config(plugins="rpc", rpc_address=proc.addresses[0], log_level=0))
    try:
        calls = run_mixed(lambda: Session(runtime=runtime), threads=8)
        assert calls == 2 * (len(STREAM_OPS) * len(SIZES) + len(MATRICES))
        with Session(runtime=runtime) as s:  # and the agent is still healthy
            assert s.fpga_vadd([5.0, 1.0], [-2.2, 1.1]) == pytest.approx([2.8, 2.1])
    finally:
        runtime.close()
        assert proc.stop() == 0
