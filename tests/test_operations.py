"""Operations (issue 14): health in each state, metrics after known calls, `vaccel info
ADDR`, `vaccel top --once`, and the access log."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agent_proc import clean_env, start_agent
from conftest import VENV_BIN

from vaccel import Config, OpType, Runtime, Session
from vaccel.cli.health import check
from vaccel.cli.top import frame, op_rows
from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import NotFoundError, ResourceExhaustedError, UnauthenticatedError
from vaccel.protocol.address import parse_address
from vaccel.server.agent import Agent
from vaccel.server.config import AgentConfig
from vaccel.server.dispatch import health
from vaccel.server.state import LATENCY_BUCKETS, AgentState
from vaccel.server.stats import counters_only, merge, quantile

VADD, EXEC = int(OpType.FPGA_VECTORADD), int(OpType.EXEC)
VACCEL = str(VENV_BIN / "vaccel")


@contextlib.asynccontextmanager
async def tcp_agent(plugins: str = "numpy", **settings: Any) -> AsyncIterator[tuple[Agent, str]]:
    """An agent in this process and loop, on 127.0.0.1 (time:sleep allowed for exec)."""
    runtime = Runtime(Config(plugins, 0, exec_allow=["time:sleep"]))
    agent = Agent(runtime, AgentConfig(**settings).resolve())
    (bound,) = await agent.start([parse_address("tcp://127.0.0.1:0")])
    try:
        yield agent, str(bound)
    finally:
        await agent.close()
        runtime.close()


async def cli(*args: str, timeout: float = 30.0, **env: str) -> tuple[int, str, str]:
    """Run the `vaccel` command without blocking this loop; (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        VACCEL,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(**env),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VACCEL, *args], capture_output=True, text=True, env=clean_env(**env), timeout=30
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# ---------------------------------------------------------------------- health


def test_health_is_not_serving_before_start(make_runtime: Any) -> None:
    state = AgentState(make_runtime("numpy"), AgentConfig().resolve())
    answer = health(state)
    assert answer["status"] == "NOT_SERVING" and "starting" in answer["reason"]
    state.serving = True
    assert health(state) == {"status": "SERVING"}
    state.draining = True
    assert health(state)["status"] == "NOT_SERVING" and "draining" in health(state)["reason"]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_health_serving_loading_draining() -> None:
    async with tcp_agent() as (agent, address):
        assert await asyncio.to_thread(check, address, 5.0) == ("SERVING", "")
        code, out, err = await cli("health", address, "--timeout", "5")
        assert (code, out, err) == (0, "SERVING\n", "")

        agent.state.serving = False  # as while plugins load
        state, reason = await asyncio.to_thread(check, address, 5.0)
        assert state == "NOT_SERVING" and "loading plugins" in reason
        code, out, err = await cli("health", address)
        assert code == 1 and out == "NOT_SERVING\n"
        assert err.count("\n") == 1 and "starting (loading plugins)" in err
        agent.state.serving = True

        # Draining: a call in flight keeps the drain going; the connection that is
        # still open hears NOT_SERVING, and a new probe finds no listener.
        client = await AsyncClient.connect(address)
        try:
            sid = await client.call("session.create", [0])
            slow = asyncio.ensure_future(
                client.call("op", [sid, EXEC, ["time", "sleep", [1.5], [None]]])
            )
            await asyncio.sleep(0.3)
            closing = asyncio.ensure_future(agent.close())
            await asyncio.sleep(0.2)
            answer = await client.call("health.check", [])
            assert answer["status"] == "NOT_SERVING" and "draining" in answer["reason"]
            code, out, err = await cli("health", address, "--timeout", "2")
            assert code == 1 and out == "UNREACHABLE\n" and "refused" in err.lower()
            await slow  # the drain let it finish
            await closing
        finally:
            await client.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_health_unreachable_and_timeout() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, out, err = await cli("health", f"tcp://127.0.0.1:{port}", "--timeout", "2")
    assert code == 1 and out == "UNREACHABLE\n" and err.startswith("vaccel health: ")

    # A listener that accepts and never answers: --timeout bounds the probe.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        code, out, _ = await cli(
            "health", f"tcp://127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.5"
        )
        assert code == 1 and out == "UNREACHABLE\n"
        assert loop.time() - start < 10
    finally:
        silent.close()


# ---------------------------------------------------------------------- metrics


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_metrics_count_known_calls() -> None:
    async with tcp_agent(
        metrics_address="tcp://127.0.0.1:0", max_sessions=2, max_peer_sessions=3, max_resources=7
    ) as (
        agent,
        address,
    ):
        assert agent.metrics is not None
        url = agent.metrics.url
        client = await AsyncClient.connect(address)
        try:
            s1 = await client.call("session.create", [0])
            s2 = await client.call("session.create", [0])
            with pytest.raises(ResourceExhaustedError):
                await client.call("session.create", [0])
            for i in range(3):
                out = await client.call("op", [s1, VADD, [[1.0, float(i)], [2.0, 3.0]]])
                assert out.tolist() == [3.0, 3.0 + i]
            with pytest.raises(NotFoundError):
                await client.call("op", [999, VADD, [[1.0], [2.0]]])
            await client.call("resource.create", [1, ["blob"], [b"x" * 100]])
            await client.call("session.destroy", [s2])
            m = await asyncio.to_thread(scrape, url)
        finally:
            await client.close()

        assert value(m, "vaccel_calls_total", op="fpga_vadd", status="OK") == 3
        assert value(m, "vaccel_calls_total", op="session.create", status="OK") == 2
        assert value(m, "vaccel_calls_total", op="session.create", status="RESOURCE_EXHAUSTED") == 1
        assert value(m, "vaccel_calls_total", op="op", status="NOT_FOUND") == 1
        assert value(m, "vaccel_calls_total", op="session.destroy", status="OK") == 1
        assert value(m, "vaccel_call_duration_seconds_count", op="fpga_vadd") == 3
        assert value(m, "vaccel_call_duration_seconds_bucket", op="fpga_vadd", le="+Inf") == 3
        assert 0 < value(m, "vaccel_call_duration_seconds_sum", op="fpga_vadd") < 5
        buckets = [
            value(m, "vaccel_call_duration_seconds_bucket", op="fpga_vadd", le=le)
            for le in [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
        ]
        assert buckets == sorted(buckets)  # cumulative
        assert value(m, "vaccel_sessions") == 1
        assert value(m, "vaccel_resources") == 1
        assert value(m, "vaccel_connections") == 1
        assert value(m, "vaccel_received_bytes_total") > 100
        assert value(m, "vaccel_sent_bytes_total") > 100
        assert value(m, "vaccel_budget_used", limit="sessions") == 1
        assert value(m, "vaccel_budget_limit", limit="sessions") == 2
        assert value(m, "vaccel_budget_limit", limit="resources") == 7
        assert value(m, "vaccel_budget_used", limit="memory") >= 100
        assert value(m, "vaccel_peer_budget_max_used", limit="sessions") == 1
        assert value(m, "vaccel_peers") == 1
        assert value(m, "vaccel_refusals_total", limit="agent sessions") == 1
        assert value(m, "vaccel_pool_queue") == 0
        assert value(m, "vaccel_serving") == 1 and value(m, "vaccel_draining") == 0
        assert value(m, "vaccel_plugin_loaded", plugin="numpy", type="CPU|SOFTWARE") == 1
        assert value(m, "vaccel_plugin_ops", plugin="numpy") >= 8
        assert value(m, "vaccel_tenant_connections", tenant="anonymous") == 1
        assert value(m, "vaccel_tenant_sessions", tenant="anonymous") == 1
        assert value(m, "vaccel_tenant_resources", tenant="anonymous") == 1
        assert value(m, "vaccel_tenant_calls_total", tenant="anonymous", status="OK") == 7
        assert value(m, "vaccel_tenant_calls_total", tenant="anonymous", status="NOT_FOUND") == 1
        assert value(m, "vaccel_resource_cache_entries") == 0
        assert value(m, "vaccel_resource_cache_hits_total") == 0
        assert value(m, "vaccel_buffer_pool_limit_bytes") >= 0

        # The connection closed: gauges fall, counters keep what it did.
        for _ in range(100):
            after = await asyncio.to_thread(scrape, url)
            if value(after, "vaccel_connections") == 0 and value(after, "vaccel_sessions") == 0:
                break
            await asyncio.sleep(0.02)
        assert value(after, "vaccel_connections") == 0 and value(after, "vaccel_sessions") == 0
        assert value(after, "vaccel_received_bytes_total") >= value(
            m, "vaccel_received_bytes_total"
        )
        assert value(after, "vaccel_calls_total", op="fpga_vadd", status="OK") == 3
    with pytest.raises(OSError):  # close() stopped the metrics server
        await asyncio.to_thread(scrape, url)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_metrics_count_real_auth_failures(tmp_path: Path) -> None:
    """Wrong tokens over real connections: counted under the reason the agent emits."""
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:s3cret-alice\n")
    async with tcp_agent(metrics_address="tcp://127.0.0.1:0", token_file=str(tokens)) as (
        agent,
        address,
    ):
        assert agent.metrics is not None
        before = await asyncio.to_thread(scrape, agent.metrics.url)
        assert not [k for k in before if k[0] == "vaccel_auth_failures_total"]
        for token in ("alice:wrong", "mallory:s3cret-alice"):
            with pytest.raises(UnauthenticatedError, match="refused the token"):
                await AsyncClient.connect(address, token=token)
        client = await AsyncClient.connect(address, token="alice:s3cret-alice")
        try:
            assert await client.ping() > 0  # the right token: served, not counted
            m = await asyncio.to_thread(scrape, agent.metrics.url)
        finally:
            await client.close()
    failures = {
        dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "vaccel_auth_failures_total"
    }
    assert failures == {"token": 2}
    assert value(m, "vaccel_tenant_connections", tenant="alice") == 1


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_metrics_tenant_quotas_are_shown() -> None:
    async with tcp_agent(
        metrics_address="tcp://127.0.0.1:0", tenants={"anonymous": {"max_sessions": 5}}
    ) as (agent, _address):
        agent.state.tenant("anonymous")
        assert agent.metrics is not None
        m = await asyncio.to_thread(scrape, agent.metrics.url)
        assert value(m, "vaccel_tenant_budget_limit", tenant="anonymous", limit="sessions") == 5
        assert value(m, "vaccel_tenant_budget_used", tenant="anonymous", limit="sessions") == 0


def test_metrics_address_must_be_tcp_and_free() -> None:
    bad = run_cli_agent("--metrics-address", "unix:///tmp/x.sock")
    assert bad.returncode == 2 and "--metrics-address must be tcp://HOST:PORT" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run_cli_agent("--metrics-address", f"tcp://127.0.0.1:{port}")
    assert busy.returncode == 1 and f"--metrics-address tcp://127.0.0.1:{port}" in busy.stderr


def run_cli_agent(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    """vaccel-agent in a child Python, `code` run first (e.g. to hide a package)."""
    program = (
        f"import sys\n{code}\nfrom vaccel.server.main import main\nsys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", program, "-a", "tcp://127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        env=clean_env(VACCEL_PLUGINS="noop"),
        timeout=30,
    )


def test_metrics_flag_without_prometheus_client_says_how_to_install() -> None:
    done = run_cli_agent(
        "--metrics-address", "tcp://127.0.0.1:0", code="sys.modules['prometheus_client'] = None"
    )
    assert done.returncode == 2
    assert "pip install '.[metrics]' in the pyvaccel clone" in done.stderr
    assert "Traceback" not in done.stderr


class SpawnedWithMetrics:
    """A vaccel-agent process; its addresses and metrics URL from its banner."""

    def __init__(self, *args: str, **env: str) -> None:
        from vaccel.cli.spawn import agent_command

        self.proc = subprocess.Popen(
            [agent_command(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=clean_env(**env),
        )
        self.addresses: list[str] = []
        self.metrics = ""
        self.workers = 1
        self._reader: threading.Thread | None = None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if m := re.match(r"pyvaccel agent started\. address: (\S+)", line):
                self.addresses.append(m.group(1))
            elif m := re.match(r"pyvaccel agent metrics: (\S+)", line):
                self.metrics = m.group(1)
            elif m := re.match(r"pyvaccel agent workers: (\d+)", line):
                self.workers = int(m.group(1))
            elif line.startswith("Server is running"):
                # Keep reading stdout (restart notices) so the agent never blocks on it.
                self._reader = threading.Thread(target=self.proc.stdout.read, daemon=True)
                self._reader.start()
                return
        self.proc.wait(10)
        self.proc.stdout.close()
        raise RuntimeError(f"vaccel-agent exited with status {self.proc.returncode}")

    def stop(self, timeout: float = 30.0) -> int:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        finally:
            if self._reader is not None:
                self._reader.join(5)
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def metrics_agent() -> Iterator[SpawnedWithMetrics]:
    agent = SpawnedWithMetrics(
        "-a",
        "tcp://127.0.0.1:0",
        "--metrics-address",
        "tcp://127.0.0.1:0",
        VACCEL_PLUGINS="numpy",
    )
    yield agent
    assert agent.stop() == 0


def test_metrics_of_an_agent_process(metrics_agent: SpawnedWithMetrics) -> None:
    assert metrics_agent.metrics.startswith("http://127.0.0.1:")
    runtime = Runtime(Config("rpc", 0, rpc_address=metrics_agent.addresses[0]))
    try:
        with Session(runtime=runtime) as s:
            for _ in range(4):
                assert s.fpga_vadd([1.0], [2.0]) == [3.0]
    finally:
        runtime.close()
    m = scrape(metrics_agent.metrics)
    assert value(m, "vaccel_calls_total", op="fpga_vadd", status="OK") == 4
    assert value(m, "vaccel_calls_total", op="session.create", status="OK") == 1
    assert value(m, "vaccel_workers") == 1


# ---------------------------------------------------------------------- stats


def fake(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agent": "a",
        "version": "v",
        "workers": 1,
        "processes": 1,
        "pid": 1,
        "serving": 1,
        "draining": 0,
        "plugins": [["numpy", 9, 8]],
        "buckets": [0.001, 0.01, 0.1],
        "calls": [["fpga_vadd", "OK", 10], ["fpga_vadd", "INTERNAL", 1]],
        "latency": {"fpga_vadd": [4.0, 6.0, 1.0, 0.0, 0.05]},
        "bytes_in": 100,
        "bytes_out": 200,
        "connections": 2,
        "in_flight": 1,
        "pool_queue": 0,
        "peers": 1,
        "budgets": {"sessions": [3, 50], "memory": [10, 1000], "resources": [0, 9]},
        "peer_budgets": {"sessions": [3, 3, 13]},
        "refusals": {"agent sessions": 1},
        "auth_failures": {},
        "tenants": {"anonymous": {"connections": 2, "sessions": 3, "resources": 0, "budgets": {}}},
    }
    base.update(over)
    return base


def test_merge_adds_up_workers() -> None:
    a = fake()
    b = fake(
        serving=0,
        calls=[["fpga_vadd", "OK", 5], ["noop", "OK", 2]],
        latency={"fpga_vadd": [1.0, 0.0, 0.0, 0.0, 0.0005], "noop": [2.0, 0, 0, 0, 0.0001]},
        budgets={"sessions": [1, 50], "memory": [0, 1000], "resources": [1, 9]},
        peer_budgets={"sessions": [1, 1, 12]},
        refusals={"agent sessions": 2, "agent memory": 1},
    )
    m = merge([a, b])
    assert m["workers"] == 2 and m["serving"] == 0 and m["draining"] == 0
    assert sorted(m["calls"]) == [
        ["fpga_vadd", "INTERNAL", 1],
        ["fpga_vadd", "OK", 15],
        ["noop", "OK", 2],
    ]
    assert m["latency"]["fpga_vadd"] == [5.0, 6.0, 1.0, 0.0, 0.0505]
    assert m["budgets"] == {"sessions": [4, 100], "memory": [10, 2000], "resources": [1, 18]}
    assert m["peer_budgets"] == {"sessions": [4, 3, 25]}
    assert m["refusals"] == {"agent sessions": 3, "agent memory": 1}
    assert m["connections"] == 4 and m["bytes_out"] == 400
    assert m["tenants"]["anonymous"]["sessions"] == 3 + 3
    gone = counters_only(a)
    assert gone["connections"] == 0 and gone["budgets"]["sessions"] == [0, 0]
    assert gone["calls"] == a["calls"] and gone["bytes_in"] == 100
    assert merge([gone, b])["workers"] == 1


def test_quantile_interpolates_in_buckets() -> None:
    bounds = [0.001, 0.01, 0.1]
    assert quantile(bounds, [0, 0, 0, 0, 0.0], 0.5) is None
    assert quantile(bounds, [10, 0, 0, 0, 0.005], 0.5) == pytest.approx(0.0005)
    assert quantile(bounds, [0, 10, 0, 0, 0.05], 0.99) == pytest.approx(0.001 + 0.009 * 0.99)
    assert quantile(bounds, [0, 0, 0, 3, 30.0], 0.5) == 0.1  # past the last bound


def test_top_frame_rates_and_latency() -> None:
    prev = fake(calls=[["fpga_vadd", "OK", 10]], latency={"fpga_vadd": [10.0, 0, 0, 0, 0.005]})
    cur = fake(
        calls=[["fpga_vadd", "OK", 30], ["fpga_vadd", "INTERNAL", 2]],
        latency={"fpga_vadd": [10.0, 22.0, 0, 0, 0.2]},
    )
    ((op, rate, total, errors, mean, p50, p99),) = op_rows(prev, cur, 2.0)
    assert (op, rate, total, errors) == ("fpga_vadd", 11.0, 32, 2)
    # The window's 22 calls all fell in (1 ms, 10 ms]: so do its percentiles.
    assert 0.001 < p50 < p99 <= 0.01 and mean == pytest.approx((0.2 - 0.005) / 22)
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(frame("tcp://x:1", prev, cur, 2.0))
    text = console.export_text()
    assert "fpga_vadd" in text and "11.0" in text and "SERVING" in text
    assert "one worker of" not in text
    console.print(frame("tcp://x:1", prev, dict(cur, processes=2), 2.0))
    assert "(one worker of 2)" in console.export_text()


# ---------------------------------------------------------------------- info, top


@pytest.fixture(scope="module")
def numpy_agent() -> Iterator[str]:
    proc = start_agent("tcp://127.0.0.1:0", plugins="numpy")
    yield proc.addresses[0]
    assert proc.stop() == 0


def test_info_addr_asks_the_agent(numpy_agent: str) -> None:
    done = run_cli("info", numpy_agent)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"agent {numpy_agent}: pyvaccel-agent/" in out
    assert "plugin numpy (" in out and "version 0.2.0" in out
    assert re.search(r"^  fpga_vadd\s+Vector Add$", out, re.M)
    assert "classify" not in out  # numpy has no image ops: only what the agent serves
    assert re.search(r"^  max-sessions\s+65536$", out, re.M)
    assert re.search(r"^  max-memory\s+\S+[KMGT]$", out, re.M)


def test_info_under_rpc_asks_the_agent(numpy_agent: str) -> None:
    done = run_cli("info", VACCEL_PLUGINS="rpc", VACCEL_RPC_ADDRESS=numpy_agent)
    assert done.returncode == 0, done.stderr
    assert f"plugin rpc forwards to {numpy_agent}" in done.stdout
    assert "plugin numpy (" in done.stdout and "classify" not in done.stdout
    local = run_cli("info", VACCEL_PLUGINS="numpy")  # without rpc: the local plugins, as before
    assert local.returncode == 0 and "plugin numpy (" in local.stdout
    assert "agent " not in local.stdout


def test_info_unreachable_agent_fails() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = run_cli("info", f"tcp://127.0.0.1:{port}", "--timeout", "2")
    assert done.returncode == 1 and "vaccel info:" in done.stderr


def test_top_once_shows_calls_connections_and_budgets(numpy_agent: str) -> None:
    runtime = Runtime(Config("rpc", 0, rpc_address=numpy_agent))
    try:
        with Session(runtime=runtime) as s:
            a = np.arange(1000, dtype=np.float32)
            for _ in range(5):
                assert np.array_equal(s.fpga_vadd(a, a), a + a)
            done = run_cli("top", numpy_agent, "--once", "--interval", "0.3")
    finally:
        runtime.close()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SERVING" in out and "calls by op" in out and "budgets" in out
    row = re.search(r"^\s*fpga_vadd\s+([\d.]+)\s+(\d+)\s", out, re.M)
    assert row is not None and int(row.group(2)) >= 5, out
    assert re.search(r"^\s*sessions\s+1\s+65536\s", out, re.M), out
    assert "connections 2" in out  # the session's and top's own


# ---------------------------------------------------------------------- access log

_LINE = r"\d{4}\.\d\d\.\d\d-\d\d:\d\d:\d\d\.\d\d - <info> "


def test_access_log_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.log"
    proc = start_agent(
        "tcp://127.0.0.1:0", plugins="numpy", VACCEL_LOG_LEVEL="3", VACCEL_LOG_FILE=str(log_file)
    )
    try:
        runtime = Runtime(Config("rpc", 0, rpc_address=proc.addresses[0]))
        try:
            with Session(runtime=runtime) as s:
                sid = s.remote_id
        finally:
            runtime.close()
    finally:
        assert proc.stop() == 0
    lines = log_file.read_text().splitlines()
    who = r"ip:127\.0\.0\.1 \(tenant anonymous\)"
    wanted = [
        rf"{_LINE}agent: connection from {who}",
        rf"{_LINE}agent: session {sid} created for {who}",
        rf"{_LINE}agent: session {sid} destroyed for {who}",
        rf"{_LINE}agent: connection from {who} closed",
    ]
    at = 0
    for line in lines:
        if at < len(wanted) and re.fullmatch(wanted[at], line):
            at += 1
    assert at == len(wanted), f"missing {wanted[at:]!r} in:\n" + "\n".join(lines)


def test_the_buffer_pool_is_set_aside_from_max_memory() -> None:
    """--max-memory bounds calls and the warm pool together: the pool's share (an eighth,
    at most 256M, or --buffer-pool) is taken off the budget calls draw from."""
    from vaccel.server.state import AgentState

    config = AgentConfig(max_memory=256 << 20).resolve()
    assert config.pool_share() == 32 << 20
    state = AgentState(Runtime(Config("noop", 0)), config)
    assert state.memory.limit == 224 << 20
    big = AgentConfig(max_memory=64 << 30).resolve()
    assert big.pool_share() == 256 << 20
    off = AgentConfig(max_memory=256 << 20, buffer_pool=0).resolve()
    assert off.pool_share() == 0 and AgentState(Runtime(Config("noop", 0)), off).memory.limit == (
        256 << 20
    )
