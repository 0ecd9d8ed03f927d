"""`vaccel`: run vAccel's example programs, and inspect, probe and measure agents.

Plugins come from VACCEL_PLUGINS (e.g. VACCEL_PLUGINS=numpy); through an agent,
VACCEL_PLUGINS=rpc and VACCEL_RPC_ADDRESS=tcp://HOST:PORT. `vaccel COMMAND --help`
describes each command.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import traceback
from typing import Any, NoReturn

from vaccel import __version__
from vaccel.config import DEFAULT_RPC_ADDRESS
from vaccel.errors import UnavailableError, VaccelError

from . import examples
from .example_support import LocalError, count

#: Exit statuses: a failure of any kind, and an interruption by Ctrl-C (128 + SIGINT).
FAILED, INTERRUPTED = 1, 130

ADDRESS_HELP = (
    "the agent: tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH or vsock://CID:PORT "
    f"(default: $VACCEL_RPC_ADDRESS, else {DEFAULT_RPC_ADDRESS})"
)


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions filled paragraph by paragraph, and every default shown after its help."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            textwrap.fill(
                " ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent
            )
            for paragraph in text.strip().split("\n\n")
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not text
            or "%(default)" in text
            or "default:" in text
            or default in (None, False, argparse.SUPPRESS)
            or isinstance(action, argparse._VersionAction)
        ):
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            return f"{text} (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(FAILED, f"{self.prog}: {message} (see {self.prog} --help)\n")


def debugging() -> bool:
    """Whether tracebacks are wanted: VACCEL_LOG_LEVEL (or VACCEL_DEBUG_LEVEL) is 4."""
    level = os.environ.get("VACCEL_LOG_LEVEL") or os.environ.get("VACCEL_DEBUG_LEVEL") or ""
    return level.strip() == "4"


# ---------------------------------------------------------------------- commands


def _info(ns: argparse.Namespace) -> int:
    from .info import info

    return info(ns.address, ns.timeout)


def _example(ns: argparse.Namespace) -> int:
    from vaccel.runtime import bootstrap

    runtime = bootstrap()  # the plugins of VACCEL_PLUGINS; a PluginError names the bad one
    try:
        return examples.run(ns.example, ns)
    except VaccelError as exc:
        raise from_agent(exc, runtime) from None


def _ping(ns: argparse.Namespace) -> int:
    from .ping import ping

    return ping(ns.address, ns.count, ns.timeout)


def _health(ns: argparse.Namespace) -> int:
    from .health import health

    return health(ns.address, ns.timeout)


def _top(ns: argparse.Namespace) -> int:
    from .top import top

    return top(ns.address, ns.interval, ns.once, ns.timeout)


def from_agent(exc: VaccelError, runtime: Any) -> VaccelError:
    """`exc`, saying which agent it concerns when the rpc plugin made the call.

    An error about one of the agent's settings (its plugins, its exec allow-list) says
    where to set it: on the agent, not here.
    """
    remote = [p for p in getattr(runtime, "plugins", []) if getattr(p, "name", "") == "rpc"]
    if not remote or isinstance(exc, (UnavailableError, LocalError)):
        return exc  # local, or already naming the agent it could not reach
    address = runtime.config.rpc_address
    message = exc.message
    if "agent at " not in message:  # say which agent, unless the message already does
        message = f"the agent at {address}: {message}"
    if "VACCEL_PLUGINS" in exc.message:
        message += (
            " (that is the agent's setting: start vaccel-agent with --plugins NAME, "
            "or VACCEL_PLUGINS=NAME where it runs)"
        )
    elif "the peer accepts at most" in exc.message:
        message += " (the agent's --max-message limit)"
    elif "VACCEL_EXEC_ALLOW" in exc.message and "agent" not in exc.message:
        message += " (VACCEL_EXEC_ALLOW is the agent's setting: set it where vaccel-agent runs)"
    return type(exc)(exc.code, message)


def parser() -> argparse.ArgumentParser:
    """The command line of `vaccel` (except `vaccel bench`, whose options are its own)."""
    p = Parser(prog="vaccel", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"vaccel {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(  # type: ignore[no-any-return]
            name, help=text, description=description or text, formatter_class=HelpFormatter
        )

    ex = command(
        "example",
        "run one of vAccel's example programs",
        "Run one of vAccel's example programs, with vAccel's output. The plugins come from "
        "VACCEL_PLUGINS; `vaccel example NAME --help` gives each one's arguments.",
    )
    names = ex.add_subparsers(dest="example", metavar="NAME", title="examples", required=True)
    examples.add_parsers(names, HelpFormatter)
    ex.set_defaults(fn=_example)

    inf = command(
        "info",
        "the plugins and ops available, here or on an agent",
        "List the plugins this process loads (VACCEL_PLUGINS) and their ops; under the rpc "
        "plugin, or given ADDRESS, ask the agent what it serves, its version and its limits.",
    )
    inf.add_argument("address", metavar="ADDRESS", nargs="?", help="ask this agent")
    inf.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the agent")
    inf.set_defaults(fn=_info)

    pi = command(
        "ping",
        "reach an agent and time round trips",
        "Connect to an agent (with the handshake and the credentials of VACCEL_RPC_TOKEN and "
        "VACCEL_RPC_TLS_*), print its name, then time COUNT round trips (PING frames).",
    )
    pi.add_argument("address", metavar="ADDRESS", nargs="?", help=ADDRESS_HELP)
    pi.add_argument("-c", "--count", type=count, default=5, help="round trips to time")
    pi.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the connection"
    )
    pi.set_defaults(fn=_ping)

    he = command(
        "health",
        "probe an agent: exit 0 only while it serves",
        "Print SERVING (exit status 0), NOT_SERVING (plugins loading, or draining after "
        "SIGTERM) or UNREACHABLE (exit status 1, with the reason on stderr). Needs no token.",
    )
    he.add_argument("address", metavar="ADDRESS", nargs="?", help=ADDRESS_HELP)
    he.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    he.set_defaults(fn=_health)

    to = command(
        "top",
        "a live view of an agent: calls, latency, budgets",
        "Calls per second, errors and latency by op, traffic, connections, sessions and "
        "budgets against their limits, refreshed every INTERVAL seconds (needs rich: "
        "pip install '.[top]' from the pyvaccel clone).",
    )
    to.add_argument("address", metavar="ADDRESS", nargs="?", help=ADDRESS_HELP)
    to.add_argument("-n", "--interval", type=float, default=1.0, help="seconds between frames")
    to.add_argument("--once", action="store_true", help="print one frame and exit")
    to.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for answers")
    to.set_defaults(fn=_top)

    command("bench", "the benchmark table (vaccel bench --help)")
    return p


def _arguments(argv: list[str]) -> list[str]:
    """`vaccel example NAME -- --model ...` still works: the `--` is dropped."""
    if len(argv) > 2 and argv[0] == "example" and argv[2] == "--":
        return [*argv[:2], *argv[3:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vaccel` command; returns its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\nvaccel: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except BrokenPipeError:  # `vaccel info | head`: the reader went away
        sys.stderr.close()
        return FAILED


def _main(argv: list[str]) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    if argv[:1] == ["bench"]:  # its options are its own (see vaccel.cli.bench)
        from .bench.main import main as bench_main

        return _guarded("bench", bench_main, argv[1:])
    p = parser()
    ns = p.parse_args(_arguments(argv))
    if ns.command is None:
        p.print_help(sys.stderr)
        return FAILED
    name = ns.command if ns.command != "example" else f"example {ns.example}"
    return _guarded(name, ns.fn, ns)


def _guarded(name: str, fn: Any, arg: Any) -> int:
    """Run a command; a failure is one line on stderr and exit status 1.

    The traceback is shown only at VACCEL_LOG_LEVEL=4.
    """
    try:
        return int(fn(arg))
    except VaccelError as exc:
        if debugging():
            traceback.print_exc()
        print(f"vaccel {name}: {exc}", file=sys.stderr, flush=True)
        return FAILED
    except (KeyboardInterrupt, BrokenPipeError, SystemExit):
        raise
    except Exception as exc:
        if debugging():
            raise
        detail = str(exc) or type(exc).__name__
        print(
            f"vaccel {name}: {type(exc).__name__}: {detail} "
            "(VACCEL_LOG_LEVEL=4 shows the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
