"""A vaccel-python 0.3 application runs unchanged, locally and through an agent.

tests/data/vaccel_python_app.py uses only vaccel-python's API (every op, the three
tensor families, directory and library resources, Arg, genop, FFIError codes). It runs
as its own process, configured as vAccel is: from VACCEL_PLUGINS (libvaccel-noop.so, or
libvaccel-vsock.so and VACCEL_RPC_ADDRESS to reach a real agent serving noop) or from
`bootstrap(Config(...))`. Its output must be the same everywhere, and vAccel 0.8's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_proc import AgentProcess, start_agent
from conftest import ROOT, tool_env

APP = ROOT / "tests" / "data" / "vaccel_python_app.py"
NINE = "9.100000381469727"
EIGHTEEN = "18.200000762939453"

#: What the application prints with vAccel 0.8's noop plugin (vadd and parallel: the seed's).
EXPECTED = [
    "flags: ('PluginType', 5)",
    "noop: None",
    "sgemm: [0.0, 0.0, 0.0, 0.0]",
    "classify: ('This is a dummy classification tag!', 'This is a dummy imgname!')",
    "detect: 'This is a dummy imgname!'",
    "segment: 'This is a dummy imgname!'",
    "pose: 'This is a dummy imgname!'",
    "depth: 'This is a dummy imgname!'",
    f"vadd: [{', '.join([NINE] * 5)}]",
    f"parallel: ([{NINE}, {NINE}], [{EIGHTEEN}, {EIGHTEEN}])",
    f"mmult: [{NINE}, {NINE}, {NINE}]",
    "arraycopy: [1, 2, 3]",
    "minmax: ([7.0, -1.0, 3.5], -1.0, 10000.0)",
    "exec lists: [[1, 2, 3]]",
    "exec arg: ([2.5], 2.5)",
    "exec none: None",
    "exec_with_resource: [[4, 5]]",
    "genop: None",
    f"genop out: [{NINE}, {NINE}, {NINE}]",
    "arg: (<ArgType.CUSTOM: 29>, <ArgType.RAW: 0>)",
    "tf load: (0, 'Operation handled by noop plugin')",
    "tf run: ([('vaccel.ops.tf', 'FLOAT', [1, 3], [1.0, 2.0, 3.0])], 0, "
    "'Operation handled by noop plugin')",
    "tf status type: True",
    "tf unload: 0",
    "tflite load: None",
    "tflite run: ([('vaccel.ops.tf.lite', 'FLOAT32', [2, 2], [0.0, 1.0, 2.0, 3.0])], 0)",
    "tflite type: 'FLOAT32'",
    "tflite unload: None",
    "torch load: None",
    "torch run: [('vaccel.ops.torch', 'LONG', [3], [1, 2, 3])]",
    "unregistered: 'EPERM'",
    "wrong type: 'EINVAL'",
    "not a lib: 'EINVAL'",
    "has: False",
]


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    proc = start_agent("tcp://127.0.0.1:0", plugins="noop")
    yield proc
    assert proc.stop() == 0, proc.stderr_text()


def run_app(workdir: Path, *args: str, **env: str) -> tuple[list[str], str]:
    workdir.mkdir()
    done = subprocess.run(
        [sys.executable, str(APP), str(workdir), *args],
        env=tool_env(**env),
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


@pytest.mark.parametrize("how", ["environment", "bootstrap-config"])
def test_the_application_runs_unchanged_here_and_through_an_agent(
    tmp_path: Path, agent: AgentProcess, how: str
) -> None:
    config = ["--config"] if how == "bootstrap-config" else []
    plugin_var = "APP_PLUGINS" if config else "VACCEL_PLUGINS"
    local, local_err = run_app(tmp_path / "local", *config, **{plugin_var: "libvaccel-noop.so"})
    remote, remote_err = run_app(
        tmp_path / "remote",
        *config,
        **{plugin_var: "libvaccel-vsock.so", "VACCEL_RPC_ADDRESS": agent.addresses[0]},
    )
    assert "location: local" in local_err and "resource remote: False" in local_err
    assert "location: remote" in remote_err and "resource remote: True" in remote_err
    assert local == EXPECTED
    assert remote == local


def test_the_application_fails_as_vaccel_does_without_a_plugin(tmp_path: Path) -> None:
    """No VACCEL_PLUGINS: no plugin (vAccel 0.8's default), so the first op fails with
    ENOTSUP as an FFIError the application could catch."""
    workdir = tmp_path / "none"
    workdir.mkdir()
    done = subprocess.run(
        [sys.executable, str(APP), str(workdir)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode != 0
    assert "NotSupportedError" in done.stderr and "noop" in done.stderr
