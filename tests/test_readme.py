"""The README's commands work as written: every shell and Python block runs, in order,
in one scratch folder, except those marked `<!-- not-run: REASON -->` (a board, a VM,
root, the network); `<!-- run-with: VAR=VALUE ... -->` gives a block the environment its
text asks for. `make demo`'s program runs too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV = ROOT / ".venv"
RUN = {"sh": "bash", "bash": "bash", "shell": "bash", "python": "python"}
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"^<!-- (?P<kind>not-run|run-with):\s*(?P<text>.*?)\s*-->$")


@dataclass
class Block:
    """One fenced block of the README."""

    line: int
    lang: str
    body: str
    not_run: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def runs(self) -> bool:
        return self.lang in RUN and self.not_run is None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks(text: str) -> list[Block]:
    """The README's fenced blocks, with the markers on the lines just before them."""
    found = []
    lines = text.splitlines()
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        block = Block(line, m.group("lang"), m.group("body"))
        above = line - 2  # the index of the line above the fence
        while above >= 0 and (mark := MARKER.match(lines[above].strip())):
            if mark.group("kind") == "not-run":
                block.not_run = mark.group("text")
            else:
                block.env.update(kv.split("=", 1) for kv in mark.group("text").split())
            above -= 1
        found.append(block)
    return found


BLOCKS = blocks(README.read_text())
RUNNABLE = [b for b in BLOCKS if b.runs]

pytestmark = pytest.mark.skipif(
    Path(sys.prefix).resolve() != VENV.resolve(),
    reason="the README's blocks run once, in .venv (make install), the environment they use",
)


def test_the_readme_has_blocks_that_run_and_reasons_for_those_that_do_not() -> None:
    assert any(b.lang == "python" for b in RUNNABLE) and any(b.lang == "sh" for b in RUNNABLE)
    for block in BLOCKS:
        if block.not_run is not None:
            assert block.not_run, f"{block}: a not-run marker needs a reason"
            assert block.lang in RUN, f"{block}: only shell and Python blocks run anyway"
    markers = len(re.findall(r"^<!-- not-run:", README.read_text(), re.MULTILINE))
    assert markers == sum(b.not_run is not None for b in BLOCKS), "a marker not above a block"
    python = [b for b in RUNNABLE if b.lang == "python"]
    assert any("asyncio.run(main())" in b.body for b in python)


def test_no_install_from_the_package_registry_by_name() -> None:
    text = README.read_text()
    assert "pip install pyvaccel" not in text and "pip install 'pyvaccel" not in text
    assert "pip install ." in text and "pip install '.[pynq]'" in text
    assert "seed" not in text.lower()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder that sees the repository's .venv and build/ as the README expects."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(VENV)
    (folder / "build").symlink_to(ROOT / "build")
    return folder


def _env(block: Block) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACCEL_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(block.env)
    return env


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_block_runs_as_written(block: Block, workdir: Path) -> None:
    if block.lang == "python":
        command = [str(VENV / "bin" / "python"), "-c", block.body]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.body]
    run = subprocess.run(
        command, cwd=workdir, env=_env(block), capture_output=True, text=True, timeout=540
    )
    assert run.returncode == 0, f"{block} failed:\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr, f"{block}:\n{run.stderr}"


def test_what_make_demo_runs() -> None:
    run = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "vaccel.cli.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("VACCEL_")},
    )
    assert run.returncode == 0, run.stderr
    assert "11.299999" in run.stdout and "agent stopped (exit status 0)" in run.stdout
