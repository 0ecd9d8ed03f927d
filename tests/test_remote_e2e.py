"""End to end: a real vaccel-agent process, the rpc plugin and the async client."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from agent_proc import AgentProcess, start_agent
from conftest import VENV_BIN, assert_transcript, seed_console_blocks, tool_env

from vaccel import AsyncSession, Config, Resource, ResourceType, Runtime, Session
from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import (
    BadArgumentError,
    DeadlineExceededError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    UnavailableError,
)
from vaccel.protocol.frames import HEADER

f32 = np.float32


@pytest.fixture(scope="module")
def agent(tmp_path_factory: Any) -> Iterator[AgentProcess]:
    sock = tmp_path_factory.mktemp("agent") / "vaccel.sock"
    proc = start_agent(
        "tcp://127.0.0.1:0",
        f"unix://{sock}",
        plugins="numpy:noop",
        VACCEL_EXEC_ALLOW="time:sleep,math:*",
    )
    yield proc
    assert proc.stop() == 0


@pytest.fixture(params=["tcp", "unix"])
def address(request: Any, agent: AgentProcess) -> str:
    return next(a for a in agent.addresses if a.startswith(request.param))


@pytest.fixture
def remote(address: str) -> Iterator[Runtime]:
    runtime = Runtime(Config(plugins="rpc", rpc_address=address, log_level=0))
    yield runtime
    runtime.close()


@pytest.fixture
def local() -> Iterator[Runtime]:
    runtime = Runtime(Config(plugins="numpy:noop", log_level=0, exec_allow=["math:*"]))
    yield runtime
    runtime.close()


RNG = np.random.default_rng(3)
BIG = RNG.random(1 << 21, dtype=f32)  # 8 MiB: several DATA frames each way
OPS: list[tuple[str, tuple[Any, ...]]] = [
    ("noop", ()),
    ("fpga_vadd", ([5.0, 1.0, 2.1, 1.2, 5.2], [-2.2, 1.1, 6.4, 2.3, 6.1])),
    ("fpga_vadd", (BIG, BIG[::-1].copy())),
    ("fpga_arraycopy", (list(range(-5, 5)),)),
    ("fpga_arraycopy", (np.arange(100_000, dtype=np.int32),)),
    ("fpga_mmult", (RNG.random(64 * 64, dtype=f32), RNG.random(64 * 64, dtype=f32))),
    ("fpga_parallel", ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])),
    ("minmax", (np.linspace(-50, 9000, 4096).tobytes(), 4096, 10, 5000)),
    ("sgemm", (3, 4, 5, 2.0, RNG.random(15, dtype=f32), 5, RNG.random(20, dtype=f32), 4, 0.0, 4)),
    ("exec", ("math", "hypot", [3.0, 4.0])),
    ("classify", (b"\xff\xd8" + bytes(5000),)),
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


@pytest.mark.parametrize(("method", "args"), OPS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(OPS)])
def test_every_op_remote_equals_local(
    remote: Runtime, local: Runtime, method: str, args: tuple[Any, ...]
) -> None:
    with Session(runtime=local) as s:
        expected = getattr(s, method)(*args)
    with Session(runtime=remote) as s:
        assert s.is_remote and s.remote_id is not None
        got = getattr(s, method)(*args)
    assert type(got) is type(expected)
    assert same(got, expected)


def test_async_session_remote(remote: Runtime) -> None:
    async def go() -> None:
        async with AsyncSession(runtime=remote) as s:
            assert s.is_remote
            results = await asyncio.gather(*(s.fpga_vadd([float(i)], [1.0]) for i in range(200)))
            assert results == [[float(i) + 1] for i in range(200)]
            out = await s.fpga_vadd(BIG, BIG)
            np.testing.assert_array_equal(out, BIG + BIG)

    asyncio.run(go())


def test_resources_and_model_ops_remote(remote: Runtime, tmp_path: Any) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(300_000))
    model = Resource(str(path), ResourceType.MODEL)
    x = np.arange(10, dtype=f32)
    with Session(runtime=remote) as s:
        model.register(s)
        s.tf_model_load(model)
        assert s.tf_model_run(model, [x])[0].tolist() == x.tolist()
        assert s.exec_with_resource(model, "f", [b"abcd"], [b"0000"]) == [b"abcd"]
        model.unregister(s)
        with pytest.raises(NotFoundError):
            s.tf_model_load(model)


def test_agent_checks_arguments_and_ownership(address: str) -> None:
    async def go() -> None:
        a = await AsyncClient.connect(address)
        b = await AsyncClient.connect(address)
        sid = await a.call("session.create", [0])
        with pytest.raises(NotFoundError, match="not a session of this connection"):
            await b.call("op", [sid, 0, []])
        with pytest.raises(BadArgumentError, match="same length"):
            await a.call("op", [sid, 19, [np.ones(3, f32), np.ones(4, f32)]])
        with pytest.raises(BadArgumentError, match="element 0"):
            await a.call("op", [sid, 19, [["x"], [1.0]]])
        with pytest.raises(BadArgumentError, match="fpga_vadd"):
            await a.call("op", [sid, 19, [[1.0]]])
        with pytest.raises(NotSupportedError, match="unknown method"):
            await a.call("drop.tables", [])
        with pytest.raises(NotSupportedError, match="999"):
            await a.call("op", [sid, 999, []])
        with pytest.raises(PermissionDeniedError, match="allow-list"):
            await a.call("op", [sid, 7, ["os", "system", ["true"], []]])
        assert (
            await b.call("op", [await b.call("session.create", [0]), 19, [[1.0], [2.0]]])
        ).tolist() == [3.0]
        await a.close()
        await b.close()

    asyncio.run(go())


def test_garbage_gets_goaway_and_agent_serves_others(address: str, remote: Runtime) -> None:
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", HEADER.pack(0xFFFFFFF0, 1, 2, 0), os.urandom(64)):
        if address.startswith("tcp"):
            host, port = re.match(r"tcp://(.+):(\d+)", address).groups()  # type: ignore[union-attr]
            sock = socket.create_connection((host, int(port)), timeout=5)
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(address[len("unix://") :])
        sock.sendall(garbage)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        sock.close()
        assert reply[8] == 0x06  # GOAWAY, then the agent closed the connection
    with Session(runtime=remote) as s:
        assert s.fpga_vadd([1.0], [1.0]) == [2.0]


def test_hundred_concurrent_clients(address: str) -> None:
    async def one(i: int) -> bool:
        client = await AsyncClient.connect(address)
        try:
            sid = await client.call("session.create", [0])
            a = np.full(256, i, f32)
            out = await client.call("op", [sid, 19, [a, a]])
            return bool(np.array_equal(out, a + a))
        finally:
            await client.close()

    async def go() -> list[bool]:
        return await asyncio.gather(*(one(i) for i in range(100)))

    assert all(asyncio.run(go()))


def test_deadline_is_enforced(address: str) -> None:
    runtime = Runtime(Config(plugins="rpc", rpc_address=address, log_level=0, rpc_timeout=0.3))
    try:
        with Session(runtime=runtime) as s:
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                s.exec("time", "sleep", [3.0])
            assert time.monotonic() - start < 2
            assert s.fpga_vadd([1.0], [2.0]) == [3.0]  # the connection still serves
    finally:
        runtime.close()


def test_agent_down_fails_fast() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    runtime = Runtime(Config(plugins="rpc", rpc_address=f"tcp://127.0.0.1:{port}", log_level=0))
    try:
        start = time.monotonic()
        with pytest.raises(UnavailableError, match="cannot reach"):
            Session(runtime=runtime)
        assert time.monotonic() - start < 5
    finally:
        runtime.close()


def test_agent_dying_mid_call_fails_the_call() -> None:
    proc = start_agent("tcp://127.0.0.1:0", VACCEL_EXEC_ALLOW="time:sleep")
    runtime = Runtime(Config(plugins="rpc", rpc_address=proc.addresses[0], log_level=0))
    try:
        with Session(runtime=runtime) as s:
            import threading

            threading.Timer(0.5, proc.proc.kill).start()
            start = time.monotonic()
            with pytest.raises(UnavailableError, match="lost"):
                s.exec("time", "sleep", [30.0])
            assert time.monotonic() - start < 10
            s.closed = True  # its agent is gone
    finally:
        runtime.close()
        proc.stop()


def test_sigterm_drains_in_flight_calls() -> None:
    proc = start_agent("tcp://127.0.0.1:0", VACCEL_EXEC_ALLOW="time:sleep")

    async def go() -> Any:
        client = await AsyncClient.connect(proc.addresses[0])
        sid = await client.call("session.create", [0])
        call = asyncio.ensure_future(client.call("op", [sid, 7, ["time", "sleep", [1.0], [None]]]))
        await asyncio.sleep(0.3)
        proc.proc.send_signal(signal.SIGTERM)
        result = await call
        await client.close()
        return result

    assert asyncio.run(go()) == [None]
    assert proc.stop() == 0


def test_seed_remote_transcript() -> None:
    fresh = start_agent("tcp://127.0.0.1:0")  # remote session ids start at 1, as in the seed
    tcp = fresh.addresses[0]
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "example", "pynq_vector_add_generic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        env=tool_env(
            VACCEL_BACKENDS="/usr/local/lib/libvaccel-vsock.so",
            VACCEL_DEBUG_LEVEL="4",
            VACCEL_VSOCK=tcp,
        ),
    ).stdout.splitlines()
    assert fresh.stop() == 0
    extra = re.compile(
        r"<debug> Registered function (noop|Exec with resource|"
        r"Torch jitload_forward function|TensorFlow Lite session \w+) from plugin "
        r"vsock"
    )
    assert_transcript(out, seed_console_blocks()[6], extra)


def test_seed_agent_banner() -> None:
    proc = subprocess.Popen(
        [str(VENV_BIN / "vaccelrt-agent"), "-a", "tcp://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=tool_env(VACCEL_BACKENDS="/usr/lib/libvaccel-numpy.so", VACCEL_DEBUG_LEVEL="4"),
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Server is running"):
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    proc.stdout.close()
    seed = seed_console_blocks()[4]
    assert re.fullmatch(
        r"vaccel ttRPC server started\. address: tcp://127\.0\.0\.1:\d+", lines[-2].strip()
    )
    assert lines[-1].strip() == seed[-1]
    assert any("Registered plugin numpy" in ln for ln in lines)


def test_agent_memory_budget() -> None:
    from agent_proc import SpawnedAgent, clean_env

    from vaccel.errors import ResourceExhaustedError

    small = SpawnedAgent(
        ["tcp://127.0.0.1:0"], clean_env(VACCEL_PLUGINS="numpy"), extra_args=["--max-memory", "4M"]
    )
    runtime = Runtime(Config(plugins="rpc", rpc_address=small.addresses[0], log_level=0))
    try:
        with Session(runtime=runtime) as s:
            big = np.ones(1 << 20, f32)  # 2 x 4 MiB in: over the budget
            with pytest.raises(ResourceExhaustedError, match="budget"):
                s.fpga_vadd(big, big)
            half = np.ones(1 << 18, f32)  # 2 x 1 MiB: fits, again and again
            for _ in range(10):
                np.testing.assert_array_equal(s.fpga_vadd(half, half), half + half)
    finally:
        runtime.close()
        assert small.stop() == 0


def test_calls_are_answered_as_they_finish_and_cancel_frees_the_stream(address: str) -> None:
    async def go() -> None:
        client = await AsyncClient.connect(address)
        sid = await client.call("session.create", [0])
        order: list[str] = []

        async def slow() -> None:
            await client.call("op", [sid, 7, ["time", "sleep", [0.6], [None]]])
            order.append("slow")

        async def fast() -> None:
            await client.call("op", [sid, 19, [[1.0], [2.0]]])
            order.append("fast")

        await asyncio.gather(slow(), fast())
        assert order == ["fast", "slow"]
        hung = asyncio.ensure_future(client.call("op", [sid, 7, ["time", "sleep", [2.0], [None]]]))
        await asyncio.sleep(0.2)
        hung.cancel()  # sends CANCEL; the agent drops the call
        with pytest.raises(asyncio.CancelledError):
            await hung
        start = time.monotonic()
        assert (await client.call("op", [sid, 19, [[1.0], [1.0]]])).tolist() == [2.0]
        assert time.monotonic() - start < 1.0
        await client.close()

    asyncio.run(go())


def test_vaccel_ping(address: str) -> None:
    out = subprocess.run(
        [str(VENV_BIN / "vaccel"), "ping", address, "-c", "3"],
        capture_output=True,
        text=True,
        timeout=30,
        env=tool_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(" us") == 3 and "pyvaccel-agent" in out.stdout
    down = subprocess.run(
        [str(VENV_BIN / "vaccel"), "ping", "unix:///nonexistent.sock"],
        capture_output=True,
        text=True,
        timeout=30,
        env=tool_env(),
    )
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_sync_sessions_from_many_threads(remote: Runtime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> bool:
        with Session(runtime=remote) as s:
            return all(s.fpga_vadd([float(i)], [float(k)]) == [float(i + k)] for k in range(20))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(32)))
