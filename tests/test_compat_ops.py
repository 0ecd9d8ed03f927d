"""Compatibility with vaccel-python 0.3 (vAccel 0.8): every op, here and through an agent.

Written from docs/reference/vaccel-api.md: each op runs in a Session and in an
AsyncSession, locally and through a real agent process (`vaccel-agent`, rpc plugin),
and the remote result must equal the local one and vAccel 0.8's (the noop plugin's
results of section 2; vadd and parallel keep the seed's 9.1 and 18.2), value and type
alike: lists for lists, Tensors of the op's family, Status, None where vaccel-python
returns None, and what exec and genop write into their write arguments. Then the numpy
plugin (real results), the inference plugins (onnx, tflite, torch: real models, local
results equal remote ones), vAccel's checks on model and exec resources (EPERM, EINVAL),
Resource.remote_id, directory and multi-file resources, Session.flags and profiling.
"""

from __future__ import annotations

import errno
import inspect
import io
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agent_proc import AgentProcess, start_agent

from vaccel import (
    Arg,
    AsyncSession,
    Config,
    OpType,
    PluginType,
    Resource,
    ResourceType,
    Runtime,
    Session,
)
from vaccel.error import FFIError
from vaccel.errors import BadArgumentError, PermissionDeniedError
from vaccel.ops import tf
from vaccel.ops import torch as vtorch
from vaccel.ops.tensors import TensorBase
from vaccel.ops.tf import lite

try:
    import torch
except ImportError:  # the torch family works without torch; from_torch and the plugin do not
    torch = None

F32 = np.float32
NINE = float(F32(9.1))
EIGHTEEN = float(F32(18.2))
TAG = "This is a dummy classification tag!"
IMGNAME = "This is a dummy imgname!"
NOOP_STATUS = "Operation handled by noop plugin"
EXEC_ALLOW = "math:hypot numpy:add"
WHERE = ["local", "remote"]
KINDS = ["sync", "async"]

#: TorchScript is deprecated from torch 2.10 on (still what vAccel's torch plugin loads).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)


# ---------------------------------------------------------------------- agents, runtimes


INFERENCE = "onnx:tflite:torch"


def needs_inference() -> None:
    """Skip unless the inference plugins' runtimes are installed (make install)."""
    for module in ("onnx", "onnxruntime", "ai_edge_litert", "torch"):
        pytest.importorskip(module)


class Agents:
    """Real agent processes, one per plugin set, started when a test first needs one."""

    def __init__(self) -> None:
        self.made: dict[str, AgentProcess] = {}

    def address(self, plugins: str) -> str:
        if plugins not in self.made:
            if plugins == INFERENCE:
                needs_inference()
            env = {"VACCEL_EXEC_ALLOW": EXEC_ALLOW} if plugins == "numpy" else {}
            self.made[plugins] = start_agent("tcp://127.0.0.1:0", plugins=plugins, **env)
        return self.made[plugins].addresses[0]

    def stop(self) -> None:
        for agent in self.made.values():
            assert agent.stop() == 0, agent.stderr_text()


@pytest.fixture(scope="module")
def agents() -> Iterator[Agents]:
    made = Agents()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def runtimes(agents: Agents) -> Iterator[Callable[..., Runtime]]:
    """runtimes(where, plugins): a runtime running `plugins` here, or reaching the agent
    that serves them; closed at the end of the test."""
    made: list[Runtime] = []

    def make(where: str, plugins: str, **config: Any) -> Runtime:
        if plugins == INFERENCE:
            needs_inference()
        if where == "local":
            cfg = Config(plugins, 0, exec_allow=EXEC_ALLOW.split(), **config)
        else:
            cfg = Config("rpc", 0, rpc_address=agents.address(plugins), **config)
        runtime = Runtime(cfg)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


class Caller:
    """One session, called the same way whether it is a Session or an AsyncSession."""

    def __init__(self, session: Session | AsyncSession) -> None:
        self.session = session

    async def __call__(self, method: str, *args: Any) -> Any:
        result = getattr(self.session, method)(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def register(self, resource: Resource) -> Resource:
        done = resource.register(self.session)
        if inspect.isawaitable(done):
            await done
        return resource

    async def unregister(self, resource: Resource) -> None:
        done = resource.unregister(self.session)
        if inspect.isawaitable(done):
            await done


@asynccontextmanager
async def opened(kind: str, runtime: Runtime, flags: int = 0) -> AsyncIterator[Caller]:
    if kind == "async":
        async with AsyncSession(flags, runtime=runtime) as s:
            yield Caller(s)
    else:
        with Session(flags, runtime=runtime) as s:
            yield Caller(s)


@dataclass
class Resources:
    """The resources every op case may use, registered with the session."""

    model: Resource
    lib: Resource
    data: Resource
    unregistered: Resource


async def resources(call: Caller, tmp: Path) -> Resources:
    saved = tmp / "saved_model"  # a TF SavedModel-like directory: one resource
    (saved / "variables").mkdir(parents=True, exist_ok=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "variables.index").write_bytes(b"index")
    lib = tmp / "libmytestlib.so"
    lib.write_bytes(b"\x7fELF not really")
    return Resources(
        model=await call.register(Resource(saved, ResourceType.MODEL)),
        lib=await call.register(Resource(lib, ResourceType.LIB)),
        data=await call.register(Resource.from_numpy(np.arange(4, dtype=F32))),
        unregistered=Resource(saved, ResourceType.MODEL),
    )


# ---------------------------------------------------------------------- comparing results


def norm(value: Any) -> Any:
    """A value with its type made explicit, so equal norms mean equal values and types."""
    if isinstance(value, TensorBase):
        return (
            f"{type(value).__module__}.Tensor",
            value.data_type.name,
            value.dims,
            value.to_bytes(),
        )
    if isinstance(value, tf.Status):
        return ("Status", value.code, value.message)
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.shape, value.tolist())
    if isinstance(value, Arg):
        return ("Arg", value.type.name, norm(value.buf))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [norm(v) for v in value])
    if isinstance(value, (bytes, bytearray)):
        return (type(value).__name__, bytes(value))
    if isinstance(value, (bool, int, float, str)) or value is None:
        return (type(value).__name__, value)
    raise AssertionError(f"unexpected result type {type(value).__name__}")


def f32list(values: list[float]) -> list[float]:
    return np.asarray(values, F32).tolist()


def tensor_like(t: Any) -> Any:
    """What a copy of tensor `t` looks like (noop's model runs copy inputs to outputs)."""
    return norm(t)


# ---------------------------------------------------------------------- the noop cases

Case = Callable[[Caller, Resources], Awaitable[Any]]


async def exec_path_lists(call: Caller, r: Resources) -> Any:
    return await call(
        "exec", Path("/opt/lib/libmytestlib.so"), "mytestfunc", [[1, 2, 3]], [[0, 0, 0]]
    )


async def exec_ints(call: Caller, r: Resources) -> Any:
    return await call("exec", "libmytestlib.so", "mytestfunc", [10], [0])


async def exec_float_arg(call: Caller, r: Resources) -> Any:
    out = Arg(0.0)
    got = await call("exec", "libmytestlib.so", "f", [3.25], [out])
    return got, out  # the Arg holds the copy too


async def exec_bytearray(call: Caller, r: Resources) -> Any:
    out = bytearray(4)
    got = await call("exec", "libmytestlib.so", "f", [b"wxyz"], [out])
    return got, out, got[0] is out  # written in place, the caller's own object back


async def exec_ndarray(call: Caller, r: Resources) -> Any:
    out = np.zeros(3, np.int32)
    got = await call("exec", "lib.so", "f", [Arg(np.array([4, 5, 6], np.int32))], [Arg(out)])
    return got, out, got[0] is out


async def exec_str(call: Caller, r: Resources) -> Any:
    return await call("exec", "lib.so", "f", ["abc"], [bytearray(4)])  # "abc\0"


async def exec_no_write(call: Caller, r: Resources) -> Any:
    return await call("exec", "lib.so", "f", [1, 2])


async def exec_nothing(call: Caller, r: Resources) -> Any:
    return await call("exec", Path("lib.so"), "f")


async def exec_two_writes(call: Caller, r: Resources) -> Any:
    # vAccel 0.8's noop copies only into a single write argument
    return await call("exec", "lib.so", "f", [[1, 2]], [[0, 0], [0, 0]])


async def exec_odd_size(call: Caller, r: Resources) -> Any:
    return await call("exec", "lib.so", "f", [b"abc"], [bytearray(3)])  # not a multiple of 4


async def exec_size_mismatch(call: Caller, r: Resources) -> Any:
    return await call("exec", "lib.so", "f", [[1, 2]], [[0, 0, 0]])


async def exec_with_resource(call: Caller, r: Resources) -> Any:
    return await call("exec_with_resource", r.lib, "mytestfunc", [[7.5, 8.0]], [[0.0, 0.0]])


async def exec_with_resource_none(call: Caller, r: Resources) -> Any:
    return await call("exec_with_resource", r.lib, "mytestfunc")


async def genop_vadd(call: Caller, r: Resources) -> Any:
    out = np.zeros(3, F32)
    arg = Arg(out)
    got = await call(
        "genop", [Arg(OpType.FPGA_VECTORADD), Arg([1.0, 2.0, 3.0]), Arg([1.0, 1.0, 1.0])], [arg]
    )
    return got, out, arg.buf is out


async def genop_arraycopy_list(call: Caller, r: Resources) -> Any:
    out = Arg([0, 0, 0])
    got = await call("genop", [Arg(OpType.FPGA_ARRAYCOPY), Arg([4, 5, 6])], [out])
    return got, out.buf


async def genop_parallel_bytes(call: Caller, r: Resources) -> Any:
    add, mult = bytearray(8), bytearray(8)
    got = await call(
        "genop",
        [Arg(OpType.FPGA_PARALLEL), Arg([1.0, 2.0]), Arg([3.0, 4.0])],
        [Arg(add), Arg(mult)],
    )
    return got, np.frombuffer(add, F32), np.frombuffer(mult, F32)


async def genop_minmax(call: Caller, r: Resources) -> Any:
    data = np.array([5.0, -3.0, 8.0])
    outs = [Arg(bytearray(24)), Arg(0.0), Arg(0.0)]
    got = await call(
        "genop", [Arg(OpType.MINMAX), Arg(data.tobytes()), Arg(3), Arg(0), Arg(4)], outs
    )
    return got, np.frombuffer(outs[0].buf), outs[1].buf, outs[2].buf


async def genop_noop(call: Caller, r: Resources) -> Any:
    return await call("genop", [Arg(OpType.NOOP)], [])


def _tf_inputs() -> list[Any]:
    return [
        tf.Tensor([2, 2], tf.TensorType.FLOAT, [1.0, 2.0, 3.0, 4.0]),
        tf.Tensor.from_numpy(np.array([[1, 2, 3]], np.int64)),
        tf.Tensor.from_buffer([3], tf.TensorType.STRING, b"abc"),
    ]


async def tf_run_one(call: Caller, r: Resources) -> Any:
    ins = _tf_inputs()
    nodes = [tf.Node("a", 0), tf.Node("b", 1), tf.Node("c", 2)]
    return await call("tf_model_run", r.model, nodes, ins, [tf.Node("y", 0)], tf.Buffer(b"opts"))


async def tf_run_three(call: Caller, r: Resources) -> Any:
    ins = _tf_inputs()
    nodes = [tf.Node("a", 0), tf.Node("b", 1), tf.Node("c", 2)]
    outs = [tf.Node("x", 0), tf.Node("y", 0), tf.Node("z", 0)]
    return await call("tf_model_run", r.model, nodes, ins, outs)


def _lite_inputs() -> list[Any]:
    return [
        lite.Tensor.from_numpy(np.arange(6, dtype=np.uint8).reshape(1, 2, 3)),
        lite.Tensor([2], lite.TensorType.FLOAT32, [0.5, -1.0]),
    ]


async def tflite_run_default(call: Caller, r: Resources) -> Any:
    return await call("tflite_model_run", r.model, _lite_inputs())


async def tflite_run_two(call: Caller, r: Resources) -> Any:
    return await call("tflite_model_run", r.model, _lite_inputs(), 2)


def _torch_inputs() -> list[Any]:
    return [
        vtorch.Tensor.from_torch(torch.arange(4, dtype=torch.float32).reshape(2, 2))
        if torch is not None
        else vtorch.Tensor.from_numpy(np.arange(4, dtype=F32).reshape(2, 2)),
        vtorch.Tensor([3], vtorch.TensorType.LONG, [7, 8, 9]),
    ]


async def torch_run_default(call: Caller, r: Resources) -> Any:
    return await call("torch_model_run", r.model, _torch_inputs())


async def torch_run_two(call: Caller, r: Resources) -> Any:
    return await call("torch_model_run", r.model, _torch_inputs(), 2, vtorch.Buffer(b"opts"))


def simple(method: str, *args: Any) -> Case:
    async def run(call: Caller, r: Resources) -> Any:
        return await call(method, *args)

    return run


def with_model(method: str) -> Case:
    async def run(call: Caller, r: Resources) -> Any:
        return await call(method, r.model)

    return run


DOUBLES = np.array([1.5, -2.0, 3.0, 99.0])

#: (id, case, the noop result vAccel 0.8 gives; the seed's for vadd and parallel)
NOOP_CASES: list[tuple[str, Case, Any]] = [
    ("noop", simple("noop"), None),
    (
        "sgemm-lists",
        simple("sgemm", 2, 3, 2, 1.0, [1.0, 2.0, 3.0, 4.0], 2, [1.0] * 6, 3, 0.0, 3),
        [0.0] * 6,  # m*n elements; noop leaves C as passed
    ),
    (
        "sgemm-arrays",
        simple("sgemm", 2, 2, 3, 1.0, np.ones(6, F32), 3, np.ones(6, F32), 2, 0.0, 4),
        np.zeros(4, F32),  # m*n even when ldc > n
    ),
    ("classify", simple("classify", b"\xff\xd8\xff\xe0 a jpeg"), (TAG, IMGNAME)),
    ("detect", simple("detect", b"\xff\xd8 image"), IMGNAME),
    ("segment", simple("segment", b"\xff\xd8 image"), IMGNAME),
    ("pose", simple("pose", b"\xff\xd8 image"), IMGNAME),
    ("depth", simple("depth", b"\xff\xd8 image"), IMGNAME),
    ("exec-path-lists", exec_path_lists, [[1, 2, 3]]),
    ("exec-ints", exec_ints, [10]),
    ("exec-float-arg", exec_float_arg, ([3.25], Arg(3.25))),
    ("exec-bytearray", exec_bytearray, ([bytearray(b"wxyz")], bytearray(b"wxyz"), True)),
    (
        "exec-ndarray",
        exec_ndarray,
        ([np.array([4, 5, 6], np.int32)], np.array([4, 5, 6], np.int32), True),
    ),
    ("exec-str", exec_str, [bytearray(b"abc\0")]),
    ("exec-no-write", exec_no_write, None),
    ("exec-nothing", exec_nothing, None),
    ("exec-two-writes", exec_two_writes, [[0, 0], [0, 0]]),
    ("exec-odd-size", exec_odd_size, [bytearray(3)]),
    ("exec-size-mismatch", exec_size_mismatch, [[0, 0, 0]]),
    ("exec_with_resource", exec_with_resource, [[7.5, 8.0]]),
    ("exec_with_resource-none", exec_with_resource_none, None),
    ("genop-vadd", genop_vadd, (None, np.full(3, NINE, F32), True)),
    ("genop-arraycopy", genop_arraycopy_list, (None, [4, 5, 6])),
    (
        "genop-parallel",
        genop_parallel_bytes,
        (None, np.full(2, NINE, F32), np.full(2, EIGHTEEN, F32)),
    ),
    ("genop-minmax", genop_minmax, (None, np.array([5.0, -3.0, 8.0]), -1.0, 10000.0)),
    ("genop-noop", genop_noop, None),
    (
        "minmax",
        simple("minmax", DOUBLES.tobytes(), 4, 0, 10),
        (bytearray(DOUBLES.tobytes()), -1.0, 10000.0),
    ),
    ("fpga_arraycopy", simple("fpga_arraycopy", [1, -2, 2**31 - 1]), [1, -2, 2**31 - 1]),
    ("fpga_mmult-any-length", simple("fpga_mmult", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]), [NINE] * 3),
    ("fpga_mmult", simple("fpga_mmult", [1.0, 2.0, 3.0, 4.0], [1.0] * 4), [NINE] * 4),
    (
        "fpga_parallel",
        simple("fpga_parallel", [1.0, 2.0], [3.0, 4.0]),
        ([NINE] * 2, [EIGHTEEN] * 2),
    ),
    ("fpga_vadd", simple("fpga_vadd", [5.0, 1.0, 2.1], [-2.2, 1.1, 6.4]), [NINE] * 3),
    (
        "fpga_vadd-array",
        simple("fpga_vadd", np.ones((2, 2), F32), np.ones((2, 2), F32)),
        np.full((2, 2), NINE, F32),
    ),
    ("tf_model_load", with_model("tf_model_load"), tf.Status(0, NOOP_STATUS)),
    ("tf_model_unload", with_model("tf_model_unload"), tf.Status(0, NOOP_STATUS)),
    ("tf_model_run-one-out", tf_run_one, ([_tf_inputs()[0]], tf.Status(0, NOOP_STATUS))),
    ("tf_model_run-three-outs", tf_run_three, (_tf_inputs(), tf.Status(0, NOOP_STATUS))),
    ("tflite_model_load", with_model("tflite_model_load"), None),
    ("tflite_model_unload", with_model("tflite_model_unload"), None),
    ("tflite_model_run-default", tflite_run_default, ([_lite_inputs()[0]], 0)),
    ("tflite_model_run-two", tflite_run_two, (_lite_inputs(), 0)),
    ("torch_model_load", with_model("torch_model_load"), None),
    ("torch_model_run-default", torch_run_default, [_torch_inputs()[0]]),
    ("torch_model_run-two", torch_run_two, _torch_inputs()),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("case", "expected"), [c[1:] for c in NOOP_CASES], ids=[c[0] for c in NOOP_CASES]
)
async def test_noop_results_are_vaccel_08s_here_and_through_an_agent(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str, case: Case, expected: Any
) -> None:
    got = {}
    for where in WHERE:
        async with opened(kind, runtimes(where, "noop")) as call:
            got[where] = norm(await case(call, await resources(call, tmp_path / where)))
    assert got["remote"] == got["local"], "the agent's result differs from the local one"
    assert got["local"] == norm(expected)


@pytest.mark.asyncio
@pytest.mark.parametrize("where", WHERE)
async def test_model_runs_return_new_tensors_of_their_family(
    runtimes: Callable[..., Runtime], tmp_path: Path, where: str
) -> None:
    async with opened("sync", runtimes(where, "noop")) as call:
        r = await resources(call, tmp_path)
        ins = _tf_inputs()
        outs, status = await call(
            "tf_model_run", r.model, [tf.Node("a", 0)] * 3, ins, [tf.Node("y", 0)]
        )
        assert type(outs) is list and type(outs[0]) is tf.Tensor and type(status) is tf.Status
        assert outs[0] is not ins[0]
        assert outs[0].as_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
        lite_outs, code = await call("tflite_model_run", r.model, _lite_inputs())
        assert type(lite_outs[0]) is lite.Tensor and type(code) is int
        torch_outs = await call("torch_model_run", r.model, _torch_inputs())
        assert type(torch_outs) is list and type(torch_outs[0]) is vtorch.Tensor
        assert torch_outs[0].as_numpy().tolist() == [[0.0, 1.0], [2.0, 3.0]]
        if torch is not None:
            assert torch.equal(torch_outs[0].as_torch(), torch.arange(4.0).reshape(2, 2))
        # an output is a copy: changing the input later does not change it
        src = np.zeros(3, F32)
        (copy,), _ = await call("tflite_model_run", r.model, [lite.Tensor.from_numpy(src)])
        src[:] = 5
        assert copy.data == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------- numpy plugin

NUMPY_CASES: list[tuple[str, Case, Any]] = [
    ("fpga_vadd", simple("fpga_vadd", [5.0, 1.0], [-2.2, 1.1]), f32list([2.8, 2.1])),
    ("fpga_parallel", simple("fpga_parallel", [1.0, 2.0], [3.0, 4.0]), ([4.0, 6.0], [3.0, 8.0])),
    ("fpga_arraycopy", simple("fpga_arraycopy", [3, 1, 2]), [3, 1, 2]),
    (
        "fpga_mmult",
        simple("fpga_mmult", [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]),
        [19.0, 22.0, 43.0, 50.0],
    ),
    (
        "sgemm",
        simple("sgemm", 2, 2, 2, 2.0, [1.0, 2.0, 3.0, 4.0], 2, [1.0, 0.0, 0.0, 1.0], 2, 0.0, 2),
        [2.0, 4.0, 6.0, 8.0],
    ),
    (
        "minmax",
        simple("minmax", DOUBLES.tobytes(), 4, 0, 10),
        (bytearray(np.clip(DOUBLES, 0, 10).tobytes()), -2.0, 99.0),
    ),
    ("exec-float-arg", simple("exec", "math", "hypot", [3.0, 4.0], [Arg(0.0)]), [5.0]),
    ("exec-none", simple("exec", "math", "hypot", [3.0, 4.0]), None),
    ("genop-vadd", genop_vadd, (None, np.array([2.0, 3.0, 4.0], F32), True)),
    ("genop-arraycopy", genop_arraycopy_list, (None, [4, 5, 6])),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("case", "expected"), [c[1:] for c in NUMPY_CASES], ids=[c[0] for c in NUMPY_CASES]
)
async def test_numpy_results_here_and_through_an_agent(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str, case: Case, expected: Any
) -> None:
    got = {}
    for where in WHERE:
        async with opened(kind, runtimes(where, "numpy")) as call:
            got[where] = norm(await case(call, Resources(*(None,) * 4)))  # type: ignore[arg-type]
    assert got["remote"] == got["local"] == norm(expected)


@pytest.mark.parametrize("where", WHERE)
def test_numpy_says_which_lengths_it_multiplies_and_what_exec_may_run(
    runtimes: Callable[..., Runtime], where: str
) -> None:
    with Session(runtime=runtimes(where, "numpy")) as s:
        with pytest.raises(FFIError, match="numpy plugin multiplies square matrices") as info:
            s.fpga_mmult([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        assert info.value.code == errno.EINVAL
        with pytest.raises(FFIError, match="allow-list") as info:
            s.exec("os", "system", ["true"], [0])
        assert info.value.code == errno.EPERM


# ---------------------------------------------------------------------- vAccel's resource checks

MODEL_OPS: list[tuple[str, Callable[[Resource], tuple[Any, ...]]]] = [
    ("tf_model_load", lambda r: (r,)),
    ("tf_model_unload", lambda r: (r,)),
    (
        "tf_model_run",
        lambda r: (
            r,
            [tf.Node("x", 0)],
            [tf.Tensor([1], tf.TensorType.FLOAT, [1.0])],
            [tf.Node("y", 0)],
        ),
    ),
    ("tflite_model_load", lambda r: (r,)),
    ("tflite_model_unload", lambda r: (r,)),
    ("tflite_model_run", lambda r: (r, [lite.Tensor([1], lite.TensorType.FLOAT32, [1.0])])),
    ("torch_model_load", lambda r: (r,)),
    ("torch_model_run", lambda r: (r, [vtorch.Tensor([1], vtorch.TensorType.FLOAT, [1.0])])),
    ("exec_with_resource", lambda r: (r, "f", [[1]], [[0]])),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("method", "args"), MODEL_OPS, ids=[m[0] for m in MODEL_OPS])
async def test_resource_checks_give_vaccels_error_codes(
    runtimes: Callable[..., Runtime],
    tmp_path: Path,
    where: str,
    kind: str,
    method: str,
    args: Callable[[Resource], tuple[Any, ...]],
) -> None:
    """A resource that is not registered: EPERM; one of the wrong type: EINVAL (a model
    op needs a MODEL resource, exec_with_resource a LIB one). Both are FFIErrors."""
    async with opened(kind, runtimes(where, "noop")) as call:
        r = await resources(call, tmp_path)
        right = r.lib if method == "exec_with_resource" else r.model
        wrong = r.model if method == "exec_with_resource" else r.data
        unregistered = Resource(tmp_path / "libmytestlib.so", right.type)
        with pytest.raises(FFIError, match="not registered") as info:
            await call(method, *args(unregistered))
        assert info.value.code == errno.EPERM and isinstance(info.value, PermissionDeniedError)
        with pytest.raises(FFIError, match=f"needs a {right.type.name} resource") as info:
            await call(method, *args(wrong))
        assert info.value.code == errno.EINVAL and isinstance(info.value, BadArgumentError)
        await call(method, *args(right))  # and the right one works
        await call.unregister(right)
        with pytest.raises(FFIError) as info:
            await call(method, *args(right))  # unregistered again: EPERM again
        assert info.value.code == errno.EPERM


@pytest.mark.parametrize("where", WHERE)
def test_wrong_arguments_are_einval_ffierrors(runtimes: Callable[..., Runtime], where: str) -> None:
    with Session(runtime=runtimes(where, "noop")) as s:
        for call in (
            lambda: s.fpga_vadd([1.0, 2.0], [1.0]),
            lambda: s.exec("lib.so", "f", [[1, "two"]]),
            lambda: s.exec("lib.so", "f", [[]]),
            lambda: s.tflite_model_run(
                Resource.from_buffer(b"m", ResourceType.MODEL),
                [tf.Tensor([1], tf.TensorType.FLOAT, [1.0])],
            ),
        ):
            with pytest.raises(FFIError) as info:
                call()
            assert info.value.code in (errno.EINVAL, errno.EPERM)


# ---------------------------------------------------------------------- resources


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_remote_id_is_0_here_and_the_agents_id_through_it(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str
) -> None:
    for where in WHERE:
        async with opened(kind, runtimes(where, "noop")) as call:
            session = call.session
            r = await resources(call, tmp_path / where)
            registered = (r.model, r.lib, r.data)
            assert all(type(x.remote_id) is int for x in registered)
            assert type(session.remote_id) is int
            assert session.is_remote is (where == "remote")
            if where == "local":
                assert session.remote_id == 0 and all(x.remote_id == 0 for x in registered)
            else:
                assert session.remote_id > 0 and all(x.remote_id > 0 for x in registered)
                assert len({x.remote_id for x in registered}) == 3
            assert r.unregistered.remote_id == 0  # never registered
            assert all(session.has_resource(x) for x in registered)
            assert not session.has_resource(r.unregistered)
            assert all(x.id > 0 for x in (*registered, r.unregistered))


def test_resource_paths_and_types(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"m")
    for path in (f, str(f), f"file://{f}", [f], [str(f)]):
        r = Resource(path, ResourceType.MODEL)  # type: ignore[arg-type]
        assert r.type is ResourceType.MODEL and r.blobs == [b"m"]
    with pytest.raises(FFIError) as info:
        Resource(tmp_path / "missing.onnx", ResourceType.MODEL)
    assert info.value.code == errno.EINVAL  # vAccel: EINVAL
    with pytest.raises(FFIError):
        Resource(f, 7)
    r = Resource.from_buffer(b"blob", ResourceType.DATA)
    assert r.blobs == [b"blob"] and r.type is ResourceType.DATA
    arr = np.arange(3, dtype=np.int16)
    n = Resource.from_numpy(arr)
    assert n.type is ResourceType.DATA and n.blobs == [arr.tobytes()]
    assert Resource.from_numpy(data=arr).type is ResourceType.DATA  # vaccel-python's keyword


def _onnx_model() -> bytes:
    from inference_data import onnx_bytes
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("Add", ["x", "one"], ["z"]),
    ]
    return onnx_bytes(nodes, [x], [y, z], [two, one])


def _model_dir(root: Path) -> Path:
    """A model directory, as a TF SavedModel is one: the model, labels, a sub-directory."""
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(_onnx_model())
    (root / "assets").mkdir()
    (root / "assets" / "notes.bin").write_bytes(b"\x00\x01 unrelated asset")
    return root


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_directory_resource_is_one_model_here_and_through_an_agent(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str
) -> None:
    needs_inference()
    model_dir = _model_dir(tmp_path / "saved")
    x = np.arange(6, dtype=F32).reshape(2, 3)
    got = {}
    for where in WHERE:
        async with opened(kind, runtimes(where, INFERENCE)) as call:
            res = await call.register(Resource(model_dir, ResourceType.MODEL))
            assert res.names == ["saved/assets/notes.bin", "saved/model.onnx"]
            status = await call("tf_model_load", res)
            assert type(status) is tf.Status and status.code == 0
            outs, status = await call(
                "tf_model_run",
                res,
                [tf.Node("x", 0)],
                [tf.Tensor.from_numpy(x)],
                [tf.Node("y", 0), tf.Node("z", 0)],
            )
            assert status.code == 0
            got[where] = [norm(t) for t in outs]
            np.testing.assert_array_equal(outs[0].as_numpy(), x * 2)
            np.testing.assert_array_equal(outs[1].as_numpy(), x + 1)
            assert (await call("tf_model_unload", res)).code == 0
    assert got["local"] == got["remote"]


@pytest.mark.parametrize("where", WHERE)
def test_a_multi_file_resource_is_one_resource(
    runtimes: Callable[..., Runtime], tmp_path: Path, where: str
) -> None:
    needs_inference()
    model = tmp_path / "model.onnx"
    model.write_bytes(_onnx_model())
    labels = tmp_path / "labels.txt"
    labels.write_text("doubled\nplus one\n")
    x = np.ones((2, 3), F32)
    with Session(runtime=runtimes(where, INFERENCE)) as s:
        res = Resource([model, labels], ResourceType.MODEL)
        res.register(s)
        assert res.names == ["model.onnx", "labels.txt"]
        assert (res.remote_id > 0) is (where == "remote")
        outs, _ = s.tf_model_run(
            res, [tf.Node("x", 0)], [tf.Tensor.from_numpy(x)], [tf.Node("z", 0)]
        )
        assert outs[0].data == [2.0] * 6


# ---------------------------------------------------------------------- inference plugins


def _torchscript() -> bytes:
    class TwoOut(torch.nn.Module):  # type: ignore[misc]
        def forward(self, a: Any, b: Any) -> tuple[Any, Any]:
            return a * 2 + b, (a - b).sum(dim=1)

    example = (torch.zeros((2, 3)), torch.zeros((2, 3)))
    out = io.BytesIO()
    torch.jit.save(torch.jit.trace(TwoOut().eval(), example), out)
    return out.getvalue()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_torch_plugin_here_and_through_an_agent(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str
) -> None:
    needs_inference()
    path = tmp_path / "two_out.pt"
    path.write_bytes(_torchscript())
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    b = torch.full((2, 3), 0.5)
    got = {}
    for where in WHERE:
        async with opened(kind, runtimes(where, INFERENCE)) as call:
            res = await call.register(Resource(path, ResourceType.MODEL))
            assert await call("torch_model_load", res) is None
            ins = [vtorch.Tensor.from_torch(a), vtorch.Tensor.from_numpy(b.numpy())]
            outs = await call("torch_model_run", res, ins, 2, vtorch.Buffer(b"options"))
            assert type(outs) is list and all(type(t) is vtorch.Tensor for t in outs)
            assert torch.equal(outs[0].as_torch(), a * 2 + b)
            assert torch.equal(outs[1].as_torch(), (a - b).sum(dim=1))
            (first,) = await call("torch_model_run", res, ins)  # nr_out_tensors=1
            assert torch.equal(first.as_torch(), a * 2 + b)
            got[where] = [norm(t) for t in outs]
    assert got["local"] == got["remote"]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_tflite_plugin_here_and_through_an_agent(
    runtimes: Callable[..., Runtime], tmp_path: Path, kind: str
) -> None:
    needs_inference()
    from inference_data import FACE, litert_run, mediapipe_model

    model = mediapipe_model(FACE)
    path = tmp_path / "face.tflite"
    path.write_bytes(model)
    feed = (np.arange(128 * 128 * 3, dtype=F32).reshape(1, 128, 128, 3) % 255) / 127.5 - 1
    feed = feed.astype(F32)
    expected = litert_run(model, feed)
    got = {}
    for where in WHERE:
        async with opened(kind, runtimes(where, INFERENCE)) as call:
            res = await call.register(Resource(path, ResourceType.MODEL))
            assert await call("tflite_model_load", res) is None
            outs, status = await call("tflite_model_run", res, [lite.Tensor.from_numpy(feed)], 2)
            assert status == 0 and type(status) is int and len(outs) == 2
            for out, want in zip(outs, expected, strict=True):
                assert type(out) is lite.Tensor and out.data_type is lite.TensorType.FLOAT32
                assert out.dims == list(want.shape)
                np.testing.assert_array_equal(out.as_numpy(), want)
            assert await call("tflite_model_unload", res) is None
            got[where] = [norm(t) for t in outs]
    assert got["local"] == got["remote"]


# ---------------------------------------------------------------------- sessions


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", WHERE)
async def test_session_flags_are_a_plugin_type(
    runtimes: Callable[..., Runtime], where: str, kind: str
) -> None:
    runtime = runtimes(where, "noop")
    for flags in (0, PluginType.CPU | PluginType.FPGA, int(PluginType.GPU), PluginType.DEBUG):
        async with opened(kind, runtime, flags) as call:
            got = call.session.flags
            assert type(got) is PluginType and got == flags
            assert await call("fpga_arraycopy", [1]) == [1]  # hints never stop a call


# ---------------------------------------------------------------------- profiling


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", WHERE)
async def test_profiling_counts_and_times_each_op(
    runtimes: Callable[..., Runtime],
    where: str,
    kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = runtimes(where, "noop", profiling_enabled=True)
    async with opened(kind, runtime) as call:
        for _ in range(3):
            await call("fpga_vadd", [1.0], [2.0])
        await call("noop")
        profile = call.session.profile
        assert set(profile) == {"fpga_vadd", "noop"}
        count, seconds = profile["fpga_vadd"]
        assert count == 3 and isinstance(seconds, float) and 0 < seconds < 30
        assert profile["noop"][0] == 1
        from vaccel import log

        log.configure(4)  # the debug level shows the figures at close
    out = capsys.readouterr().err
    log.configure(0)
    assert f"session:{call.session.id} [prof] fpga_vadd: total_time:" in out
    assert "nr_entries: 3" in out and "[prof] noop:" in out


@pytest.mark.parametrize("where", WHERE)
def test_no_profile_without_profiling(runtimes: Callable[..., Runtime], where: str) -> None:
    with Session(runtime=runtimes(where, "noop")) as s:
        s.noop()
        assert s.profile == {}


def test_profiling_from_the_environment() -> None:
    config = Config.from_env(
        {"VACCEL_PLUGINS": "noop", "VACCEL_PROFILING_ENABLED": "1", "VACCEL_LOG_LEVEL": "1"}
    )
    runtime = Runtime(config)
    try:
        with Session(runtime=runtime) as s:
            s.fpga_vadd([1.0], [1.0])
            assert s.profile["fpga_vadd"][0] == 1
    finally:
        runtime.close()
        from vaccel import log

        log.configure(0)


def test_noop_values_are_float32s() -> None:
    assert math.isclose(NINE, 9.1, rel_tol=1e-6) and NINE != 9.1  # a float32 9.1, as in C
