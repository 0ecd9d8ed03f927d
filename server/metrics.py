"""Prometheus metrics at `/metrics` (`vaccel-agent --metrics-address tcp://HOST:PORT`).

Nothing is measured here and nothing runs on the event loop's hot path: connections
count into `AgentState` as they always do, and a custom collector turns a snapshot of
it (`vaccel.server.stats.snapshot`) into metric families when Prometheus scrapes. The
HTTP server is prometheus-client's own, in its own threads. Under `--processes N` the
parent serves the metrics of all its workers, added up (`stats.merge`).

prometheus-client is an optional dependency (`pip install '.[metrics]'`); this
module imports it only when metrics are asked for, and says how to install it if not.

Metrics (labels in braces):

- `vaccel_calls_total{op,status}`, `vaccel_call_duration_seconds{op}` (histogram);
- `vaccel_received_bytes_total`, `vaccel_sent_bytes_total`;
- `vaccel_connections`, `vaccel_sessions`, `vaccel_resources`, `vaccel_calls_in_flight`,
  `vaccel_peers`, `vaccel_pool_queue`;
- `vaccel_buffer_pool_bytes`, `vaccel_buffer_pool_limit_bytes` (the warm buffers);
- `vaccel_resource_cache_entries`, `vaccel_resource_cache_bytes`,
  `vaccel_resource_cache_hits_total` (resources made without an upload);
- `vaccel_budget_used{limit}` against `vaccel_budget_limit{limit}` (agent-wide: memory
  bytes, connections, sessions, calls, resources); per peer, aggregated:
  `vaccel_peer_budget_used{limit}` (all peers), `vaccel_peer_budget_max_used{limit}` (the
  peer closest to its limit) and `vaccel_peer_budget_limit{limit}`;
- `vaccel_refusals_total{limit}`, `vaccel_auth_failures_total{reason}`;
- `vaccel_serving`, `vaccel_draining`, `vaccel_plugin_loaded{plugin,type}`,
  `vaccel_plugin_ops{plugin}`, `vaccel_agent_info{agent,version}`, `vaccel_workers`;
- per tenant: `vaccel_tenant_calls_total{tenant,status}`,
  `vaccel_tenant_connections{tenant}`, `vaccel_tenant_sessions{tenant}`,
  `vaccel_tenant_resources{tenant}`, `vaccel_tenant_budget_used{tenant,limit}`,
  `vaccel_tenant_budget_limit{tenant,limit}`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from vaccel.enums import PluginType
from vaccel.protocol.address import AddressError, parse_address

from .state import AgentState
from .stats import snapshot

INSTALL_HINT = (
    "--metrics-address needs the prometheus-client package: "
    "pip install '.[metrics]' in the pyvaccel clone (or pip install prometheus-client)"
)
Source = Callable[[], dict[str, Any]]


def metrics_host_port(raw: str) -> tuple[str, int]:
    """HOST and PORT of a `tcp://HOST:PORT` metrics address (ValueError if not one)."""
    try:
        address = parse_address(raw)
    except AddressError:
        address = None
    if address is None or address.scheme != "tcp":
        raise ValueError(f"--metrics-address must be tcp://HOST:PORT; got {raw!r}")
    return address.host, address.port


def require() -> None:
    """ValueError with the install command when prometheus-client is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ValueError(INSTALL_HINT) from None


def _type_name(value: int) -> str:
    """CPU|SOFTWARE for a combination (spelled out: Python 3.10's IntFlag names only
    single members), the number when no member matches."""
    names = [m.name for m in PluginType if m.name and m not in (PluginType.ALL, PluginType.MAX)]
    parts = [n for n in names if value & PluginType[n]]
    return "|".join(parts) if parts and sum(PluginType[n] for n in parts) == value else str(value)


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (`0.5`, `1.0`, `5e-05`)."""
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def families(stats: dict[str, Any]) -> Iterator[Any]:
    """The metric families of one snapshot (see the module's list)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    info = GaugeMetricFamily(
        "vaccel_agent_info", "The agent's name and version", labels=["agent", "version"]
    )
    info.add_metric([str(stats["agent"]), str(stats["version"])], 1)
    yield info
    yield GaugeMetricFamily("vaccel_workers", "Agent processes serving", value=stats["workers"])
    yield GaugeMetricFamily(
        "vaccel_serving",
        "1 while the agent serves (plugins loaded, not draining)",
        value=stats["serving"],
    )
    yield GaugeMetricFamily(
        "vaccel_draining", "1 while the agent drains to shut down", value=stats["draining"]
    )
    loaded = GaugeMetricFamily(
        "vaccel_plugin_loaded", "Plugins loaded and serving", labels=["plugin", "type"]
    )
    ops = GaugeMetricFamily("vaccel_plugin_ops", "Ops each plugin registered", labels=["plugin"])
    for name, type_, count in stats["plugins"]:
        loaded.add_metric([str(name), _type_name(int(type_))], 1)
        ops.add_metric([str(name)], count)
    yield loaded
    yield ops

    calls = CounterMetricFamily(
        "vaccel_calls", "Calls answered, by op (method) and status", labels=["op", "status"]
    )
    for method, status, n in stats["calls"]:
        calls.add_metric([str(method), str(status)], n)
    yield calls
    tenant_calls = CounterMetricFamily(
        "vaccel_tenant_calls", "Calls answered, by tenant and status", labels=["tenant", "status"]
    )
    for tenant, status, n in stats.get("tenant_calls", []):
        tenant_calls.add_metric([str(tenant), str(status)], n)
    yield tenant_calls
    bounds = [float(b) for b in stats["buckets"]]
    latency = HistogramMetricFamily(
        "vaccel_call_duration_seconds",
        "Time from a call's arrival to its answer, by op",
        labels=["op"],
    )
    for method, counts in stats["latency"].items():
        cumulative, running = [], 0.0
        for i, bound in enumerate(bounds):
            running += counts[i]
            cumulative.append((_go_float(bound), running))
        running += counts[len(bounds)]
        cumulative.append(("+Inf", running))
        latency.add_metric([str(method)], cumulative, sum_value=counts[-1])
    yield latency

    yield CounterMetricFamily(
        "vaccel_received_bytes", "Bytes received from clients", value=stats["bytes_in"]
    )
    yield CounterMetricFamily(
        "vaccel_sent_bytes", "Bytes sent to clients", value=stats["bytes_out"]
    )
    gauges = [
        ("vaccel_connections", "Open client connections", stats["connections"]),
        ("vaccel_sessions", "Open sessions", stats["budgets"]["sessions"][0]),
        ("vaccel_resources", "Resources held", stats["budgets"]["resources"][0]),
        ("vaccel_calls_in_flight", "Calls being worked on", stats["in_flight"]),
        ("vaccel_peers", "Peers with connections or memory held", stats["peers"]),
        ("vaccel_pool_queue", "Calls waiting for a pool thread", stats["pool_queue"]),
    ]
    cache, pool = stats["resource_cache"], stats.get("buffer_pool", {})
    gauges += [
        ("vaccel_buffer_pool_bytes", "Warm buffer pool: bytes allocated", pool.get("held", 0)),
        ("vaccel_buffer_pool_limit_bytes", "Warm buffer pool: its limit", pool.get("limit", 0)),
        ("vaccel_resource_cache_entries", "Resource contents kept for reuse", cache["entries"]),
        ("vaccel_resource_cache_bytes", "Bytes of resource contents kept", cache["bytes"]),
    ]
    for name, text, value in gauges:
        yield GaugeMetricFamily(name, text, value=value)
    yield CounterMetricFamily(
        "vaccel_resource_cache_hits",
        "Resources made from kept content instead of an upload",
        value=cache["hits"],
    )

    used = GaugeMetricFamily(
        "vaccel_budget_used", "Agent-wide budget in use (memory in bytes)", labels=["limit"]
    )
    limit = GaugeMetricFamily("vaccel_budget_limit", "Agent-wide budget limit", labels=["limit"])
    for name, (u, lim) in stats["budgets"].items():
        used.add_metric([name], u)
        limit.add_metric([name], lim)
    yield used
    yield limit
    peer_used = GaugeMetricFamily(
        "vaccel_peer_budget_used", "Per-peer budgets in use, all peers together", labels=["limit"]
    )
    peer_most = GaugeMetricFamily(
        "vaccel_peer_budget_max_used",
        "The most any one peer uses of its per-peer budget",
        labels=["limit"],
    )
    peer_limit = GaugeMetricFamily(
        "vaccel_peer_budget_limit", "Per-peer budget limit", labels=["limit"]
    )
    for name, (total, most, lim) in stats["peer_budgets"].items():
        peer_used.add_metric([name], total)
        peer_most.add_metric([name], most)
        peer_limit.add_metric([name], lim)
    yield peer_used
    yield peer_most
    yield peer_limit

    refusals = CounterMetricFamily(
        "vaccel_refusals", "Requests refused because a limit was reached", labels=["limit"]
    )
    for name, n in stats["refusals"].items():
        refusals.add_metric([name], n)
    yield refusals
    auth = CounterMetricFamily(
        "vaccel_auth_failures", "Failed authentications, by reason", labels=["reason"]
    )
    for reason, n in stats["auth_failures"].items():
        auth.add_metric([reason], n)
    yield auth
    yield from _tenant_families(stats["tenants"])


def _tenant_families(tenants: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    per = {
        key: GaugeMetricFamily(
            f"vaccel_tenant_{key}", f"Open {key} of each tenant", labels=["tenant"]
        )
        for key in ("connections", "sessions", "resources")
    }
    used = GaugeMetricFamily(
        "vaccel_tenant_budget_used", "Tenant quota in use", labels=["tenant", "limit"]
    )
    limit = GaugeMetricFamily(
        "vaccel_tenant_budget_limit", "Tenant quota", labels=["tenant", "limit"]
    )
    for tenant, item in tenants.items():
        for key, family in per.items():
            family.add_metric([tenant], item[key])
        for name, (u, lim) in item["budgets"].items():
            used.add_metric([tenant, name], u)
            limit.add_metric([tenant, name], lim)
    yield from per.values()
    yield used
    yield limit


class StatsCollector:
    """A prometheus-client collector that reads the agent when scraped, never before."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        """The metric families of a fresh snapshot."""
        yield from families(self.source())

    def describe(self) -> list[Any]:
        """Nothing up front: registering must not take a snapshot."""
        return []


class MetricsServer:
    """prometheus-client's HTTP server (its own threads) serving one collector."""

    def __init__(self, address: str, source: Source) -> None:
        host, port = metrics_host_port(address)
        require()
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatsCollector(source))
        try:
            self._server, self._thread = start_http_server(port, host, self.registry)
        except OSError as exc:
            raise OSError(exc.errno, f"--metrics-address {address}: {exc.strerror}") from None
        self.host = host
        self.port = int(self._server.server_port)
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        """Where the metrics are served."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_agent_metrics(address: str, state: AgentState) -> MetricsServer:
    """Serve the metrics of one agent process (`Agent.start` with --metrics-address)."""
    return MetricsServer(address, lambda: snapshot(state))


__all__ = [
    "INSTALL_HINT",
    "MetricsServer",
    "StatsCollector",
    "families",
    "metrics_host_port",
    "require",
    "serve_agent_metrics",
]
