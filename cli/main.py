"""`vaccel`: info, example, ping, health, top and bench."""

from __future__ import annotations

import argparse
import sys

from vaccel.errors import VaccelError

from . import examples


def _info(ns: argparse.Namespace) -> int:
    from .info import info

    return info(ns.address, ns.timeout)


def _example(ns: argparse.Namespace) -> int:
    return examples.run(ns.name, ns.args)


def _ping(ns: argparse.Namespace) -> int:
    from .ping import ping

    return ping(ns.address, ns.count)


def _health(ns: argparse.Namespace) -> int:
    from .health import health

    return health(ns.address, ns.timeout)


def _top(ns: argparse.Namespace) -> int:
    from .top import top

    return top(ns.address, ns.interval, ns.once, ns.timeout)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vaccel` command."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its options are its own (see vaccel.cli.bench)
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="vaccel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inf = sub.add_parser("info", help="plugins and ops available, here or on an agent")
    inf.add_argument("address", nargs="?", default=None, help="ask this agent (agent.info)")
    inf.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for it")
    inf.set_defaults(fn=_info)
    ex = sub.add_parser("example", help="run one of the seed's example programs")
    ex.add_argument("name", choices=sorted(examples.EXAMPLES))
    ex.add_argument("args", nargs="*")
    ex.set_defaults(fn=_example)
    pi = sub.add_parser("ping", help="reach an agent and measure round trips")
    pi.add_argument("address", nargs="?", default=None)
    pi.add_argument("-c", "--count", type=int, default=5)
    pi.set_defaults(fn=_ping)
    he = sub.add_parser("health", help="probe an agent: exit 0 only while it serves")
    he.add_argument("address", nargs="?", default=None, help="default: $VACCEL_RPC_ADDRESS")
    he.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    he.set_defaults(fn=_health)
    to = sub.add_parser("top", help="a live view of an agent: calls, latency, budgets")
    to.add_argument("address", nargs="?", default=None, help="default: $VACCEL_RPC_ADDRESS")
    to.add_argument("-n", "--interval", type=float, default=1.0, help="seconds between frames")
    to.add_argument("--once", action="store_true", help="print one frame and exit")
    to.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for answers")
    to.set_defaults(fn=_top)
    sub.add_parser("bench", help="the benchmark table (vaccel bench --help)")
    ns = parser.parse_args(argv)
    try:
        return int(ns.fn(ns))
    except VaccelError as exc:
        print(f"vaccel {ns.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
