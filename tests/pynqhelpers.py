"""Shared by the pynq tests: runtimes whose pynq plugin drives the register-level model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vaccel import Config, Runtime


@pytest.fixture
def sim() -> Iterator[Any]:
    """A factory of runtimes on the model (VACCEL_PYNQ_BOARD=sim), each with the extra
    VACCEL_* settings given as keywords; all are closed at the end of the test.

    A test module takes it with `from pynqhelpers import sim as sim`.
    """
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
