"""What an agent can tell about itself: one plain snapshot of its counters and budgets.

`snapshot` copies what `AgentState` counts into plain lists and dicts (msgpack and JSON
friendly). It is what `agent.stats` answers (for `vaccel top`), what the Prometheus
collector turns into metrics at scrape time (`vaccel.server.metrics`), and what each
worker of `vaccel-agent --processes N` hands its parent, which adds them up with
`merge`. It may run outside the event loop's thread (the metrics server's): every
container of the state is copied with one C-level call before it is walked, so a
connection changing it meanwhile cannot break the walk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from vaccel import __version__
from vaccel.buffers import POOL

from .state import LATENCY_BUCKETS, AgentState

#: Agent-wide budgets, by the name they have in metrics and stats.
AGENT_BUDGETS = ("memory", "connections", "sessions", "calls", "resources")
#: Stats keys whose values are {label: number} or {label: [numbers]} added up by `merge`.
_ADDED = ("refusals", "auth_failures", "resource_cache", "buffer_pool")


def _budget(budget: Any) -> list[int]:
    return [int(budget.used), int(budget.limit)]


def _agent_budgets(state: AgentState) -> dict[str, list[int]]:
    return {
        "memory": _budget(state.memory),
        "connections": _budget(state.connections_budget),
        "sessions": _budget(state.sessions),
        "calls": _budget(state.calls),
        "resources": _budget(state.resources),
    }


def _peer_budgets(state: AgentState) -> dict[str, list[int]]:
    """Per-peer budgets, aggregated: [sum used, most used by one peer, the per-peer limit]."""
    peers = list(state.peers.values())
    out: dict[str, list[int]] = {}
    for name in AGENT_BUDGETS:
        used = [int(getattr(p, name).used) for p in peers]
        out[name] = [
            sum(used),
            max(used, default=0),
            int(getattr(state.config, f"max_peer_{name}")),
        ]
    return out


def _tenants(state: AgentState, connections: list[Any]) -> dict[str, dict[str, Any]]:
    """Per tenant: live connections, sessions, resources, and its quotas where configured."""
    out: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        if name not in out:
            out[name] = {"connections": 0, "sessions": 0, "resources": 0, "budgets": {}}
        return out[name]

    for conn in connections:
        item = entry(str(getattr(conn, "tenant", "anonymous")))
        item["connections"] += 1
        owned = getattr(conn, "owned", None)
        if owned is not None:
            item["sessions"] += len(owned.sessions)
            item["resources"] += len(owned.resources)
    for name, tenant in list(state.tenants.items()):
        item = entry(name)
        for key, budget in list(tenant.budgets.items()):
            item["budgets"][key.replace("max_", "")] = _budget(budget)
    return out


def _latency(state: AgentState) -> dict[str, list[float]]:
    return {method: list(counts) for method, counts in dict(state.latency).items()}


def snapshot(state: AgentState) -> dict[str, Any]:
    """Everything `vaccel top` and `/metrics` show, as plain data."""
    connections = list(state.connections)
    received, sent = state.bytes_in, state.bytes_out
    in_flight = 0
    for conn in connections:
        received += conn.bytes_in
        sent += conn.bytes_out
        in_flight += len(conn.calls)
    runtime = state.runtime
    return {
        "agent": state.name,
        "version": __version__,
        "workers": 1,
        "processes": int(state.config.processes),
        "pid": os.getpid(),
        "serving": int(state.serving and not state.draining),
        "draining": int(state.draining),
        "plugins": [
            [p.display_name, int(p.type), len(ops)] for p, ops in list(runtime.operations())
        ],
        "buckets": list(LATENCY_BUCKETS),
        "calls": [[m, s, int(n)] for (m, s), n in dict(state.calls_total).items()],
        "tenant_calls": [[t, s, int(n)] for (t, s), n in dict(state.tenant_calls).items()],
        "latency": _latency(state),
        "bytes_in": int(received),
        "bytes_out": int(sent),
        "connections": len(connections),
        "in_flight": in_flight,
        "pool_queue": int(runtime.pool_queue),
        "peers": len(state.peers),
        "budgets": _agent_budgets(state),
        "peer_budgets": _peer_budgets(state),
        "refusals": {k: int(v) for k, v in dict(state.refusals).items()},
        "auth_failures": {k: int(v) for k, v in dict(state.auth_failures).items()},
        "resource_cache": state.resource_cache.stats(),
        "buffer_pool": {"held": POOL.held, "limit": POOL.limit},
        "tenants": _tenants(state, connections),
    }


def _add_lists(a: list[Any], b: list[Any]) -> list[Any]:
    if len(a) < len(b):
        a, b = b, a
    return [x + (b[i] if i < len(b) else 0) for i, x in enumerate(a)]


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' snapshots as one agent's: counts, gauges and limits add up.

    The agent serves while every worker serves; it drains once any worker drains. A
    plugin is shown as loaded if the first worker loaded it (they all load the same
    set). Per-peer "most used by one peer" is the largest of the workers' (a lower
    bound: a peer's connections may sit in several workers).
    """
    items = list(snapshots)
    if not items:
        raise ValueError("no snapshots to merge")
    out: dict[str, Any] = {
        "agent": items[0]["agent"],
        "version": items[0]["version"],
        "workers": sum(int(s.get("workers", 1)) for s in items),
        "processes": max(int(s.get("processes", 1)) for s in items),
        "pid": os.getpid(),
        "serving": min(int(s["serving"]) for s in items),
        "draining": max(int(s["draining"]) for s in items),
        "plugins": next((s["plugins"] for s in items if s["plugins"]), []),
        "buckets": items[0]["buckets"],
    }
    latency: dict[str, list[float]] = {}
    for s in items:
        for method, counts in s["latency"].items():
            latency[method] = _add_lists(latency.get(method, []), counts)
    for key in ("calls", "tenant_calls"):  # [[label, status, count], ...]
        summed: dict[tuple[str, str], int] = {}
        for s in items:
            for label, status, n in s.get(key, []):
                summed[(label, status)] = summed.get((label, status), 0) + int(n)
        out[key] = [[label, st, n] for (label, st), n in summed.items()]
    out["latency"] = latency
    for key in ("bytes_in", "bytes_out", "connections", "in_flight", "pool_queue", "peers"):
        out[key] = sum(int(s[key]) for s in items)
    budgets: dict[str, list[int]] = {}
    for s in items:
        for name, pair in s["budgets"].items():
            budgets[name] = _add_lists(budgets.get(name, [0, 0]), pair)
    out["budgets"] = budgets
    peer: dict[str, list[int]] = {}
    for s in items:
        for name, (total, most, limit) in s["peer_budgets"].items():
            sums = peer.get(name, [0, 0, 0])
            peer[name] = [sums[0] + total, max(sums[1], most), sums[2] + limit]
    out["peer_budgets"] = peer
    for key in _ADDED:
        added: dict[str, int] = {}
        for s in items:
            for label, n in s.get(key, {}).items():
                added[label] = added.get(label, 0) + int(n)
        out[key] = added
    tenants: dict[str, dict[str, Any]] = {}
    for s in items:
        for name, t in s["tenants"].items():
            have: dict[str, Any] = tenants.setdefault(
                name, {"connections": 0, "sessions": 0, "resources": 0, "budgets": {}}
            )
            for field in ("connections", "sessions", "resources"):
                have[field] += int(t[field])
            quotas: dict[str, list[int]] = have["budgets"]
            for limit, pair in t["budgets"].items():
                quotas[limit] = _add_lists(quotas.get(limit, [0, 0]), pair)
    out["tenants"] = tenants
    return out


def counters_only(stats: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's counters (calls, latency, bytes, refusals) with every gauge at zero.

    What a worker that ended leaves behind, so merged counters never go down.
    """
    out = merge([stats])
    out.update(workers=0, serving=1, draining=0, plugins=[], tenants={})
    for key in ("connections", "in_flight", "pool_queue", "peers"):
        out[key] = 0
    out["budgets"] = {name: [0, 0] for name in out["budgets"]}
    out["resource_cache"].update(entries=0, bytes=0)
    out["buffer_pool"] = {"held": 0, "limit": 0}
    out["peer_budgets"] = {name: [0, 0, 0] for name in out["peer_budgets"]}
    return out


def calls_by_op(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{op: {status: count}} from a snapshot's `calls`."""
    out: dict[str, dict[str, int]] = {}
    for method, status, n in stats["calls"]:
        out.setdefault(method, {})[status] = int(n)
    return out


def quantile(buckets: list[float], counts: list[float], q: float) -> float | None:
    """The `q` quantile (0..1) of a latency histogram (per-bucket counts, overflow, sum).

    Interpolated inside the bucket it falls in, as Prometheus' histogram_quantile does;
    None when the histogram is empty.
    """
    per_bucket = counts[: len(buckets) + 1]
    total = sum(per_bucket)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, n in enumerate(per_bucket):
        if n and seen + n >= rank:
            lower = buckets[i - 1] if i > 0 else 0.0
            if i >= len(buckets):
                return float(buckets[-1])  # beyond the last bound: say the bound
            return lower + (buckets[i] - lower) * (rank - seen) / n
        seen += n
    return float(buckets[-1])


__all__ = ["AGENT_BUDGETS", "calls_by_op", "counters_only", "merge", "quantile", "snapshot"]
