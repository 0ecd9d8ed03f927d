"""`vaccel`: info, example, ping and bench."""

from __future__ import annotations

import argparse
import sys

from vaccel.errors import VaccelError

from . import examples


def _info(_: argparse.Namespace) -> int:
    from vaccel.catalogue import CATALOGUE
    from vaccel.runtime import default_runtime

    runtime = default_runtime()
    if not runtime.plugins:
        print("no plugins loaded (set VACCEL_PLUGINS, e.g. VACCEL_PLUGINS=numpy)")
    for plugin, ops in runtime.operations():
        print(f"plugin {plugin.display_name} ({plugin.type!r}, version {plugin.version})")
        for op in ops:
            print(f"  {CATALOGUE[op].method:<20} {CATALOGUE[op].title}")
    return 0


def _example(ns: argparse.Namespace) -> int:
    return examples.run(ns.name, ns.args)


def _ping(ns: argparse.Namespace) -> int:
    from .ping import ping

    return ping(ns.address, ns.count)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vaccel` command."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its options are its own (see vaccel.cli.bench)
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="vaccel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="plugins and ops available").set_defaults(fn=_info)
    ex = sub.add_parser("example", help="run one of the seed's example programs")
    ex.add_argument("name", choices=sorted(examples.EXAMPLES))
    ex.add_argument("args", nargs="*")
    ex.set_defaults(fn=_example)
    pi = sub.add_parser("ping", help="reach an agent and measure round trips")
    pi.add_argument("address", nargs="?", default=None)
    pi.add_argument("-c", "--count", type=int, default=5)
    pi.set_defaults(fn=_ping)
    sub.add_parser("bench", help="the benchmark table (vaccel bench --help)")
    ns = parser.parse_args(argv)
    try:
        return int(ns.fn(ns))
    except VaccelError as exc:
        print(f"vaccel {ns.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
