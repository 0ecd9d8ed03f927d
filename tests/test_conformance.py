"""One conformance suite: every op against every plugin that implements it.

Plugins: noop, numpy and pynq (its driver on the register-level model of the board)
locally; the rpc plugin forwarding to an agent (in this process, on a unix socket)
that serves noop, numpy or pynq; and the rpc plugin over an in-memory pipe to an agent
on the test's own event loop (`inprocess.MemoryRpcPlugin`, AsyncSessions only). The
remote results must equal the local ones. numpy and pynq are checked against NumPy
computed here; noop against vAccel 0.8's dummy values (vadd and parallel: the seed's).
An op a plugin lacks must say so (NotSupportedError). Each case runs through Session
and AsyncSession.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from inprocess import MemoryRpcPlugin, ThreadAgent

from vaccel import Arg, AsyncSession, Config, OpType, Resource, ResourceType, Runtime, Session
from vaccel.errors import BadArgumentError, NotSupportedError, PermissionDeniedError, PluginError

A5 = [5.0, 1.0, 2.1, 1.2, 5.2]
B5 = [-2.2, 1.1, 6.4, 2.3, 6.1]
f32 = np.float32
NINE = float(f32(9.1))
EXEC_ALLOW = ["numpy:add", "math:hypot"]
#: pynq drives the register-level model of the board (no pynq package or FPGA needed).
PYNQ_ENV = {"VACCEL_PYNQ_BOARD": "sim"}
PLUGINS = [
    "noop",
    "numpy",
    "pynq",
    "rpc:noop",
    "rpc:numpy",
    "rpc:pynq",
    "mem:noop",
    "mem:numpy",
]
#: The ops pynq implements (its cores); it must refuse the others.
PYNQ_OPS = {"fpga_vadd", "fpga_arraycopy", "fpga_mmult", "fpga_parallel"}


def _local(name: str) -> Runtime:
    """A runtime of one local plugin; a skip where it cannot load (pynq's model)."""
    env = PYNQ_ENV if name == "pynq" else {}
    try:
        return Runtime(Config(name, 0, exec_allow=EXEC_ALLOW, env=env))
    except PluginError as exc:
        pytest.skip(f"the {name} plugin cannot load here: {exc}")


@pytest.fixture(scope="module")
def agents(tmp_path_factory: Any) -> Iterator[dict[str, ThreadAgent | str]]:
    """An agent per served plugin, or why it could not start."""
    tmp = tmp_path_factory.mktemp("conformance")
    made: dict[str, ThreadAgent | str] = {}
    for name in ("noop", "numpy", "pynq"):
        config: dict[str, Any] = {"exec_allow": EXEC_ALLOW}
        if name == "pynq":
            config["env"] = PYNQ_ENV
        try:
            made[name] = ThreadAgent(tmp, name, config=config)
        except PluginError as exc:
            made[name] = str(exc)
    yield made
    for agent in made.values():
        if isinstance(agent, ThreadAgent):
            agent.stop()


@pytest.fixture(params=PLUGINS)
def plugin(request: Any, agents: dict[str, ThreadAgent | str]) -> Iterator[tuple[str, Runtime]]:
    """(the plugin that computes, a runtime reaching it locally or through an agent)."""
    name: str = request.param
    way, _, served = name.rpartition(":")
    if way == "rpc":
        agent = agents[served]
        if isinstance(agent, str):
            pytest.skip(f"no agent serving {served} here: {agent}")
        runtime = Runtime(Config("rpc", 0, rpc_address=agent.address))
    elif way == "mem":
        runtime = Runtime(
            Config(
                "inprocess.MemoryRpcPlugin",
                0,
                rpc_address="unix:///not/dialled",
                exec_allow=EXEC_ALLOW,
                env={"VACCEL_TEST_MEMORY_AGENT": served},
            )
        )
    else:
        runtime = _local(served)
    yield served, runtime
    runtime.close()


def async_only(runtime: Runtime) -> bool:
    """True for the in-memory pipe's runtime (no blocking client)."""
    return any(isinstance(p, MemoryRpcPlugin) for p in runtime.plugins)


def sync_session(runtime: Runtime) -> Session:
    """A Session on `runtime`; a skip for the in-memory pipe, which serves AsyncSessions."""
    if async_only(runtime):
        pytest.skip("the in-memory pipe serves AsyncSessions only")
    return Session(runtime=runtime)


def lacks(served: str, method: str) -> bool:
    """True when the plugin does not implement `method` (pynq: only its cores' ops)."""
    return served == "pynq" and method not in PYNQ_OPS


@pytest.fixture(params=["sync", "async"])
def run(request: Any) -> Any:
    """Run one op through a Session or an AsyncSession."""
    if request.param == "sync" and request.node.callspec.params.get("plugin", "")[:4] == "mem:":
        pytest.skip("the in-memory pipe serves AsyncSessions only")

    async def via_async(runtime: Runtime, method: str, args: tuple[Any, ...]) -> Any:
        async with AsyncSession(runtime=runtime) as s:
            return await getattr(s, method)(*args)

    async def via_sync(runtime: Runtime, method: str, args: tuple[Any, ...]) -> Any:
        with sync_session(runtime) as s:
            return getattr(s, method)(*args)

    return via_async if request.param == "async" else via_sync


def exact_vadd(a: Any, b: Any) -> Any:
    return (np.asarray(a, f32) + np.asarray(b, f32)).tolist()


# (method, args, {plugin: expected result})
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("noop", (), {"noop": None, "numpy": None}),
    (
        "fpga_vadd",
        (A5, B5),
        {"noop": [NINE] * 5, "numpy": exact_vadd(A5, B5), "pynq": exact_vadd(A5, B5)},
    ),
    (
        "fpga_arraycopy",
        ([1, -2, 3, 2**31 - 1],),
        {
            "noop": [1, -2, 3, 2**31 - 1],
            "numpy": [1, -2, 3, 2**31 - 1],
            "pynq": [1, -2, 3, 2**31 - 1],
        },
    ),
    (
        "fpga_mmult",
        ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]),
        {"noop": [NINE] * 4, "numpy": [19.0, 22.0, 43.0, 50.0], "pynq": [19.0, 22.0, 43.0, 50.0]},
    ),
    (
        "fpga_mmult",
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
        {"noop": [NINE] * 3, "numpy": BadArgumentError, "pynq": BadArgumentError},
    ),
    (
        "fpga_parallel",
        (A5, B5),
        {
            "noop": ([NINE] * 5, [float(f32(18.2))] * 5),
            "numpy": (exact_vadd(A5, B5), (np.asarray(A5, f32) * np.asarray(B5, f32)).tolist()),
            "pynq": (exact_vadd(A5, B5), (np.asarray(A5, f32) * np.asarray(B5, f32)).tolist()),
        },
    ),
    (
        "sgemm",
        (2, 2, 2, 1.0, [1, 2, 3, 4], 2, [1, 0, 0, 1], 2, 0.0, 2),
        {"noop": [0.0] * 4, "numpy": [1.0, 2.0, 3.0, 4.0]},
    ),
    (
        "exec",
        ("math", "hypot", [3.0, 4.0], [Arg(0.0)]),
        # noop (vAccel 0.8): the 8 bytes of read[0] land in write[0], read back as the
        # write argument's own type (a float), as vaccel-python reads its C buffer.
        {"numpy": [5.0], "noop": [3.0]},
    ),
    (
        "exec",
        ("libmytestlib.so", "f", [np.int32([10])], [np.zeros(1, np.int32)]),
        {"noop": lambda got: [x.tolist() for x in got] == [[10]], "numpy": PermissionDeniedError},
    ),
    (
        "classify",
        (b"\xff\xd8\xff\xe0 not much of a jpeg",),
        {"noop": ("This is a dummy classification tag!", "This is a dummy imgname!")},
    ),
    ("detect", (b"\xff\xd8",), {"noop": "This is a dummy imgname!"}),
    ("segment", (b"\xff\xd8",), {"noop": "This is a dummy imgname!"}),
    ("pose", (b"\xff\xd8",), {"noop": "This is a dummy imgname!"}),
    ("depth", (b"\xff\xd8",), {"noop": "This is a dummy imgname!"}),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "args", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_ops(
    plugin: tuple[str, Runtime], run: Any, method: str, args: tuple[Any, ...], expected: Any
) -> None:
    served, runtime = plugin
    args = copy.deepcopy(args)  # write arguments are written into
    if served not in expected:
        with pytest.raises(NotSupportedError, match=method):
            await run(runtime, method, args)
        return
    want = expected[served]
    if isinstance(want, type) and issubclass(want, Exception):
        with pytest.raises(want):
            await run(runtime, method, args)
        return
    got = await run(runtime, method, args)
    if callable(want):
        assert want(got), got
    else:
        assert got == want


@pytest.mark.asyncio
async def test_numpy_in_numpy_out(plugin: tuple[str, Runtime], run: Any) -> None:
    served, runtime = plugin
    a = np.arange(6, dtype=f32).reshape(2, 3)
    out = await run(runtime, "fpga_vadd", (a, a))
    assert isinstance(out, np.ndarray) and out.shape == (2, 3) and out.dtype == f32
    np.testing.assert_array_equal(out, np.full((2, 3), NINE, f32) if served == "noop" else a + a)


@pytest.mark.asyncio
async def test_large_arrays(plugin: tuple[str, Runtime], run: Any) -> None:
    served, runtime = plugin
    a = np.random.default_rng(0).random(1 << 20, dtype=f32)
    out = await run(runtime, "fpga_arraycopy", (a.view(np.int32),))
    np.testing.assert_array_equal(out, a.view(np.int32))


@pytest.mark.asyncio
async def test_minmax(plugin: tuple[str, Runtime], run: Any) -> None:
    served, runtime = plugin
    data = np.array([-5.0, 3.0, 20.0, 7000.0, 11.0])
    if lacks(served, "minmax"):
        with pytest.raises(NotSupportedError, match="minmax"):
            await run(runtime, "minmax", (data.tobytes(), 5, 10, 5000))
        return
    out, lo, hi = await run(runtime, "minmax", (data.tobytes(), 5, 10, 5000))
    assert type(out) is bytearray  # as vaccel-python returns it
    if served == "numpy":
        np.testing.assert_array_equal(np.frombuffer(out), np.clip(data, 10, 5000))
        assert (lo, hi) == (-5.0, 7000.0)
    else:
        assert np.frombuffer(out).tolist() == data.tolist() and (lo, hi) == (-1.0, 10000.0)


def _sgemm_reference(args: tuple[Any, ...]) -> Any:
    """C = alpha * A @ B + beta * C, computed plainly from sgemm's arguments."""
    m, n, k, alpha, a, lda, b, ldb, beta, ldc, c = args
    A = np.asarray(a, f32)[: m * lda].reshape(m, lda)[:, :k]
    B = np.asarray(b, f32)[: k * ldb].reshape(k, ldb)[:, :n]
    C = np.asarray(c, f32).reshape(m, ldc)[:, :n].copy()
    return (alpha * (A @ B) + beta * C).reshape(-1)


@pytest.mark.asyncio
async def test_sgemm_blas_semantics(plugin: tuple[str, Runtime], run: Any) -> None:
    served, runtime = plugin
    rng = np.random.default_rng(7)
    m, n, k, lda, ldb, ldc = 3, 4, 5, 6, 7, 5
    a, b, c = (
        rng.random(m * lda, dtype=f32),
        rng.random(k * ldb, dtype=f32),
        rng.random(m * ldc, dtype=f32),
    )
    args = (m, n, k, 2.0, a, lda, b, ldb, 0.5, ldc, c)
    if lacks(served, "sgemm"):
        with pytest.raises(NotSupportedError, match="sgemm"):
            await run(runtime, "sgemm", args)
        return
    out = await run(runtime, "sgemm", args)
    assert out.shape == (m * n,)  # m*n elements, as vaccel-python returns
    if served == "numpy":
        want = _sgemm_reference(args)
        np.testing.assert_allclose(out, want, rtol=1e-5)
    else:
        np.testing.assert_array_equal(out, c.reshape(m, ldc)[:, :n].reshape(-1))


def test_numpy_mmult_names_the_lengths_it_can_multiply(plugin: tuple[str, Runtime]) -> None:
    served, runtime = plugin
    with sync_session(runtime) as s:
        if served != "noop":
            with pytest.raises(BadArgumentError, match=f"{served} plugin multiplies square"):
                s.fpga_mmult([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        for empty in ([], np.empty(0, f32)):
            with pytest.raises(BadArgumentError, match="empty"):
                s.fpga_vadd(empty, empty)


def test_exec_needs_exact_allow_listed_names(plugin: tuple[str, Runtime]) -> None:
    served, runtime = plugin
    if served != "numpy":
        pytest.skip("exec of Python callables is the numpy plugin's")
    with sync_session(runtime) as s:
        out = s.exec("numpy", "add", [np.array([1, 2]), np.array([3, 4])], [None])
        assert out[0].tolist() == [4, 6]
        assert s.exec("math", "hypot", [3.0, 4.0]) is None  # no write arguments: None
        with pytest.raises(PermissionDeniedError, match="allow-list"):
            s.exec("math", "sqrt", [4.0], [None])


def test_genop_writes_into_its_write_arguments(plugin: tuple[str, Runtime]) -> None:
    served, runtime = plugin
    out = Arg(np.zeros(3, f32))
    keep = out.buf
    with sync_session(runtime) as s:
        assert (
            s.genop(
                [Arg(int(OpType.FPGA_VECTORADD)), Arg(np.ones(3, f32)), Arg(np.ones(3, f32))], [out]
            )
            is None
        )
    want = [NINE] * 3 if served == "noop" else [2.0] * 3
    assert out.buf.tolist() == want and keep.tolist() == want  # written in place


def test_model_ops_noop_echo(plugin: tuple[str, Runtime], tmp_path: Any) -> None:
    served, runtime = plugin
    if served != "noop":
        pytest.skip("model ops of the inference plugins have their own tests")
    from vaccel.ops.tf import Node, Status
    from vaccel.ops.tf import Tensor as TFTensor
    from vaccel.ops.tf.lite import Tensor as LiteTensor
    from vaccel.ops.torch import Tensor as TorchTensor

    model = tmp_path / "model.pb"
    model.write_bytes(b"model")
    res = Resource(str(model), ResourceType.MODEL)
    x = np.arange(4, dtype=f32)
    with sync_session(runtime) as s:
        res.register(s)
        assert s.has_resource(res)
        assert s.tf_model_load(res) == Status(0, "Operation handled by noop plugin")
        outs, status = s.tf_model_run(res, [Node("x", 0)], [TFTensor.from_numpy(x)], [Node("y", 0)])
        assert outs[0].as_numpy().tolist() == x.tolist() and status.code == 0
        outs, code = s.tflite_model_run(res, [LiteTensor.from_numpy(x)], 1)
        assert outs[0].data == x.tolist() and code == 0
        outs = s.torch_model_run(res, [TorchTensor.from_numpy(x)])
        assert outs[0].data == x.tolist()
        assert s.tf_model_unload(res).code == 0
        res.unregister(s)
        assert not s.has_resource(res)
        for call in (lambda: s.tf_model_load(res), lambda: s.exec_with_resource(res, "f")):
            with pytest.raises(PermissionDeniedError, match="not registered"):
                call()


@pytest.mark.asyncio
async def test_out_receives_the_result(plugin: tuple[str, Runtime], run: Any) -> None:
    """`out=` (a pyvaccel extension): the result lands in the caller's array; through an
    agent it is received straight into it."""
    served, runtime = plugin
    a = np.random.default_rng(5).random(1 << 18, dtype=f32)
    for method, args, dtype in (
        ("fpga_vadd", (a, a), f32),
        ("fpga_arraycopy", (a.view(np.int32),), np.int32),
        ("fpga_mmult", (a[: 64 * 64], a[: 64 * 64]), f32),
    ):
        out = np.empty(args[0].size, dtype)
        async with AsyncSession(runtime=runtime) as s:
            got = await getattr(s, method)(*args, out=out)
            wrong = np.empty(3, f32)
            with pytest.raises(BadArgumentError, match="out"):
                await s.fpga_vadd(a, a, out=wrong)
        assert got is out
        if not async_only(runtime):
            with Session(runtime=runtime) as s:
                again = getattr(s, method)(*args, out=np.empty_like(out))
            np.testing.assert_array_equal(again, out)
        if served != "noop" and method == "fpga_vadd":
            np.testing.assert_array_equal(out, a + a)
    with sync_session(runtime) as s, pytest.raises(BadArgumentError, match="out"):
        s.fpga_vadd(a, a, out=np.empty(3, f32))


@pytest.mark.asyncio
async def test_the_memory_pipe_carries_the_calls_to_its_agent() -> None:
    """The mem: runtimes reach an agent on this loop through the pipe: one connection,
    the calls counted there."""
    runtime = Runtime(
        Config(
            "inprocess.MemoryRpcPlugin",
            0,
            rpc_address="unix:///not/dialled",
            env={"VACCEL_TEST_MEMORY_AGENT": "numpy", "VACCEL_TEST_MEMORY_CHUNK": "3"},
        )
    )
    try:
        (plugin,) = runtime.plugins
        assert isinstance(plugin, MemoryRpcPlugin)
        async with AsyncSession(runtime=runtime) as s:
            assert s.is_remote
            for _ in range(3):
                assert list(await s.fpga_vadd([1.0, 2.0], [3.0, 4.0])) == [4.0, 6.0]
            agent = plugin.agent()
            assert len(agent.connections) == 1
            assert agent.state.calls_total[("fpga_vadd", "OK")] == 3
        with pytest.raises(NotSupportedError, match="AsyncSessions only"):
            Session(runtime=runtime)
    finally:
        runtime.close()
