"""One conformance suite: every op against every plugin that implements it.

The numpy plugin is checked against NumPy computed here; the noop plugin against the
seed's dummy values. Each case runs through Session and AsyncSession.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from vaccel import AsyncSession, OpType, Resource, ResourceType, Session
from vaccel.errors import NotSupportedError

A5 = [5.0, 1.0, 2.1, 1.2, 5.2]
B5 = [-2.2, 1.1, 6.4, 2.3, 6.1]
f32 = np.float32


def exact_vadd(a: Any, b: Any) -> Any:
    return (np.asarray(a, f32) + np.asarray(b, f32)).tolist()


# (op, method, args, {plugin: expected result or check function})
CASES: list[tuple[OpType, str, tuple[Any, ...], dict[str, Any]]] = [
    (OpType.NOOP, "noop", (), {"noop": None, "numpy": None}),
    (
        OpType.FPGA_VECTORADD,
        "fpga_vadd",
        (A5, B5),
        {"noop": [float(f32(9.1))] * 5, "numpy": exact_vadd(A5, B5)},
    ),
    (
        OpType.FPGA_ARRAYCOPY,
        "fpga_arraycopy",
        ([1, -2, 3, 2**31 - 1],),
        {"noop": [1, -2, 3, 2**31 - 1], "numpy": [1, -2, 3, 2**31 - 1]},
    ),
    (
        OpType.FPGA_MMULT,
        "fpga_mmult",
        ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]),
        {"noop": [float(f32(9.1))] * 4, "numpy": [19.0, 22.0, 43.0, 50.0]},
    ),
    (
        OpType.FPGA_PARALLEL,
        "fpga_parallel",
        (A5, B5),
        {
            "noop": ([float(f32(9.1))] * 5, [float(f32(18.2))] * 5),
            "numpy": (exact_vadd(A5, B5), (np.asarray(A5, f32) * np.asarray(B5, f32)).tolist()),
        },
    ),
]


def _run_sync(plugin: str, runtime: Any, method: str, args: tuple[Any, ...]) -> Any:
    with Session(runtime=runtime) as s:
        return getattr(s, method)(*args)


def _run_async(plugin: str, runtime: Any, method: str, args: tuple[Any, ...]) -> Any:
    async def go() -> Any:
        async with AsyncSession(runtime=runtime) as s:
            return await getattr(s, method)(*args)

    return asyncio.run(go())


RUNNERS: dict[str, Callable[..., Any]] = {"sync": _run_sync, "async": _run_async}


@pytest.mark.parametrize("mode", sorted(RUNNERS))
@pytest.mark.parametrize(("op", "method", "args", "expected"), CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("plugin", ["noop", "numpy"])
def test_vector_ops(
    make_runtime: Any,
    plugin: str,
    op: OpType,
    method: str,
    args: tuple[Any, ...],
    expected: dict[str, Any],
    mode: str,
) -> None:
    runtime = make_runtime(plugin)
    assert RUNNERS[mode](plugin, runtime, method, args) == expected[plugin]


@pytest.mark.parametrize("plugin", ["noop", "numpy"])
def test_numpy_in_numpy_out(make_runtime: Any, plugin: str) -> None:
    runtime = make_runtime(plugin)
    a = np.arange(6, dtype=f32).reshape(2, 3)
    with Session(runtime=runtime) as s:
        out = s.fpga_vadd(a, a)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3) and out.dtype == f32
    if plugin == "numpy":
        np.testing.assert_array_equal(out, a + a)


def test_numpy_large_vadd_runs_in_pool_async(make_runtime: Any) -> None:
    runtime = make_runtime("numpy")
    a = np.random.default_rng(0).random(1 << 18, dtype=f32)
    out = _run_async("numpy", runtime, "fpga_vadd", (a, a))
    np.testing.assert_array_equal(out, a + a)


@pytest.mark.parametrize("mode", sorted(RUNNERS))
def test_minmax(make_runtime: Any, mode: str) -> None:
    data = np.array([-5.0, 3.0, 20.0, 7000.0, 11.0])
    out, lo, hi = RUNNERS[mode](
        "numpy", make_runtime("numpy"), "minmax", (data.tobytes(), 5, 10, 5000)
    )
    assert isinstance(out, bytes)
    np.testing.assert_array_equal(np.frombuffer(out), np.clip(data, 10, 5000))
    assert (lo, hi) == (-5.0, 7000.0)
    out, lo, hi = RUNNERS[mode](
        "noop", make_runtime("noop"), "minmax", (data.tobytes(), 5, 10, 5000)
    )
    assert np.frombuffer(out).tolist() == data.tolist() and (lo, hi) == (-1.0, 10000.0)


def test_minmax_uses_only_ndata_values(make_runtime: Any) -> None:
    data = np.array([1.0, 2.0, 99.0])
    with Session(runtime=make_runtime("numpy")) as s:
        out, lo, hi = s.minmax(data, 2, 0, 10)
    assert out.tolist() == [1.0, 2.0] and (lo, hi) == (1.0, 2.0)


def _sgemm_reference(
    m: int,
    n: int,
    k: int,
    alpha: float,
    a: Any,
    lda: int,
    b: Any,
    ldb: int,
    beta: float,
    c: Any,
    ldc: int,
) -> Any:
    A = np.asarray(a, f32)[: m * lda].reshape(m, lda)[:, :k]
    B = np.asarray(b, f32)[: k * ldb].reshape(k, ldb)[:, :n]
    C = np.zeros((m, ldc), f32) if c is None else np.asarray(c, f32).reshape(m, ldc).copy()
    C[:, :n] = alpha * (A @ B) + beta * C[:, :n]
    return C.reshape(-1)


@pytest.mark.parametrize("mode", sorted(RUNNERS))
def test_sgemm_blas_semantics(make_runtime: Any, mode: str) -> None:
    rng = np.random.default_rng(7)
    m, n, k, lda, ldb, ldc = 3, 4, 5, 6, 7, 5
    a = rng.random(m * lda, dtype=f32)
    b = rng.random(k * ldb, dtype=f32)
    c = rng.random(m * ldc, dtype=f32)
    out = RUNNERS[mode](
        "numpy", make_runtime("numpy"), "sgemm", (m, n, k, 2.0, a, lda, b, ldb, 0.5, ldc, c)
    )
    np.testing.assert_allclose(
        out, _sgemm_reference(m, n, k, 2.0, a, lda, b, ldb, 0.5, c, ldc), rtol=1e-5
    )
    # vaccel-python's form: lists in, list of m*n out, no C given.
    with Session(runtime=make_runtime("numpy")) as s:
        res = s.sgemm(2, 2, 2, 1.0, [1, 2, 3, 4], 2, [1, 0, 0, 1], 2, 0.0, 2)
    assert res == [1.0, 2.0, 3.0, 4.0]


def test_sgemm_noop_returns_zeros(make_runtime: Any) -> None:
    with Session(runtime=make_runtime("noop")) as s:
        assert s.sgemm(2, 2, 2, 1.0, [1] * 4, 2, [1] * 4, 2, 0.0, 2) == [0.0] * 4


def test_exec_allow_listed_callable(make_runtime: Any) -> None:
    runtime = make_runtime("numpy", exec_allow=["numpy:add", "math:*"])
    with Session(runtime=runtime) as s:
        assert s.exec("numpy", "add", [np.array([1, 2]), np.array([3, 4])], [None])[0].tolist() == [
            4,
            6,
        ]
        assert s.exec("math", "hypot", [3.0, 4.0]) == [5.0]


def test_exec_noop_copies_first_argument(make_runtime: Any) -> None:
    with Session(runtime=make_runtime("noop")) as s:
        out = s.exec(
            "libmytestlib.so", "mytestfunc", [np.array([10], np.int32)], [np.zeros(1, np.int32)]
        )
    assert out[0].tolist() == [10]


@pytest.mark.parametrize("method", ["classify", "detect", "segment", "pose", "depth"])
def test_image_ops_noop(make_runtime: Any, method: str) -> None:
    with Session(runtime=make_runtime("noop")) as s:
        result = getattr(s, method)(b"\xff\xd8\xff\xe0 not much of a jpeg")
    if method == "classify":
        assert result == ("This is a dummy classification tag!", "This is a dummy imgname!")
    else:
        assert result == "This is a dummy imgname!"


def test_image_ops_not_in_numpy(make_runtime: Any) -> None:
    with Session(runtime=make_runtime("numpy")) as s, pytest.raises(NotSupportedError) as err:
        s.classify(b"jpeg")
    assert "classify" in str(err.value) and "numpy" in str(err.value)


def test_model_ops_noop_echo(make_runtime: Any, tmp_path: Any) -> None:
    model = tmp_path / "model.pb"
    model.write_bytes(b"model")
    res = Resource(str(model), ResourceType.MODEL)
    x = np.arange(4, dtype=f32)
    with Session(runtime=make_runtime("noop")) as s:
        res.register(s)
        assert s.has_resource(res)
        s.tf_model_load(res)
        assert s.tf_model_run(res, [x])[0].tolist() == x.tolist()
        assert s.tflite_model_run(res, [x])[0].tolist() == x.tolist()
        assert s.torch_model_run(res, [x])[0].tolist() == x.tolist()
        s.tf_model_unload(res)
        out = s.exec_with_resource(res, "fn", [b"abcd"], [b"0000"])
        assert out == [b"abcd"]
        res.unregister(s)
        assert not s.has_resource(res)
        from vaccel.errors import NotFoundError

        for call in (lambda: s.tf_model_load(res), lambda: s.exec_with_resource(res, "f")):
            with pytest.raises(NotFoundError, match="not registered"):
                call()


def test_genop_dispatches(make_runtime: Any) -> None:
    from vaccel import Arg

    with Session(runtime=make_runtime("numpy")) as s:
        out = s.genop([Arg(int(OpType.FPGA_VECTORADD)), Arg(np.ones(3, f32)), Arg(np.ones(3, f32))])
    assert out.tolist() == [2.0, 2.0, 2.0]
