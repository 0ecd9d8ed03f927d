"""The fixtures the inference tests share: an agent serving every inference plugin, and
runtimes that run each test here and then through that agent.

A test module takes them with `from inference_fixtures import agent as agent` and
`runtime = runtime_fixture("onnx")` (the plugins the local runtime loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agent_proc import AgentProcess, start_agent
from inference_data import AGENT_PLUGINS, runtimes

from vaccel import Runtime


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    """One agent per test module, serving every inference plugin (AGENT_PLUGINS)."""
    proc = start_agent("tcp://127.0.0.1:0", plugins=AGENT_PLUGINS)
    yield proc
    assert proc.stop() == 0


def runtime_fixture(local_plugins: str) -> Any:
    """A `runtime` fixture: a runtime loading `local_plugins` here, then one whose rpc
    plugin calls the module's agent (each test runs with both)."""

    @pytest.fixture(params=["local", "remote"], name="runtime")
    def runtime(request: Any, agent: AgentProcess) -> Iterator[Runtime]:
        yield from runtimes(request.param, local_plugins, agent)

    return runtime
