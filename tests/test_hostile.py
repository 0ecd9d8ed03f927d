"""Hostile clients against a real agent process (--max-memory 256M), one test per way a
client can try to starve or kill it, over TCP and over a unix socket. Over TCP the
hostile side connects from 127.0.0.2 (another peer); over unix it is the peer of this
user's uid. After each test a well-behaved client (TCP from 127.0.0.1: a peer of its own
either way) must get correct answers within 100 ms, the agent's peak RSS must stay under
512 MB, and its log must hold no traceback. The faults (SIGTERM, SIGSTOP, deadlines)
run on both transports too.

Over a unix socket every connection of this user is one peer (uid), so "another peer"
(the good client, and the clients the per-peer tests check are still served) is always
the TCP client from 127.0.0.1: that keeps the per-peer tests meaningful on both."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from agent_proc import SpawnedAgent, clean_env
from rawpeer import RawPeer, close_all, connect, raw_header

from vaccel import AsyncSession, Config, OpType, Runtime, Session
from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import ConnectionLostError, UnavailableError
from vaccel.protocol.events import GoAway, Response
from vaccel.protocol.frames import FrameType
from vaccel.protocol.status import Status

f32 = np.float32
MiB = 1 << 20
RSS_BOUND = 512 * MiB
VADD, EXEC, MMULT, SGEMM, COPY = (
    int(OpType.FPGA_VECTORADD),
    int(OpType.EXEC),
    int(OpType.FPGA_MMULT),
    int(OpType.BLAS_SGEMM),
    int(OpType.FPGA_ARRAYCOPY),
)
AGENT_ARGS = [
    "--max-memory", "256M",
    "--max-connections", "64",
    "--max-sessions", "256",
    "--max-calls", "256",
    "--max-resources", "256",
    "--handshake-timeout", "1",
    "--idle-timeout", "2",
    "--progress-timeout", "1",
    "--workers", "4",
]  # fmt: skip


TRANSPORTS = ["tcp", "unix"]


@pytest.fixture(scope="module")
def sockdir() -> Iterator[str]:
    """A short directory for unix sockets (their paths are limited to 108 bytes)."""
    path = tempfile.mkdtemp(prefix="vh-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def endpoint(transport: str, sockdir: str) -> str:
    """A listen address of `transport`: TCP loopback on a free port, or a fresh unix path."""
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return f"unix://{tempfile.mkdtemp(dir=sockdir)}/agent.sock"


def spawn(*extra: str, addresses: list[str] | None = None, **env: str) -> SpawnedAgent:
    return SpawnedAgent(
        addresses or ["tcp://127.0.0.1:0"],
        clean_env(VACCEL_PLUGINS="numpy", VACCEL_EXEC_ALLOW="time:sleep", **env),
        extra_args=[*AGENT_ARGS, *extra],
    )


@pytest.fixture(scope="module")
def agent(sockdir: str) -> Iterator[SpawnedAgent]:
    """The module's agent, listening on TCP loopback and on a unix socket."""
    proc = spawn(addresses=[endpoint(t, sockdir) for t in TRANSPORTS])
    assert [a.split(":", 1)[0] for a in proc.addresses] == TRANSPORTS, proc.addresses
    yield proc
    code = proc.stop()
    assert code == 0, proc.stderr_text()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, sockdir: str) -> Iterator[str]:
    """Each fault test's own agent listens on this transport (an address from `endpoint`)."""
    yield endpoint(request.param, sockdir)


class GoodClient(threading.Thread):
    """A well-behaved client calling all along (one small vadd every 20 ms), timing each."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.ready = threading.Event()

    def run(self) -> None:
        runtime = Runtime(Config("rpc", 0, rpc_address=self.address))
        try:
            with Session(runtime=runtime) as s:
                a = np.arange(256, dtype=f32)
                s.fpga_vadd(a, a)  # warm: the first call's one-time costs are not latency
                self.ready.set()
                while not self.stop.wait(0.02) or len(self.latencies) < 3:
                    start = time.perf_counter()
                    out = s.fpga_vadd(a, a)
                    self.latencies.append(time.perf_counter() - start)
                    if not np.array_equal(out, a + a):
                        self.failures.append("wrong answer")
        except Exception as exc:  # reported by the fixture
            self.failures.append(repr(exc))
        finally:
            self.ready.set()
            runtime.close()


@pytest.fixture(params=TRANSPORTS)
def address(agent: SpawnedAgent, request: pytest.FixtureRequest) -> Iterator[str]:
    """The agent's address on the transport under test. A good client (over TCP) calls
    all through the test; it must get every answer right within 100 ms, and the agent
    must hold its memory bound."""
    tcp = agent.addresses[0]
    good = GoodClient(tcp)
    good.start()
    assert good.ready.wait(10), good.failures
    yield agent.addresses[TRANSPORTS.index(request.param)]
    good.stop.set()
    good.join(10)
    close_all()
    assert not good.failures, good.failures
    worst = max(good.latencies, default=0.0)
    assert good.latencies and worst < 0.1, f"the good client waited {worst * 1e3:.0f} ms"
    assert agent.proc.poll() is None, f"the agent died:\n{agent.stderr_text()}"
    good_client_is_served(tcp)
    assert agent.peak_rss() < RSS_BOUND, f"agent peak RSS {agent.peak_rss() / MiB:.0f} MiB"
    report = os.environ.get("VACCEL_HOSTILE_REPORT")  # a table for the record: test,
    if report:  # the good client's slowest call (ms), the agent's peak RSS so far (MiB)
        with open(report, "a") as out:
            out.write(f"{request.node.name}\t{worst * 1e3:.1f}\t{agent.peak_rss() / MiB:.0f}\n")
    log = agent.stderr_text()
    assert "Traceback" not in log and "exception was never retrieved" not in log, log[-3000:]


def good_client_is_served(address: str, calls: int = 20) -> float:
    """A well-behaved client's calls are correct and each within 100 ms; the slowest."""
    runtime = Runtime(Config("rpc", 0, rpc_address=address))
    worst = 0.0
    try:
        with Session(runtime=runtime) as s:
            a = np.arange(1024, dtype=f32)
            for i in range(calls):
                start = time.perf_counter()
                out = s.fpga_vadd(a, a + i)
                worst = max(worst, time.perf_counter() - start)
                np.testing.assert_array_equal(out, a + a + i)
    finally:
        runtime.close()
    assert worst < 0.1, f"a good client waited {worst * 1e3:.0f} ms"
    return worst


def session_of(peer: RawPeer) -> int:
    sid, header = peer.request_header("session.create", [0], [])
    peer.send(header)
    resp = peer.wait_for(lambda e: isinstance(e, Response) and e.stream_id == sid)
    assert isinstance(resp, Response) and resp.status == Status.OK, resp
    return int(resp.result)


def answer(peer: RawPeer, sid: int, timeout: float = 5.0) -> Response:
    resp = peer.wait_for(lambda e: isinstance(e, Response) and e.stream_id == sid, timeout)
    assert isinstance(resp, Response)
    return resp


# ---------------------------------------------------------------------- budgets


def test_budget_squatting_is_refused_then_expires(address: str) -> None:
    """Headers announcing huge buffers that never come: refused beyond the peer's share,
    dropped after the progress timeout, and the budget comes back."""
    peer = RawPeer(address)
    sid0 = session_of(peer)
    refused, held = [], []
    for _ in range(12):
        sid, header = peer.request_header("op", [sid0, VADD, []], [1 << 30])
        peer.send(header)
        refused.append(sid)
    for sid in refused:
        resp = answer(peer, sid)
        assert resp.status == Status.RESOURCE_EXHAUSTED and "limit" in resp.message
    for _ in range(8):  # 20 MiB each: three fit in the peer's 64 MiB share, the rest do not
        sid, header = peer.request_header("op", [sid0, VADD, []], [10 * MiB, 10 * MiB])
        peer.send(header)
        held.append(sid)
    statuses = [answer(peer, sid, 10).status for sid in held]
    assert statuses.count(Status.RESOURCE_EXHAUSTED) >= 4, statuses
    assert statuses.count(Status.DEADLINE_EXCEEDED) >= 1, statuses  # dropped: data never came
    peer.close()


def test_huge_bodies_awaiting_data_are_charged(address: str) -> None:
    peer = RawPeer(address)
    sid0 = session_of(peer)
    body_arg = [list(range(1000))] * 16  # 16,000 values: about 50 KB of msgpack
    sids = []
    for _ in range(120):  # 800 KB charged each (what their decoded bodies may hold)
        sid, header = peer.request_header("op", [sid0, VADD, body_arg], [8])
        peer.send(header)
        sids.append(sid)
    statuses = [answer(peer, sid, 10).status for sid in sids]
    assert Status.RESOURCE_EXHAUSTED in statuses, statuses
    peer.close()


def test_results_are_sized_before_any_work(address: str) -> None:
    """sgemm with k=0: a 45-byte request asking for a 40 GB result is refused at once."""
    peer = RawPeer(address)
    sid0 = session_of(peer)
    n = 100_000
    empty = np.empty(0, f32)
    sid, frames = peer.conn.request(
        "op", [sid0, SGEMM, [n, n, 0, 1.0, empty, 1, empty, n, 0.0, n, None]]
    )
    start = time.monotonic()
    peer.send_frames(frames)
    resp = answer(peer, sid)
    assert resp.status == Status.RESOURCE_EXHAUSTED and "result" in resp.message
    assert time.monotonic() - start < 0.5
    peer.close()


@pytest.mark.parametrize(
    ("elements", "connections"),
    [(MiB // 4, 2), (15_000, 4)],  # 1 MiB out of band; 60 KB inline, many small replies
)
def test_replies_to_a_client_that_never_reads_are_bounded(
    agent: SpawnedAgent, address: str, elements: int, connections: int
) -> None:
    """Clients that send and never read: the agent stops reading them once their replies
    back up (inline one-frame replies as well as large ones), what waits to go out counts
    in their memory, and calls that do not fit are refused: several such connections
    cannot grow the agent."""
    peers = []
    payload = np.ones(elements, np.int32)
    before = agent.peak_rss()
    sent = 0
    for _ in range(connections):
        peer = RawPeer(address)
        peers.append(peer)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sid0 = session_of(peer)
        peer.sock.settimeout(0.2)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            _, frames = peer.conn.request("op", [sid0, COPY, [payload]])
            try:
                peer.send_frames(frames)
            except (TimeoutError, BlockingIOError):
                break  # the agent stopped reading us: backpressure
            sent += 1
    assert agent.peak_rss() - before < 200 * MiB, f"{sent} requests sent"
    for peer in peers:
        peer.close()


def test_resources_are_counted(address: str) -> None:
    peer = RawPeer(address)
    statuses = []
    for i in range(80):  # the peer may keep a quarter of the agent's 256
        sid, frames = peer.conn.request("resource.create", [1, [f"f{i}"], [b"x" * 1000]])
        peer.send_frames(frames)
        statuses.append(answer(peer, sid).status)
    assert statuses[:64] == [Status.OK] * 64 and Status.RESOURCE_EXHAUSTED in statuses[64:]
    sid, frames = peer.conn.request("resource.create", [1, ["../../etc/passwd"], [b"x"]])
    peer.send_frames(frames)
    assert answer(peer, sid).status == Status.INVALID_ARGUMENT
    peer.close()


def test_calls_in_flight_are_bounded_per_peer(agent: SpawnedAgent, address: str) -> None:
    peers = [RawPeer(address) for _ in range(4)]
    sessions = [session_of(p) for p in peers]
    sids: list[tuple[RawPeer, int]] = []
    for peer, session in zip(peers, sessions, strict=True):
        for _ in range(30):
            sid, frames = peer.conn.request("op", [session, EXEC, ["time", "sleep", [0.1], []]])
            peer.send_frames(frames)
            sids.append((peer, sid))
    time.sleep(0.3)
    good_client_is_served(agent.addresses[0])  # another peer's small calls do not queue
    statuses = [answer(p, sid, 15).status for p, sid in sids]
    assert statuses.count(Status.RESOURCE_EXHAUSTED) >= 120 - 64, statuses
    for peer in peers:
        peer.close()


# ---------------------------------------------------------------------- slots


def test_connection_slots_are_per_peer(agent: SpawnedAgent, address: str) -> None:
    peers = [RawPeer(address, hello=False) for _ in range(20)]  # a quarter of 64 fit
    refused = []
    for peer in peers:
        with contextlib.suppress(OSError):  # unix: refused, closed, its GOAWAY still to read
            peer.send(peer.conn.hello())
        peer.pump(0.3)
    for peer in peers:
        goaway = next((e for e in peer.events if isinstance(e, GoAway)), None)
        if goaway is None and not peer.closed:
            continue
        goaway = goaway or peer.wait_closed()
        assert goaway is not None and goaway.status == Status.RESOURCE_EXHAUSTED
        assert "per-peer connections (--max-peer-connections" in goaway.message
        refused.append(peer)
    assert len(refused) == 4
    good_client_is_served(agent.addresses[0])  # another peer still connects


def test_session_slots_are_per_peer(agent: SpawnedAgent, address: str) -> None:
    peer = RawPeer(address)
    statuses = []
    for _ in range(70):  # a quarter of 256 is 64
        sid, frames = peer.conn.request("session.create", [0])
        peer.send_frames(frames)
        statuses.append(answer(peer, sid).status)
    assert Status.RESOURCE_EXHAUSTED in statuses and statuses.count(Status.OK) == 64
    runtime = Runtime(Config("rpc", 0, rpc_address=agent.addresses[0]))
    with Session(runtime=runtime) as s:  # another peer still gets sessions
        assert s.fpga_vadd([1.0], [2.0]) == [3.0]
    runtime.close()
    peer.close()


# ---------------------------------------------------------------------- timeouts


def test_no_hello_is_closed_by_the_handshake_timeout(address: str) -> None:
    peer = RawPeer(address, hello=False)
    start = time.monotonic()
    goaway = peer.wait_closed()
    assert goaway is not None and "HELLO" in goaway.message
    assert time.monotonic() - start < 5


def test_idle_connection_is_closed(address: str) -> None:
    peer = RawPeer(address)
    goaway = peer.wait_closed(10)
    assert goaway is not None and "idle" in goaway.message


def test_slow_loris_frame_is_closed(address: str) -> None:
    peer = RawPeer(address)
    _, header = peer.request_header("op", [1, VADD, []], [])
    header = raw_header(len(header) + 100_000, 1, FrameType.REQUEST)  # a long frame, dripped
    start = time.monotonic()
    for byte in header:
        if peer.closed:
            break
        try:
            peer.send(bytes([byte]))
        except OSError:
            break
        peer.pump(0.4)
    while not peer.closed and time.monotonic() - start < 10:
        try:
            peer.send(b"\0")
        except OSError:  # closed (a unix socket says so on the next write): read to the end
            peer.wait_closed(1)
            break
        peer.pump(0.4)
    assert peer.closed and time.monotonic() - start < 10


def test_slow_data_is_dropped(address: str) -> None:
    peer = RawPeer(address)
    sid0 = session_of(peer)
    sid, header = peer.request_header("op", [sid0, VADD, []], [MiB, MiB])
    peer.send(header)
    end = time.monotonic() + 6
    resp = None
    while time.monotonic() < end and resp is None:
        peer.send(peer.data(sid, b"\0" * 100, end=False))
        peer.pump(0.3)
        resp = next(
            (e for e in peer.events if isinstance(e, Response) and e.stream_id == sid), None
        )
    assert resp is not None and resp.status == Status.DEADLINE_EXCEEDED
    peer.close()


# ---------------------------------------------------------------------- the protocol


def test_oversized_frames_before_hello_are_not_buffered(address: str) -> None:
    peer = RawPeer(address, hello=False)
    peer.send(raw_header(4 * MiB, 0, FrameType.HELLO))
    goaway = peer.wait_closed()
    assert goaway is not None and goaway.status == Status.RESOURCE_EXHAUSTED


def test_hello_is_bounded(address: str) -> None:
    peer = RawPeer(address, hello=False)
    info = {"version": 1, "min": 1, "max": 1, "caps": ["x" * 50] * 70}
    body = msgpack.packb(info)
    peer.send(raw_header(len(body), 0, FrameType.HELLO) + body)
    goaway = peer.wait_closed()
    assert goaway is not None and goaway.status in (
        Status.RESOURCE_EXHAUSTED,
        Status.FAILED_PRECONDITION,
    )


@pytest.mark.parametrize("shape", ["list", "maps"])
def test_a_million_values_are_refused_fast(address: str, shape: str) -> None:
    """A body of many values, in one list or in many maps of thousands of entries each,
    is refused before decoding it could hold the loop."""
    peer = RawPeer(address)
    sid0 = session_of(peer)
    values: Any = [None] * 900_000
    if shape == "maps":
        values = [{i: None for i in range(4000)} for _ in range(62)]
    body = msgpack.packb(["op", [sid0, VADD, [values]], None, {}, []])
    sid = peer.conn.next_stream_id
    peer.conn.next_stream_id += 2
    peer.conn.open_streams.add(sid)
    start = time.monotonic()
    peer.send(raw_header(len(body), sid, FrameType.REQUEST) + body)
    resp = answer(peer, sid)
    assert resp.status == Status.RESOURCE_EXHAUSTED and time.monotonic() - start < 0.5
    assert "16384" in resp.message and "too large to decode" in resp.message
    peer.close()


def test_deep_nesting_is_an_invalid_argument(address: str) -> None:
    peer = RawPeer(address)
    sid0 = session_of(peer)
    nested: Any = 1
    for _ in range(600):
        nested = [nested]
    body = msgpack.packb(["op", [sid0, VADD, [nested, [1.0]]], None, {}, []])
    sid = peer.conn.next_stream_id
    peer.conn.next_stream_id += 2
    peer.conn.open_streams.add(sid)
    peer.send(raw_header(len(body), sid, FrameType.REQUEST) + body)
    resp = answer(peer, sid)
    assert resp.status == Status.INVALID_ARGUMENT and "element 0" in resp.message
    assert len(resp.message) < 300  # the value is shown short, never in full
    nested = [nested, "x" * 20000]  # a large body: refused by the decoder itself
    body = msgpack.packb(["op", [sid0, VADD, nested], None, {}, []])
    sid = peer.conn.next_stream_id
    peer.conn.next_stream_id += 2
    peer.conn.open_streams.add(sid)
    peer.send(raw_header(len(body), sid, FrameType.REQUEST) + body)
    resp = answer(peer, sid)
    assert resp.status == Status.INVALID_ARGUMENT and "deeper" in resp.message
    peer.close()


def test_cancel_of_a_half_received_message_discards_it(address: str) -> None:
    peer = RawPeer(address)
    sid0 = session_of(peer)
    a = np.ones(MiB // 4, f32)
    sid, frames = peer.conn.request("op", [sid0, VADD, [a, a]])
    assert len(frames) == 3  # the header, then two 1 MiB DATA frames
    peer.send_frames(frames[:2])
    peer.send(raw_header(0, sid, FrameType.CANCEL))
    peer.send_frames(frames[2:])  # the rest arrives anyway: it is skipped
    sid2, frames2 = peer.conn.request("op", [sid0, VADD, [[1.0], [2.0]]])
    peer.send_frames(frames2)
    assert answer(peer, sid2).result.tolist() == [3.0]
    peer.pump(0.5)
    assert not [e for e in peer.events if isinstance(e, Response) and e.stream_id == sid]
    peer.close()


# ---------------------------------------------------------------------- work and deadlines


def test_deadline_stops_work_in_the_pool(transport: str) -> None:
    proc = spawn("--workers", "1", "--max-memory", "1G", addresses=[transport])
    runtime = Runtime(Config("rpc", 0, rpc_address=proc.addresses[0], rpc_timeout=0.2))
    n = 3000
    a = np.random.default_rng(0).random(n * n, dtype=f32)
    try:
        with Session(runtime=runtime) as s:
            start = time.monotonic()
            with pytest.raises(Exception, match="deadline|within"):
                s.fpga_mmult(a, a)
            assert time.monotonic() - start < 1
            # The one pool thread is free again soon: the big product stopped.
            time.sleep(0.3)
            start = time.monotonic()
            small = np.ones(200_000, f32)
            np.testing.assert_array_equal(s.fpga_vadd(small, small), small + small)
            assert time.monotonic() - start < 1.0  # the product alone would take seconds
    finally:
        runtime.close()
        assert proc.stop() == 0


@pytest.mark.asyncio
async def test_drain_timeout_bounds_the_exit(transport: str) -> None:
    proc = spawn("--drain-timeout", "1", addresses=[transport])
    c = connect(proc.addresses[0], source="127.0.0.1")  # keep a client connected
    try:
        client = await AsyncClient.connect(proc.addresses[0])
        sid = await client.call("session.create", [0])
        task = asyncio.ensure_future(client.call("op", [sid, EXEC, ["time", "sleep", [30.0], []]]))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        with pytest.raises(UnavailableError):
            await task
        await client.close()
        assert await asyncio.to_thread(proc.proc.wait, 10) == 0
        assert time.monotonic() - start < 5
    finally:
        c.close()
        proc.stop()


@pytest.mark.asyncio
async def test_sigterm_under_load(transport: str) -> None:
    proc = spawn("--drain-timeout", "5", addresses=[transport])
    runtime = Runtime(Config("rpc", 0, rpc_address=proc.addresses[0]))
    try:
        async with AsyncSession(runtime=runtime) as s:
            a = np.ones(16 * 1024, f32)
            slots = asyncio.Semaphore(48)  # the peer's calls in flight stay under its 64

            async def call() -> Any:
                async with slots:
                    return await s.fpga_vadd(a, a)

            calls = [asyncio.ensure_future(call()) for _ in range(300)]
            await asyncio.sleep(0.05)
            proc.proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls, return_exceptions=True)
        for r in results:
            assert isinstance(r, UnavailableError) or np.array_equal(r, np.full(16 * 1024, 2, f32))
        assert await asyncio.to_thread(proc.proc.wait, 10) == 0
    finally:
        runtime.close()
        proc.stop()


# ---------------------------------------------------------------------- faults


@pytest.mark.asyncio
async def test_frozen_agent_fails_calls_within_the_keepalive(transport: str) -> None:
    proc = spawn(addresses=[transport])
    env = {"VACCEL_RPC_KEEPALIVE": "0.5"}
    runtime = Runtime(
        Config.from_env({"VACCEL_PLUGINS": "rpc", "VACCEL_RPC_ADDRESS": proc.addresses[0], **env})
    )

    def blocking_session() -> None:
        with Session(runtime=runtime) as s:
            assert s.fpga_vadd([1.0], [1.0]) == [2.0]
            os.kill(proc.pid, signal.SIGSTOP)
            start = time.monotonic()
            with pytest.raises(ConnectionLostError, match="keepalive"):
                s.fpga_vadd([1.0], [1.0])
            assert time.monotonic() - start < 3

    try:
        await asyncio.to_thread(blocking_session)  # the blocking client, off this loop
        start = time.monotonic()
        with pytest.raises(UnavailableError):
            client = await AsyncClient.connect(proc.addresses[0], keepalive=0.5, timeout=1)
            await client.close()
        assert time.monotonic() - start < 3
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        runtime.close()
        proc.stop()


def test_exec_wildcards_are_refused() -> None:
    with pytest.raises(RuntimeError, match="exact module:function"):
        SpawnedAgent(
            ["tcp://127.0.0.1:0"], clean_env(VACCEL_PLUGINS="numpy", VACCEL_EXEC_ALLOW="numpy:*")
        )
