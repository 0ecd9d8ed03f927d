"""`vaccel top ADDR`: a live view of an agent (rich): calls/s by op, latency,
connections and budgets.

Every `--interval` seconds it asks the agent for `agent.stats` (one cheap call) and
shows what changed since the last answer: calls per second and errors by op, latency
percentiles of the calls in that window (from the agent's histograms), bytes per
second, connections, sessions, the agent-wide budgets against their limits, and
refusals. `--once` prints one frame (two samples `--interval` apart) and exits. Under
`vaccel-agent --processes N` a connection reaches one worker: top shows that worker
(the header says so) and its share of the budgets; `/metrics` adds all workers up.
"""

from __future__ import annotations

import time
from typing import Any

from vaccel.client.credentials import tool_client
from vaccel.config import Config
from vaccel.server.stats import calls_by_op, quantile

_WIDTH = 110


def _rich() -> Any:
    try:
        import rich
    except ImportError:
        raise SystemExit(
            "vaccel top: needs the rich package: pip install rich "
            "(or pip install '.[top]' in the pyvaccel clone)"
        ) from None
    import rich.box
    import rich.console
    import rich.table

    return rich


def _size(n: float) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _minus(a: list[float], b: list[float] | None) -> list[float]:
    if b is None:
        return list(a)
    return [x - (b[i] if i < len(b) else 0.0) for i, x in enumerate(a)]


Row = tuple[str, float, int, int, float | None, float | None, float | None]


def op_rows(prev: dict[str, Any] | None, cur: dict[str, Any], seconds: float) -> list[Row]:
    """Per op: calls/s, total, errors, mean, p50 and p99 over the window (or all time)."""
    now, before = calls_by_op(cur), calls_by_op(prev) if prev else {}
    buckets = [float(b) for b in cur["buckets"]]
    rows: list[Row] = []
    for op in sorted(now):
        total = sum(now[op].values())
        errors = total - now[op].get("OK", 0)
        done = total - sum(before.get(op, {}).values())
        counts = cur["latency"].get(op)
        if counts is None:
            rows.append((op, done / seconds, total, errors, None, None, None))
            continue
        window = _minus(counts, prev["latency"].get(op) if prev else None)
        if sum(window[:-1]) <= 0:  # nothing in the window: all-time figures
            window = list(counts)
        n = sum(window[:-1])
        mean = window[-1] / n if n else None
        rows.append(
            (
                op,
                done / seconds,
                total,
                errors,
                mean,
                quantile(buckets, window, 0.5),
                quantile(buckets, window, 0.99),
            )
        )
    return rows


def frame(address: str, prev: dict[str, Any] | None, cur: dict[str, Any], seconds: float) -> Any:
    """One screen of `vaccel top` (a rich renderable) from two `agent.stats` answers."""
    rich = _rich()
    Table, Group, box = rich.table.Table, rich.console.Group, rich.box
    seconds = max(seconds, 1e-6)
    state = "SERVING" if cur["serving"] else ("DRAINING" if cur["draining"] else "NOT_SERVING")
    workers = int(cur.get("workers", 1))
    processes = int(cur.get("processes", 1))
    header = Table.grid(padding=(0, 2))
    header.add_row(
        f"[bold]{cur['agent']}[/] (pyvaccel {cur['version']}) at {address}",
        f"[bold]{state}[/]",
        f"plugins: {', '.join(str(p[0]) for p in cur['plugins']) or 'none'}",
    )
    rx = (cur["bytes_in"] - (prev["bytes_in"] if prev else 0)) / seconds
    tx = (cur["bytes_out"] - (prev["bytes_out"] if prev else 0)) / seconds
    header.add_row(
        f"connections {cur['connections']}  peers {cur['peers']}  "
        f"sessions {cur['budgets']['sessions'][0]}  resources {cur['budgets']['resources'][0]}",
        f"in flight {cur['in_flight']}  pool queue {cur['pool_queue']}",
        f"in {_size(rx)}B/s  out {_size(tx)}B/s"
        + (f"  (one worker of {processes})" if processes > 1 and workers == 1 else ""),
    )
    ops = Table(title="calls by op", box=box.SIMPLE_HEAD, expand=False)
    for name, justify in (
        ("op", "left"),
        ("calls/s", "right"),
        ("total", "right"),
        ("errors", "right"),
        ("mean", "right"),
        ("p50", "right"),
        ("p99", "right"),
    ):
        ops.add_column(name, justify=justify)  # type: ignore[arg-type]
    for op, rate, total, errors, mean, p50, p99 in op_rows(prev, cur, seconds):
        ops.add_row(
            op,
            f"{rate:.1f}",
            str(total),
            str(errors) if errors else "",
            _seconds(mean),
            _seconds(p50),
            _seconds(p99),
        )
    budgets = Table(title="budgets (agent-wide)", box=box.SIMPLE_HEAD)
    for name in ("limit", "used", "of", "use"):
        budgets.add_column(name, justify="left" if name == "limit" else "right")
    for name, (used, limit) in cur["budgets"].items():
        share = used / limit if limit else 0.0
        shown = _size if name == "memory" else str
        budgets.add_row(name, shown(used), shown(limit), f"{share:.1%}")
    parts: list[Any] = [header, ops, budgets]
    if cur["refusals"] or cur["auth_failures"]:
        refused = Table(title="refusals", box=box.SIMPLE_HEAD)
        refused.add_column("limit or reason")
        refused.add_column("count", justify="right")
        for name, n in {**cur["refusals"], **cur["auth_failures"]}.items():
            refused.add_row(name, str(n))
        parts.append(refused)
    if cur["tenants"]:
        tenants = Table(title="tenants", box=box.SIMPLE_HEAD)
        for name in ("tenant", "connections", "sessions", "resources"):
            tenants.add_column(name, justify="left" if name == "tenant" else "right")
        for name, item in sorted(cur["tenants"].items()):
            tenants.add_row(
                name, str(item["connections"]), str(item["sessions"]), str(item["resources"])
            )
        parts.append(tenants)
    return Group(*parts)


def top(address: str | None, interval: float, once: bool, timeout: float = 10.0) -> int:
    """Run `vaccel top`; returns its exit status."""
    rich = _rich()
    from rich.live import Live

    where = address or Config.from_env().rpc_address.split(",")[0].strip()
    interval = max(0.05, interval)
    client = tool_client(where, timeout)
    try:
        prev = client.call("agent.stats", [], timeout=timeout)
        then = time.monotonic()
        if once:
            time.sleep(interval)
            cur = client.call("agent.stats", [], timeout=timeout)
            console = rich.console.Console(width=_WIDTH if not _tty() else None)
            console.print(frame(where, prev, cur, time.monotonic() - then))
            return 0
        with Live(f"asking {where} ...", auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                cur = client.call("agent.stats", [], timeout=timeout)
                now = time.monotonic()
                live.update(frame(where, prev, cur, now - then), refresh=True)
                prev, then = cur, now
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()
