"""End to end: a real vaccel-agent process, the rpc plugin and the async client."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from agent_proc import AgentProcess, SpawnedAgent, clean_env, start_agent
from conftest import VENV_BIN, assert_transcript, seed_console_blocks, tool_env

from vaccel import Arg, AsyncSession, Config, OpType, Resource, ResourceType, Runtime, Session
from vaccel.client.asyncclient import AsyncClient
from vaccel.errors import (
    BadArgumentError,
    DeadlineExceededError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SessionLostError,
    UnavailableError,
)
from vaccel.ops.tf import Node, Status
from vaccel.ops.tf import Tensor as TFTensor
from vaccel.ops.tf.lite import Tensor as LiteTensor
from vaccel.ops.torch import Tensor as TorchTensor
from vaccel.protocol.frames import HEADER

f32 = np.float32
EXEC_ALLOW = "time:sleep,math:hypot,math:sqrt"
VADD, EXEC = int(OpType.FPGA_VECTORADD), int(OpType.EXEC)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: Any) -> Iterator[AgentProcess]:
    sock = tmp_path_factory.mktemp("agent") / "vaccel.sock"
    proc = start_agent(
        "tcp://127.0.0.1:0", f"unix://{sock}", plugins="numpy:noop", VACCEL_EXEC_ALLOW=EXEC_ALLOW
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
    runtime = Runtime(Config(plugins="numpy:noop", log_level=0, exec_allow=EXEC_ALLOW.split(",")))
    yield runtime
    runtime.close()


@pytest_asyncio.fixture
async def client(address: str) -> AsyncIterator[AsyncClient]:
    c = await AsyncClient.connect(address)
    yield c
    await c.close()


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
    ("exec", ("math", "hypot", [3.0, 4.0], [Arg(0.0)])),
    ("exec", ("math", "sqrt", [16.0])),
    ("classify", (b"\xff\xd8" + bytes(5000),)),
    ("detect", (b"\xff\xd8" + bytes(100),)),
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    if hasattr(a, "as_numpy") and hasattr(b, "as_numpy"):
        return a.dims == b.dims and a.data_type == b.data_type and a.to_bytes() == b.to_bytes()
    return bool(a == b)


@pytest.mark.parametrize(("method", "args"), OPS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(OPS)])
def test_every_op_remote_equals_local(
    remote: Runtime, local: Runtime, method: str, args: tuple[Any, ...]
) -> None:
    with Session(runtime=local) as s:
        expected = getattr(s, method)(*args)
    with Session(runtime=remote) as s:
        assert s.is_remote and s.remote_id > 0 and s.remote_address is not None
        got = getattr(s, method)(*args)
    assert type(got) is type(expected)
    assert same(got, expected)


def _model_calls(s: Session, model: Resource) -> list[Any]:
    x = np.arange(12, dtype=f32).reshape(3, 4)
    return [
        s.tf_model_load(model),
        s.tf_model_run(model, [Node("in", 0)], [TFTensor.from_numpy(x)], [Node("out", 0)]),
        s.tf_model_unload(model),
        s.tflite_model_load(model),
        s.tflite_model_run(model, [LiteTensor.from_numpy(x.astype(np.int32))], 1),
        s.tflite_model_unload(model),
        s.torch_model_load(model),
        s.torch_model_run(model, [TorchTensor([2, 2], 7, [1.0, 2.0, 3.0, 4.0])]),
        s.genop([Arg(int(OpType.FPGA_VECTORADD)), Arg([1.0]), Arg([2.0])], [Arg([0.0])]),
    ]


def test_model_ops_and_tensors_remote_equal_local(
    remote: Runtime, local: Runtime, tmp_path: Any
) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(300_000))
    results = []
    for runtime in (local, remote):
        model = Resource(str(path), ResourceType.MODEL)
        with Session(runtime=runtime) as s:
            model.register(s)
            results.append(_model_calls(s, model))
            assert model.remote_id == (0 if runtime is local else model.remote_id)
    assert same(results[0], results[1])
    assert results[1][0] == Status(0, "Operation handled by noop plugin")
    outs, status = results[1][1]
    assert outs[0].as_numpy().tolist() == np.arange(12, dtype=f32).reshape(3, 4).tolist()


def test_directory_resource_travels_as_one(remote: Runtime, tmp_path: Any) -> None:
    saved = tmp_path / "saved_model"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "variables.index").write_bytes(b"index")
    model = Resource(saved, ResourceType.MODEL)
    assert model.names == ["saved_model/saved_model.pb", "saved_model/variables/variables.index"]
    with Session(runtime=remote) as s:
        model.register(s)
        assert s.tf_model_load(model).code == 0 and model.remote_id > 0


def test_model_ops_check_the_resource_as_vaccel(remote: Runtime) -> None:
    lib = Resource.from_buffer(b"lib", ResourceType.LIB)
    model = Resource.from_buffer(b"model", ResourceType.MODEL)
    with Session(runtime=remote) as s:
        with pytest.raises(PermissionDeniedError):  # not registered: EPERM
            s.tf_model_load(model)
        lib.register(s)
        with pytest.raises(BadArgumentError, match="needs a MODEL resource"):  # EINVAL
            s.tf_model_load(lib)
        assert s.exec_with_resource(lib, "f", [b"abcd"], [Arg(bytearray(4))]) == [
            bytearray(b"abcd")
        ]


@pytest.mark.asyncio
async def test_async_session_remote(remote: Runtime) -> None:
    async with AsyncSession(runtime=remote) as s:
        assert s.is_remote
        results = await asyncio.gather(*(s.fpga_vadd([float(i)], [1.0]) for i in range(200)))
        assert results == [[float(i) + 1] for i in range(200)]
        out = await s.fpga_vadd(BIG, BIG)
        np.testing.assert_array_equal(out, BIG + BIG)


@pytest.mark.asyncio
async def test_agent_checks_arguments_and_ownership(address: str) -> None:
    a = await AsyncClient.connect(address)
    b = await AsyncClient.connect(address)
    sid = await a.call("session.create", [0])
    with pytest.raises(NotFoundError, match="not a session of this connection"):
        await b.call("op", [sid, 0, []])
    with pytest.raises(BadArgumentError, match="same length"):
        await a.call("op", [sid, VADD, [np.ones(3, f32), np.ones(4, f32)]])
    with pytest.raises(BadArgumentError, match="element 0"):
        await a.call("op", [sid, VADD, [["x"], [1.0]]])
    with pytest.raises(BadArgumentError, match="fpga_vadd"):
        await a.call("op", [sid, VADD, [[1.0]]])
    with pytest.raises(NotSupportedError, match="unknown method"):
        await a.call("drop.tables", [])
    with pytest.raises(NotSupportedError, match="999"):
        await a.call("op", [sid, 999, []])
    with pytest.raises(PermissionDeniedError, match="allow-list.*on the agent"):
        await a.call("op", [sid, EXEC, ["os", "system", ["true"], []]])
    sid_b = await b.call("session.create", [0])
    assert (await b.call("op", [sid_b, VADD, [[1.0], [2.0]]])).tolist() == [3.0]
    await a.close()
    await b.close()


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


@pytest.mark.asyncio
async def test_hundred_concurrent_clients(address: str) -> None:
    async def one(i: int) -> bool:
        c = await AsyncClient.connect(address)
        try:
            sid = await c.call("session.create", [0])
            a = np.full(256, i, f32)
            out = await c.call("op", [sid, VADD, [a, a]])
            return bool(np.array_equal(out, a + a))
        finally:
            await c.close()

    assert all(await asyncio.gather(*(one(i) for i in range(100))))


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
        with pytest.raises(UnavailableError, match="cannot reach") as info:
            Session(runtime=runtime)
        assert info.value.code == 111  # ECONNREFUSED: nothing listens
        assert time.monotonic() - start < 5
    finally:
        runtime.close()


def test_agent_dying_mid_call_loses_the_session_and_new_ones_reconnect() -> None:
    proc = start_agent("tcp://127.0.0.1:0", VACCEL_EXEC_ALLOW="time:sleep")
    address = proc.addresses[0]
    runtime = Runtime(Config(plugins="rpc", rpc_address=address, log_level=0))
    try:
        s = Session(runtime=runtime)
        threading.Timer(0.5, proc.proc.kill).start()
        start = time.monotonic()
        with pytest.raises(UnavailableError, match="lost") as info:
            s.exec("time", "sleep", [30.0])
        assert info.value.code != 111  # a lost connection is not "refused"
        assert time.monotonic() - start < 10
        with pytest.raises(SessionLostError, match="open a new session"):
            s.fpga_vadd([1.0], [1.0])
        s.close()  # freeing a lost session does not fail
        proc.stop()
        port = int(address.rsplit(":", 1)[1])
        proc = SpawnedAgent(
            [f"tcp://127.0.0.1:{port}"], clean_env(VACCEL_PLUGINS="numpy")
        )  # restarted on the same address
        with Session(runtime=runtime) as fresh:  # never the dead connection
            assert fresh.fpga_vadd([1.0], [1.0]) == [2.0]
    finally:
        runtime.close()
        proc.stop()


@pytest.mark.asyncio
async def test_sigterm_drains_in_flight_calls() -> None:
    proc = start_agent("tcp://127.0.0.1:0", VACCEL_EXEC_ALLOW="time:sleep")
    c = await AsyncClient.connect(proc.addresses[0])
    sid = await c.call("session.create", [0])
    call = asyncio.ensure_future(c.call("op", [sid, EXEC, ["time", "sleep", [1.0], [None]]]))
    await asyncio.sleep(0.3)
    proc.proc.send_signal(signal.SIGTERM)
    assert await call == [None]
    await c.close()
    assert await asyncio.to_thread(proc.stop) == 0


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
        r"<debug> Registered function (noop|Exec with resource|Torch [\w ]+|"
        r"TensorFlow Lite session \w+) from plugin vsock"
    )
    assert_transcript(out, seed_console_blocks()[6], extra)


def test_agent_banner() -> None:
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
    # The seed's agent said "vaccel ttRPC server started"; ours speaks its own protocol.
    assert re.fullmatch(
        r"pyvaccel agent started\. address: tcp://127\.0\.0\.1:\d+", lines[-2].strip()
    )
    assert lines[-1].strip() == seed[-1]
    assert any("Registered plugin numpy" in ln for ln in lines)


def test_agent_memory_budget() -> None:
    small = SpawnedAgent(
        ["tcp://127.0.0.1:0"],
        clean_env(VACCEL_PLUGINS="numpy"),
        extra_args=["--max-memory", "12M", "--max-peer-memory", "12M"],
    )
    runtime = Runtime(Config(plugins="rpc", rpc_address=small.addresses[0], log_level=0))
    try:
        with Session(runtime=runtime) as s:
            big = np.ones(1 << 20, f32)  # 2 x 4 MiB in, 4 MiB out: over the budget
            with pytest.raises(ResourceExhaustedError, match="memory.*limit"):
                s.fpga_vadd(big, big)
            half = np.ones(1 << 18, f32)  # 2 x 1 MiB in, 1 MiB out: fits, again and again
            for _ in range(10):
                np.testing.assert_array_equal(s.fpga_vadd(half, half), half + half)
    finally:
        runtime.close()
        assert small.stop() == 0


@pytest.mark.asyncio
async def test_calls_are_answered_as_they_finish_and_cancel_frees_the_stream(
    client: AsyncClient,
) -> None:
    sid = await client.call("session.create", [0])
    order: list[str] = []

    async def slow() -> None:
        await client.call("op", [sid, EXEC, ["time", "sleep", [0.6], [None]]])
        order.append("slow")

    async def fast() -> None:
        await client.call("op", [sid, VADD, [[1.0], [2.0]]])
        order.append("fast")

    await asyncio.gather(slow(), fast())
    assert order == ["fast", "slow"]
    hung = asyncio.ensure_future(client.call("op", [sid, EXEC, ["time", "sleep", [2.0], [None]]]))
    await asyncio.sleep(0.2)
    hung.cancel()  # sends CANCEL; the agent drops the call
    with pytest.raises(asyncio.CancelledError):
        await hung
    start = time.monotonic()
    assert (await client.call("op", [sid, VADD, [[1.0], [1.0]]])).tolist() == [2.0]
    assert time.monotonic() - start < 1.0


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
    def work(i: int) -> bool:
        with Session(runtime=remote) as s:
            return all(s.fpga_vadd([float(i)], [float(k)]) == [float(i + k)] for k in range(20))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(32)))
