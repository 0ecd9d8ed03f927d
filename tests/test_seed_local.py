"""The seed's local workflow, command for command, compared line by line."""

from __future__ import annotations

import re
import subprocess

from conftest import VENV_BIN, assert_transcript, seed_console_blocks, tool_env

NOOP_SO = "/usr/local/lib/libvaccel-noop.so"
# Lines we may add: registrations of ops the seed's vAccel did not have.
EXTRA_REGISTRATIONS = re.compile(
    r"<debug> Registered function (Exec with resource|Torch [\w ]+|"
    r"TensorFlow Lite session (load|run|delete)) from plugin \w+"
)


def run_example(*args: str, **env: str) -> list[str]:
    proc = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=tool_env(**env),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout.splitlines()


def test_seed_has_the_transcripts_we_compare() -> None:
    blocks = seed_console_blocks()
    assert "classification tags: This is a dummy classification tag!" in blocks[0]
    assert "9.100000" in blocks[1] and "11.299999" in blocks[3] and "11.299999" in blocks[6]


def test_noop_classify_transcript() -> None:
    ours = run_example("classify", VACCEL_BACKENDS=NOOP_SO, VACCEL_DEBUG_LEVEL="4")
    assert_transcript(ours, seed_console_blocks()[0], EXTRA_REGISTRATIONS)


def test_noop_vector_add_transcript() -> None:
    ours = run_example("pynq_vector_add_generic", VACCEL_BACKENDS=NOOP_SO, VACCEL_DEBUG_LEVEL="4")
    assert_transcript(ours, seed_console_blocks()[1], EXTRA_REGISTRATIONS)


def test_numpy_vector_add_prints_the_boards_results() -> None:
    ours = run_example("pynq_vector_add_generic", VACCEL_PLUGINS="numpy")
    assert ours == [
        "Initialized session with id: 1",
        "2.800000",
        "2.100000",
        "8.500000",
        "3.500000",
        "11.299999",
    ]


def test_classify_n_iterations_and_bad_image() -> None:
    from vaccel.cli.example_support import example_image

    ours = run_example("classify", str(example_image()), "3", VACCEL_PLUGINS="noop")
    assert ours.count("classification tags: This is a dummy classification tag!") == 3
    proc = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", "classify", "/no/such.jpg", "1"],
        capture_output=True,
        text=True,
        env=tool_env(VACCEL_PLUGINS="noop"),
        timeout=60,
    )
    assert proc.returncode == 1 and "/no/such.jpg" in proc.stderr


def test_every_example_runs_on_numpy_and_noop() -> None:
    for plugins in ("numpy", "noop"):
        for name in ("pynq_array_copy", "pynq_mmult", "pynq_parallel", "minmax", "sgemm", "noop"):
            lines = run_example(name, VACCEL_PLUGINS=plugins)
            assert lines[0] == "Initialized session with id: 1", (plugins, name, lines)
    assert run_example("pynq_mmult", VACCEL_PLUGINS="numpy")[1:] == [
        "19.000000",
        "22.000000",
        "43.000000",
        "50.000000",
    ]
    assert (
        run_example(
            "exec", "math", "factorial", VACCEL_PLUGINS="numpy", VACCEL_EXEC_ALLOW="math:factorial"
        )[1]
        == "output: 3628800"
    )
