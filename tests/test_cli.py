"""The `vaccel` command as a user meets it: versions, help for every command and example
argument (with defaults), examples' options without `--`, one-line errors with exit
status 1, Ctrl-C, errors that come from an agent, sizes that cannot fit in memory, and
an unwritable log file."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_proc import AgentProcess, clean_env, start_agent

from vaccel import __version__
from vaccel.cli import example_support, examples
from vaccel.cli.main import HelpFormatter, parser

BIN = Path(sys.executable).parent
VACCEL = str(BIN / "vaccel")


def vaccel(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """`vaccel ARGS` in a child process with a clean environment plus `env`."""
    return subprocess.run(
        [VACCEL, *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=timeout,
        check=False,
    )


def one_line_error(run: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single stderr line of a failed command, checked for `words`."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def bare_agent() -> Iterator[AgentProcess]:
    """An agent with no plugins at all."""
    proc = start_agent("tcp://127.0.0.1:0", plugins="")
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def numpy_agent() -> Iterator[AgentProcess]:
    proc = start_agent("tcp://127.0.0.1:0", plugins="numpy")
    yield proc
    assert proc.stop() == 0


# ---------------------------------------------------------------------- versions and help


def test_versions() -> None:
    assert vaccel("--version").stdout.strip() == f"vaccel {__version__}"
    for command in ("vaccel-agent", "vaccelrt-agent"):
        run = subprocess.run(
            [str(BIN / command), "--version"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0 and run.stdout.strip() == f"vaccel-agent {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "vaccel", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout.strip() == f"vaccel {__version__}"


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the `vaccel` command line, with its command words."""
    todo = [("vaccel", parser())]
    while todo:
        name, p = todo.pop()
        yield name, p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word, child in action.choices.items():
                    todo.append((f"{name} {word}", child))


def test_every_argument_has_help_and_its_default_shown() -> None:
    seen = set()
    for name, p in _parsers():
        seen.add(name)
        assert p.description, f"{name} has no description"
        assert isinstance(p.formatter_class, type) and issubclass(p.formatter_class, HelpFormatter)
        text = p.format_help()
        assert "seed" not in text.lower(), name
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name}: {action.dest} has no help text"
            if action.default not in (None, False, argparse.SUPPRESS) and action.dest != "version":
                assert f"(default: {action.default})" in " ".join(text.split()), (
                    name,
                    action.dest,
                )
    assert {f"vaccel example {n}" for n in examples.EXAMPLES} <= seen
    assert {"vaccel ping", "vaccel health", "vaccel info", "vaccel top"} <= seen


def test_example_help_lists_usage_and_arguments() -> None:
    listing = vaccel("example", "--help")
    assert listing.returncode == 0
    for name in examples.EXAMPLES:
        assert name in listing.stdout
    sgemm = vaccel("example", "sgemm", "--help")
    assert sgemm.returncode == 0
    assert "usage: vaccel example sgemm [-h] [N]" in sgemm.stdout
    assert "(default: 64)" in sgemm.stdout
    classify = vaccel("example", "classify", "--help").stdout
    for option in ("--model FILE", "--labels FILE", "--preprocess FILE", "IMAGE", "N"):
        assert option in classify
    ping = vaccel("ping", "--help").stdout
    assert "round trips" in ping and "(default: 5)" in ping and "$VACCEL_RPC_ADDRESS" in ping


def test_agent_help_has_no_unknown_words() -> None:
    run = subprocess.run(
        [str(BIN / "vaccel-agent"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "seed" not in run.stdout.lower()


# ---------------------------------------------------------------------- running examples


def test_example_options_need_no_double_dash(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    image = example_support.example_image()
    for args in (
        ["classify", "--model", str(model), str(image), "2"],
        ["classify", "--", "--model", str(model), str(image), "2"],  # the old spelling
    ):
        run = vaccel("example", *args, VACCEL_PLUGINS="noop")
        assert run.returncode == 0, run.stderr
        assert run.stdout.count("classification tags:") == 2


def test_errors_are_one_line_with_status_1(tmp_path: Path) -> None:
    one_line_error(vaccel("example", "classify", "/no/such.jpg"), "/no/such.jpg")
    one_line_error(vaccel("example", "noop", VACCEL_PLUGINS="bogus"), "bogus", "VACCEL_PLUGINS")
    one_line_error(vaccel("example", "sgemm", "0"), "at least 1", "--help")
    one_line_error(vaccel("example", "nosuchexample"), "nosuchexample")
    one_line_error(vaccel("example", "torch", VACCEL_PLUGINS="noop"), "--model")
    one_line_error(vaccel("ping", "unix:///nonexistent.sock"), "cannot reach")
    one_line_error(vaccel("info", "nonsense://x"), "vaccel info")


def test_traceback_only_at_debug_level() -> None:
    quiet = vaccel("example", "classify", "/no/such.jpg", VACCEL_PLUGINS="noop")
    assert "Traceback" not in quiet.stderr
    loud = vaccel(
        "example", "classify", "/no/such.jpg", VACCEL_PLUGINS="noop", VACCEL_LOG_LEVEL="4"
    )
    assert loud.returncode == 1 and "Traceback" in loud.stderr
    assert any(line.startswith("vaccel example classify:") for line in loud.stderr.splitlines())


@pytest.mark.parametrize(("example", "size"), [("sgemm", "1000000"), ("minmax", "100000000000000")])
def test_examples_refuse_sizes_that_cannot_fit(example: str, size: str) -> None:
    run = vaccel("example", example, size, VACCEL_PLUGINS="numpy", timeout=30)
    line = one_line_error(run, "needs", "available")
    assert "MemoryError" not in line and "Initialized session" not in run.stdout


def test_tensor_examples_refuse_shapes_that_cannot_fit(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    run = vaccel(
        "example",
        "tflite",
        "--model",
        str(model),
        "--shape",
        "100000,100000,1000",
        VACCEL_PLUGINS="noop",
    )
    one_line_error(run, "needs", "available")


def test_ctrl_c_exits_130_with_one_line() -> None:
    with socket.socket() as silent:  # accepts, never answers: ping waits
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        proc = subprocess.Popen(
            [VACCEL, "ping", address, "--timeout", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        conn, _ = silent.accept()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        conn.close()
    assert proc.returncode == 130, err
    assert err.strip() == "vaccel: interrupted"


def test_an_unwritable_log_file_is_reported_once_and_lines_go_to_stderr() -> None:
    run = vaccel(
        "example",
        "noop",
        VACCEL_PLUGINS="noop",
        VACCEL_LOG_LEVEL="4",
        VACCEL_LOG_FILE="/nonexistent-dir/vaccel.log",
    )
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "cannot write the log file" in line]
    assert len(warnings) == 1 and "/nonexistent-dir/vaccel.log" in warnings[0]
    assert "VACCEL_LOG_FILE" in warnings[0] and "Traceback" not in run.stderr
    assert "<debug> Registered plugin noop" in run.stderr  # the lines are not lost


def test_the_agent_reports_an_unwritable_log_file() -> None:
    agent = start_agent(
        "tcp://127.0.0.1:0",
        plugins="numpy",
        VACCEL_LOG_LEVEL="3",
        VACCEL_LOG_FILE="/nonexistent-dir/agent.log",
    )
    try:
        run = vaccel("example", "noop", VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS=agent.addresses[0])
        assert run.returncode == 0, run.stderr
    finally:
        assert agent.stop() == 0
    log = agent.stderr_text()
    assert log.count("cannot write the log file /nonexistent-dir/agent.log") == 1
    assert "<info>" in log and "Traceback" not in log


# ---------------------------------------------------------------------- through an agent


def test_errors_from_the_agent_say_so_and_name_its_setting(
    bare_agent: AgentProcess, numpy_agent: AgentProcess
) -> None:
    bare = bare_agent.addresses[0]
    line = one_line_error(
        vaccel("example", "noop", VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS=bare),
        f"the agent at {bare}",
        "--plugins",
    )
    assert "where it runs" in line
    there = numpy_agent.addresses[0]
    line = one_line_error(
        vaccel(
            "example",
            "exec",
            "math",
            "factorial",
            VACCEL_PLUGINS="rpc",
            VACCEL_RPC_ADDRESS=there,
            VACCEL_EXEC_ALLOW="math:factorial",  # set here: it is the agent's that counts
        ),
        f"the agent at {there}",
        "VACCEL_EXEC_ALLOW",
    )
    assert "agent" in line.split("VACCEL_EXEC_ALLOW", 1)[1]
    local = one_line_error(
        vaccel(
            "example", "classify", "/no/such.jpg", VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS=there
        ),
        "/no/such.jpg",
    )
    assert "the agent at" not in local  # found here, before any call
    down = one_line_error(
        vaccel("example", "noop", VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS="tcp://127.0.0.1:1"),
        "cannot reach the agent at tcp://127.0.0.1:1",
    )
    assert "the agent at tcp://127.0.0.1:1:" not in down.replace("reach the agent at", "")


# ---------------------------------------------------------------------- the agent's own messages


AGENT = str(BIN / "vaccel-agent")


def test_agent_help_shows_every_default() -> None:
    """Every setting's flag in `vaccel-agent --help` says its default ("not set" where
    there is none), and the help the user sees is that text."""
    from vaccel.server.main import parser as agent_parser

    settings = [
        a
        for a in agent_parser()._actions
        if a.option_strings and a.dest not in ("help", "version", "config")
    ]
    assert len(settings) > 30
    for action in settings:
        assert action.help and "default" in action.help, (action.option_strings, action.help)
    text = subprocess.run(
        [AGENT, "--help"], capture_output=True, text=True, env=clean_env(), timeout=30
    ).stdout
    assert text.count("default") >= len(settings)


def test_listen_errors_name_the_address(tmp_path: Path) -> None:
    where = f"unix://{tmp_path}/no/such/dir/agent.sock"
    run = subprocess.run(
        [AGENT, "-a", where], capture_output=True, text=True, env=clean_env(), timeout=30
    )
    assert run.returncode == 1, run.stderr
    assert f"vaccel-agent: cannot listen on {where}" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_agent_warns_when_it_has_no_plugins(bare_agent: AgentProcess) -> None:
    assert "no plugins loaded" in bare_agent.stderr_text()


def test_a_peer_that_is_not_an_agent_is_named_so() -> None:
    """A client that reaches an HTTP server instead of an agent says so in one line."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        run = vaccel("ping", f"tcp://127.0.0.1:{port}", timeout=30)
    finally:
        server.close()
    one_line_error(run, f"tcp://127.0.0.1:{port} is not a pyvaccel agent")
