"""`vaccel bench` / `make bench`: the remote path measured against same-run baselines.

Starts a real agent (numpy and noop plugins) and baseline peers (a uvloop echo server, a
blocking-socket bulk server), then runs each phase: latency, round trips, throughput,
bandwidth, the first call after idle, many clients, ops of about 1 ms, inference, the
cost of TLS, and `--processes` scaling. A phase that fails is recorded (with the agent's
log) and the others still run; the table and, with `--json`, the JSON always come out.
A closing summary lists every floor missed; `--strict` exits 1 if any was, or a phase
failed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from vaccel.compat import run
from vaccel.config import Config
from vaccel.runtime import Runtime

from ..spawn import SpawnedAgent, clean_env
from . import extra, measure
from .report import floors, render

Phase = Callable[[measure.Context], Awaitable[dict[str, Any]]]
PHASES: dict[str, Phase] = {
    "latency": measure.latency,
    "roundtrips": measure.roundtrips,
    "throughput": measure.throughput,
    "bandwidth": measure.bandwidth,
    "first_call": measure.first_call,
    "many_clients": measure.many_clients,
    "one_ms_ops": measure.one_ms_ops,
    "inference": extra.inference,
    "tls": extra.tls_cost,
    "processes": extra.processes,
}


def _start_peers(tmp: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The baseline servers and their addresses by kind (echo:tcp, echo:unix, bulk:tcp)."""
    peer = subprocess.Popen(
        [sys.executable, "-m", "vaccel.cli.bench.peers", f"{tmp}/echo.sock"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert peer.stdout is not None
    peers = {}
    for _ in range(3):
        _, kind, addr = peer.stdout.readline().split()
        peers[kind + ":" + addr.split(":")[0]] = addr
    return peer, peers


def _progress(enabled: bool, total: int) -> tuple[AbstractContextManager[Any], Any]:
    """A rich progress bar on stderr (or nothing when rich is missing or not wanted)."""
    if not enabled:
        return nullcontext(), None
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return nullcontext(), None
    bar = Progress(
        TextColumn("bench: {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    return bar, bar


async def _phases(
    ctx: measure.Context,
    names: list[str],
    bar: Any,
    timings: dict[str, float],
    out: dict[str, Any],
) -> None:
    """Run each phase, recording its results (or its failure) in `out` as it ends, so
    what finished is kept even if the agent dies later."""
    task = bar.add_task("starting", total=len(names)) if bar is not None else None
    for name in names:
        if bar is not None:
            bar.update(task, description=name)
        else:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            out[name] = await PHASES[name](ctx)
        except Exception as exc:  # recorded: the other phases still run
            out[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8),
                "agent_log": ctx.agent.stderr_text()[-4000:],
            }
        timings[name] = round(time.monotonic() - start, 1)
        if ctx.agent.proc.poll() is not None:
            raise RuntimeError(
                f"the agent exited (status {ctx.agent.proc.returncode}) during {name}; its "
                f"log:\n{ctx.agent.stderr_text()[-4000:]}"
            )
        if bar is not None:
            bar.advance(task)


def measure_all(quick: bool, names: list[str], bar: Any) -> dict[str, Any]:
    """Start the agent and the peers, run the phases, stop everything; the results."""
    from vaccel.server.main import loop_factory

    timings: dict[str, float] = {}
    results: dict[str, Any] = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "phases": {},
        "seconds": timings,
    }
    tmp = tempfile.mkdtemp(prefix="vaccel-bench.")
    agent = peer = None
    try:
        agent = SpawnedAgent(
            ["tcp://127.0.0.1:0", f"unix://{tmp}/agent.sock"],
            clean_env(VACCEL_PLUGINS="numpy:noop", VACCEL_EXEC_ALLOW=measure.EXEC_ALLOW),
        )
        peer, peers = _start_peers(tmp)
        tcp, unix = agent.addresses
        ctx = measure.Context(quick, agent, peer.pid, peers)
        ctx.runtimes = {
            name: Runtime(Config("rpc", 0, rpc_address=address))
            for name, address in (("tcp", tcp), ("unix", unix))
        }
        try:
            run(_phases(ctx, names, bar, timings, results["phases"]), loop_factory())
        finally:
            for runtime in ctx.runtimes.values():
                runtime.close()
    except Exception as exc:  # the whole run failed: say so, with the agent's log
        results["error"] = f"{type(exc).__name__}: {exc}"
        if agent is not None:
            results["agent_log"] = agent.stderr_text()[-4000:]
    finally:
        if agent is not None:
            agent.stop()
        if peer is not None:
            peer.terminate()
            peer.wait(5)
            if peer.stdout is not None:
                peer.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results["loop"] = os.environ.get("VACCEL_LOOP", "uvloop")
    results["floors"] = [
        {"floor": name, "figure": figure, "ok": ok} for name, figure, ok in floors(results)
    ]
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vaccel bench`."""
    parser = argparse.ArgumentParser(
        prog="vaccel bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a floor is missed or a phase fails"
    )
    parser.add_argument(
        "--only",
        metavar="PHASE",
        nargs="+",
        choices=sorted(PHASES),
        help=f"run only these phases (of: {', '.join(PHASES)})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ns = parser.parse_args(argv)
    names = ns.only or list(PHASES)
    bar_context, bar = _progress(not ns.no_progress and sys.stderr.isatty(), len(names))
    with bar_context:
        results = measure_all(ns.quick, names, bar)
    print(json.dumps(results, indent=2) if ns.json else render(results), flush=True)
    for name, phase in results["phases"].items():  # a failed phase: why, and the agent's log
        if "error" in phase and not ns.json:
            print(f"vaccel bench: {name} failed:\n{phase.get('traceback', '')}", file=sys.stderr)
            print(f"the agent's log:\n{phase.get('agent_log', '')}", file=sys.stderr)
    if "error" in results:
        print(f"vaccel bench: {results['error']}", file=sys.stderr)
        if results.get("agent_log"):
            print(results["agent_log"], file=sys.stderr)
        return 1
    failed = any("error" in f for f in results["phases"].values())
    missed = any(not f["ok"] for f in results["floors"])
    return 1 if ns.strict and (failed or missed) else 0
