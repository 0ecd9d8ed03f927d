"""Shared fixtures: runtimes with chosen plugins, and the seed document."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaccel import Config, Runtime
from vaccel.cli.spawn import clean_env

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "vaccel-pynq.md"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def make_runtime() -> Iterator[object]:
    """A factory of runtimes, all closed at the end of the test."""
    made: list[Runtime] = []

    def factory(plugins: str, **kw: object) -> Runtime:
        runtime = Runtime(Config(plugins=plugins, log_level=0, **kw))  # type: ignore[arg-type]
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        runtime.close()


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours, minus VACCEL_*, plus `extra`."""
    return clean_env(**extra)


_TIMESTAMP = re.compile(r"^\d{4}\.\d\d\.\d\d-\d\d:\d\d:\d\d\.\d\d - ")
_NORMALISE = [
    (re.compile(r"Created top-level rundir: \S+"), "Created top-level rundir: RUNDIR"),
    (re.compile(r"Image size: \d+B"), "Image size: NB"),
    (re.compile(r"len_img: \d+"), "len_img: N"),
]


def normalise(line: str) -> str:
    """A transcript line without its timestamp and with run-specific values masked."""
    line = _TIMESTAMP.sub("", line.rstrip("\n"))
    for pattern, repl in _NORMALISE:
        line = pattern.sub(repl, line)
    return line


def seed_console_blocks() -> list[list[str]]:
    """The seed's ```console blocks, normalised, prompts dropped."""
    text = SEED.read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    return [
        [normalise(ln) for ln in b.splitlines() if "$ " not in ln and ln.strip()] for b in blocks
    ]


def assert_transcript(ours: list[str], seed: list[str], extra_ok: re.Pattern[str]) -> None:
    """Every seed line appears in ours, in order; ours adds only lines matching `extra_ok`."""
    ours = [normalise(ln) for ln in ours if ln.strip()]
    i = 0
    for line in ours:
        if i < len(seed) and line == seed[i]:
            i += 1
        elif not extra_ok.fullmatch(line):
            raise AssertionError(
                f"unexpected line {line!r} (next seed line {seed[i : i + 1]})\n" + "\n".join(ours)
            )
    assert i == len(seed), f"seed line not found: {seed[i]!r}\nours:\n" + "\n".join(ours)


def _loop_factories() -> dict[str, Any]:
    import asyncio

    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # no uvloop wheel (32-bit ARM): the stdlib loop only
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


LOOP_FACTORIES = _loop_factories()


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    """Async tests marked `both_loops` run under the stdlib loop and uvloop, others stdlib."""
    if item.get_closest_marker("both_loops"):
        return LOOP_FACTORIES
    return {"asyncio": LOOP_FACTORIES["asyncio"]}
