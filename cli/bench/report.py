"""The bench's floors (each figure against its same-run baseline) and its text table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Floor = tuple[str, str, bool]


def _latency(r: dict[str, Any]) -> list[Floor]:
    out = []
    for name, v in r.items():
        bound = 1.5 if name.endswith("one_core") else 1.2
        if name.endswith("natural"):
            continue  # informative only: the scheduler decides where everyone runs
        out.append(
            (
                f"noop p50 <= {bound}x raw ping-pong ({name.replace('_', ', ')})",
                f"{v['ratio_p50']:.2f}x ({v['rpc_p50_us']:.0f} vs {v['base_p50_us']:.0f} us)",
                v["ratio_p50"] <= bound,
            )
        )
    return out


def _roundtrips(r: dict[str, Any]) -> list[Floor]:
    v = r["4KiB"]
    return [
        (
            "4 KiB fpga_arraycopy p50 <= 1.5x raw 4 KiB ping-pong",
            f"{v['ratio_p50']:.2f}x ({v['rpc_p50_us']:.0f} vs {v['base_p50_us']:.0f} us)",
            v["ratio_p50"] <= 1.5,
        )
    ]


def _throughput(r: dict[str, Any]) -> list[Floor]:
    rate = r["1conn_64"]
    return [
        (">= 100,000 noop calls/s, 64 in flight, one connection", f"{rate:,.0f}/s", rate >= 1e5)
    ]


def _bandwidth(r: dict[str, Any]) -> list[Floor]:
    big = r.get("64Mi") or r["16Mi"]
    label = "64 Mi" if "64Mi" in r else "16 Mi"
    return [
        (
            f"{label} vadd >= 60% of raw socket bandwidth",
            f"{big['ratio']:.0%}",
            big["ratio"] >= 0.6,
        ),
        (
            "agent peak RSS <= 3.5x payload",
            f"{big.get('peak_rss_over_payload', 0):.2f}x",
            big.get("peak_rss_over_payload", 99) <= 3.5,
        ),
    ]


def _first_call(r: dict[str, Any]) -> list[Floor]:
    return [
        (
            "first 16 Mi vadd after 3 s idle >= 60% of a warm raw socket's bandwidth",
            f"{r['ratio']:.0%} ({r['first_MBps']:,.0f} vs {r['raw_MBps']:,.0f} MB/s; "
            f"raw after idle {r['raw_after_idle_MBps']:,.0f})",
            r["ratio"] >= 0.6,
        )
    ]


def _clients(r: dict[str, Any]) -> list[Floor]:
    bad = r["errors"] + r["wrong"]
    p99 = r["p99_ms"] or 1e9
    return [
        (
            f"{r['clients']:,} clients: no errors, p99 < 50 ms",
            f"{bad} errors, p99 {p99:.1f} ms",
            bad == 0 and p99 < 50,
        )
    ]


FLOORS: dict[str, Callable[[dict[str, Any]], list[Floor]]] = {
    "latency": _latency,
    "roundtrips": _roundtrips,
    "throughput": _throughput,
    "bandwidth": _bandwidth,
    "first_call": _first_call,
    "many_clients": _clients,
}


def floors(results: dict[str, Any]) -> list[Floor]:
    """Every floor whose phase ran, with its figure and whether it holds."""
    out: list[Floor] = []
    for phase, check in FLOORS.items():
        figures = results.get("phases", {}).get(phase)
        if isinstance(figures, dict) and "error" not in figures:
            out += check(figures)
    return out


def _lines(phase: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [f"{phase}: FAILED: {r['error']}"]
    if "skipped" in r:
        return [f"{phase}: skipped: {r['skipped']}"]
    if phase == "latency":
        lines = ["latency (sequential noop, one connection): AsyncSession p50, p99; raw p50"]
        for name, v in r.items():
            lines.append(
                f"  {name:<15} {v['rpc_p50_us']:7.1f} us {v['rpc_p99_us']:8.1f} us "
                f"{v['base_p50_us']:7.1f} us ({v['ratio_p50']:.2f}x); sync Session "
                f"{v['sync_p50_us']:.1f} us ({v['sync_ratio_p50']:.2f}x)"
            )
        return lines
    if phase == "roundtrips":
        lines = [f"fpga_arraycopy round trips vs raw ping-pong ({r['placement']})"]
        for k in ("4KiB", "64KiB"):
            v = r[k]
            lines.append(
                f"  {k:<6} {v['rpc_p50_us']:7.1f} us vs {v['base_p50_us']:7.1f} us "
                f"({v['ratio_p50']:.2f}x)"
            )
        return lines
    if phase == "throughput":
        return ["noop calls/s"] + [f"  {k:<10} {v:12,.0f}" for k, v in r.items()]
    if phase == "bandwidth":
        lines = ["fpga_vadd payload bandwidth (2 inputs + 1 output): rpc, raw socket"]
        for k, v in r.items():
            rss = (
                f"  agent peak RSS {v['agent_peak_rss_MiB']:.0f} MiB "
                f"({v['peak_rss_over_payload']:.2f}x payload)"
                if "agent_peak_rss_MiB" in v
                else ""
            )
            lines.append(
                f"  {k:<5} {v['rpc_MBps']:9,.0f} MB/s {v['base_MBps']:9,.0f} MB/s "
                f"({v['ratio']:.0%}){rss}"
            )
        return lines
    if phase == "first_call":
        return [
            f"first 16 Mi vadd after 3 s idle: {r['first_MBps']:,.0f} MB/s; raw socket after "
            f"idle {r['raw_after_idle_MBps']:,.0f} MB/s ({r['ratio']:.0%}); steady "
            f"{r['steady_MBps']:,.0f} MB/s"
        ]
    if phase == "many_clients":
        return [
            f"{r['clients']:,} concurrent clients: {r['errors']} errors, {r['wrong']} wrong, "
            f"p50 {r['p50_ms'] or 0:.2f} ms, p99 {r['p99_ms'] or 0:.2f} ms"
        ]
    if phase == "one_ms_ops":
        return [
            f"{op} {o['size']}: local {o['local_ms']:.3f} ms, remote {o['remote_ms']:.3f} ms "
            f"({o['overhead']:+.1%}); 200 in flight: {o['remote_in_flight_ms']:.3f} ms each"
            for op, o in r.items()
        ]
    if phase == "inference":
        return [
            f"{op} ({o['plugin']}): local {o['local_ms']:.3f} ms, remote {o['remote_ms']:.3f} ms "
            f"(+{o['overhead_ms']:.3f} ms)"
            for op, o in r.items()
        ]
    if phase == "tls":
        return [
            f"TLS vs TCP (uvloop): noop p50 {r['tls']['noop_p50_us']:.0f} vs "
            f"{r['tcp']['noop_p50_us']:.0f} us ({r['noop_ratio']:.2f}x); 16 Mi vadd "
            f"{r['tls']['vadd_MBps']:,.0f} vs {r['tcp']['vadd_MBps']:,.0f} MB/s "
            f"({r['bandwidth_ratio']:.0%})"
        ]
    if phase == "processes":
        return [
            f"--processes (pre-encoded load, {r['generators']} generators x {r['window']}): "
            f"1: {r['processes_1']:,.0f} calls/s, 2: {r['processes_2']:,.0f} calls/s "
            f"({r['gain']:.2f}x)"
        ]
    return [f"{phase}: {r}"]


def render(results: dict[str, Any]) -> str:
    """The whole table, then the floors, then a summary of what missed."""
    lines: list[str] = []
    for phase, figures in results.get("phases", {}).items():
        lines += _lines(phase, figures)
    lines.append("floors")
    checked = floors(results)
    for name, figure, ok in checked:
        lines.append(f"  [{'ok' if ok else 'MISS'}] {name}: {figure}")
    missed = [name for name, _, ok in checked if not ok]
    failed = [p for p, f in results.get("phases", {}).items() if "error" in f]
    lines.append(
        "summary: "
        + (f"{len(missed)} floor(s) missed: " + "; ".join(missed) if missed else "every floor met")
        + (f"; phase(s) failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)
