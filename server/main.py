"""`vaccel-agent -a ADDR [-a ADDR ...]` (also `vaccelrt-agent`, the seed's name)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from vaccel.compat import run
from vaccel.config import Config
from vaccel.errors import VaccelError
from vaccel.protocol.address import AddressError, parse_address
from vaccel.runtime import Runtime

from .agent import Agent


def _size(text: str) -> int:
    """A byte count with an optional K, M or G suffix (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    scale = units.get(text[-1:].upper(), 1)
    number = text[:-1] if scale > 1 else text
    if not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 512M or 4G")
    return int(number) * scale


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (VACCEL_LOOP=asyncio opts out), else the stdlib loop."""
    if os.environ.get("VACCEL_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop

            return uvloop.new_event_loop  # type: ignore[no-any-return]
        except ImportError:
            pass
    return asyncio.new_event_loop


async def _serve(agent: Agent) -> None:
    bound = await agent.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.request_stop)
    for address in bound:
        print(f"vaccel ttRPC server started. address: {address}", flush=True)
    print("Server is running, press Ctrl + C to exit", flush=True)
    await agent.serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaccel-agent", description=__doc__)
    parser.add_argument(
        "-a",
        "--address",
        action="append",
        default=None,
        help="tcp://HOST:PORT, unix:///PATH or vsock://CID:PORT (repeatable); "
        "default $VACCEL_AGENT_ENDPOINT",
    )
    parser.add_argument("--max-connections", type=int, default=4096)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads for blocking plugin work (default: cores + 4, at most 32)",
    )
    parser.add_argument(
        "--max-memory",
        type=_size,
        default=None,
        help="bytes of request buffers the agent holds at once, all clients together "
        "(e.g. 4G; default: half of this machine's memory)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=65536,
        help="sessions the agent keeps for all clients together",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds to let in-flight calls finish on SIGTERM",
    )
    ns = parser.parse_args(argv)
    try:
        config = Config.from_env()
        raw = ns.address or [config.agent_endpoint]
        addresses = [parse_address(a) for a in raw]
        runtime = Runtime(config, max_workers=ns.workers)
    except (VaccelError, AddressError) as exc:
        print(f"vaccel-agent: {exc}", file=sys.stderr)
        return 2
    agent = Agent(
        runtime,
        addresses,
        max_connections=ns.max_connections,
        drain_timeout=ns.drain_timeout,
        max_memory=ns.max_memory,
        max_sessions=ns.max_sessions,
    )
    try:
        run(_serve(agent), loop_factory())
    except OSError as exc:
        print(f"vaccel-agent: cannot listen: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
