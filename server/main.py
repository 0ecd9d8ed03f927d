"""`vaccel-agent -a ADDR [-a ADDR ...]` (also `vaccelrt-agent`, vAccel's name).

Serves the plugins of VACCEL_PLUGINS (or `--plugins`) on every address at once. Every
setting is a flag and a key of the `--config` TOML file (`vaccel-agent --help`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable

from vaccel import __version__, log
from vaccel.buffers import POOL
from vaccel.compat import run
from vaccel.config import Config
from vaccel.errors import VaccelError
from vaccel.protocol.address import Address, AddressError, parse_address
from vaccel.runtime import Runtime

from .agent import Agent
from .config import AgentConfig, add_arguments, from_arguments
from .metrics import metrics_host_port
from .metrics import require as require_metrics
from .supervisor import supervise
from .workers import WorkerAgent, WorkerSpec

BANNER = "pyvaccel agent started. address: {address}"
METRICS_BANNER = "pyvaccel agent metrics: {url}"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (VACCEL_LOOP=asyncio opts out), else the stdlib loop."""
    if os.environ.get("VACCEL_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop

            return uvloop.new_event_loop  # type: ignore[no-any-return]
        except ImportError:
            print("vaccel-agent: uvloop is not installed; using the stdlib event loop", flush=True)
    return asyncio.new_event_loop


async def _serve(agent: Agent, addresses: list[object], announce: bool = True) -> None:
    bound = await agent.start(addresses)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.request_stop)
    loop.add_signal_handler(signal.SIGHUP, agent.reload)
    if announce:  # a worker of --processes leaves this to its parent
        for address in bound:
            print(BANNER.format(address=address), flush=True)
        if agent.metrics is not None:
            print(METRICS_BANNER.format(url=agent.metrics.url), flush=True)
        print("Server is running, press Ctrl + C to exit", flush=True)
    await agent.serve()


def parser() -> argparse.ArgumentParser:
    """The command line of vaccel-agent."""
    p = argparse.ArgumentParser(
        prog="vaccel-agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"vaccel-agent {__version__}")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vaccel-agent`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    ns = parser().parse_args(argv)
    worker = WorkerSpec.from_env()
    try:
        config = from_arguments(ns)
        env = Config.from_env()
        if config.plugins is not None:
            env.plugins = config.plugins
        addresses = [parse_address(a) for a in (config.address or [env.agent_endpoint])]
        if config.metrics_address and worker is None:
            metrics_host_port(config.metrics_address)
            require_metrics()
        if config.processes > 1 and worker is None:
            return _supervise(config, argv, addresses)
        runtime = Runtime(env, max_workers=config.workers)
    except (VaccelError, AddressError, ValueError) as exc:
        print(f"vaccel-agent: {exc}", file=sys.stderr)
        return 2
    if not runtime.plugins:
        log.warning(
            "vaccel-agent: no plugins loaded (set VACCEL_PLUGINS or --plugins on the agent, "
            "e.g. --plugins numpy): every call will fail"
        )
        print(
            "vaccel-agent: warning: no plugins loaded; set VACCEL_PLUGINS or --plugins",
            file=sys.stderr,
            flush=True,
        )
    if worker is None:  # a worker sizes its pool from its own share (WorkerAgent)
        POOL.limit = config.pool_share()
    agent = Agent(runtime, config) if worker is None else WorkerAgent(runtime, config, worker)
    code = 0
    try:
        run(_serve(agent, list(addresses), announce=worker is None), loop_factory())
    except (OSError, ValueError) as exc:
        where = ", ".join(str(a) for a in addresses)
        print(f"vaccel-agent: cannot listen on {where}: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        runtime.close()
    _exit_even_if_plugin_work_is_stuck(code)
    return code


def _supervise(config: AgentConfig, argv: list[str], addresses: list[Address]) -> int:
    """`--processes N`: the parent of N workers (vaccel.server.workers)."""
    try:
        return asyncio.run(supervise(config, argv, addresses, BANNER))
    except (OSError, ValueError) as exc:
        where = ", ".join(str(a) for a in addresses)
        print(f"vaccel-agent: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _exit_even_if_plugin_work_is_stuck(code: int) -> None:
    """Exit now if pool threads still run plugin work (the drain timeout bounds the exit)."""
    stuck = [t for t in threading.enumerate() if t.name.startswith("vaccel-op") and t.is_alive()]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
