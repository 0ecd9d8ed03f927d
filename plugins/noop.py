"""The noop plugin: dummy results and argument dumps, for debugging (vAccel's noop).

Every op logs `[noop] Calling ...` and its arguments at debug level and returns the seed's
dummy values: 9.1 for every element of vadd and mmult, (9.1, 18.2) for parallel, a copy
for arraycopy, the input with min -1.0 and max 10000.0 for minmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaccel import log
from vaccel.enums import OpType, PluginType
from vaccel.plugin import Impl, Plugin
from vaccel.session import SessionBase

CLASSIFY_TAG = "This is a dummy classification tag!"
DUMMY_IMGNAME = "This is a dummy imgname!"


def _say(*lines: str) -> None:
    for line in lines:
        log.plain(f"[noop] {line}")


def _calling(what: str, session: SessionBase) -> None:
    _say(f"Calling {what} for session {session.id}", f"Dumping arguments for {what}:")


def noop(session: SessionBase) -> None:
    _say(f"Calling no-op for session {session.id}")


def sgemm(
    session: SessionBase,
    m: int,
    n: int,
    k: int,
    alpha: float,
    a: Any,
    lda: int,
    b: Any,
    ldb: int,
    beta: float,
    ldc: int,
    c: Any,
) -> np.ndarray[Any, Any]:
    _calling("sgemm", session)
    _say(
        f"m: {m} n: {n} k: {k}",
        f"alpha: {alpha:f}",
        f"A: {a.size} elements lda: {lda}",
        f"B: {b.size} elements ldb: {ldb}",
        f"beta: {beta:f}",
        f"C: ldc: {ldc}",
    )
    return np.zeros(m * ldc, np.float32) if c is None else c.copy()


def _image(what: str) -> Any:
    def run(session: SessionBase, image: bytes) -> str:
        _calling(what, session)
        _say(f"len_img: {len(image)}", "will return a dummy result")
        return DUMMY_IMGNAME

    return run


def classify(session: SessionBase, image: bytes) -> tuple[str, str]:
    _calling("Image classification", session)
    _say(f"len_img: {len(image)}", "will return a dummy result")
    return CLASSIFY_TAG, DUMMY_IMGNAME


def _exec_copy(read: list[Any], write: list[Any]) -> list[Any]:
    """Copy the first read argument into the first write argument when their sizes match."""
    out = list(write)
    if read and write:
        src, dst = read[0], write[0]
        size = getattr(src, "nbytes", None) or (len(src) if isinstance(src, (bytes, str)) else None)
        dsize = getattr(dst, "nbytes", None) or (
            len(dst) if isinstance(dst, (bytes, str)) else None
        )
        if size == dsize or (type(src) is type(dst) and size is None):
            out[0] = src.copy() if isinstance(src, np.ndarray) else src
    return out


def exec_(
    session: SessionBase, library: str, symbol: str, read: list[Any], write: list[Any]
) -> list[Any]:
    _calling("exec", session)
    _say(f"library: {library} symbol: {symbol}", f"nr_read: {len(read)} nr_write: {len(write)}")
    return _exec_copy(read, write)


def exec_with_resource(
    session: SessionBase, resource_id: int, symbol: str, read: list[Any], write: list[Any]
) -> list[Any]:
    res = session.resource(resource_id)
    _calling("exec_with_resource", session)
    _say(
        f"resource: {res.id} ({', '.join(res.names)}) symbol: {symbol}",
        f"nr_read: {len(read)} nr_write: {len(write)}",
    )
    return _exec_copy(read, write)


def minmax(
    session: SessionBase, indata: Any, ndata: int, low: int, high: int
) -> tuple[Any, float, float]:
    _say(
        f"Calling minmax for session {session.id}",
        f"Dumping arguments for minmax: ndata:{ndata}",
        f"low: {low} high: {high} ",
        "will return dummy min and max values",
    )
    return indata.copy(), -1.0, 10000.0


def arraycopy(session: SessionBase, a: Any) -> Any:
    _calling("v_arraycopy", session)
    _say(f"size: {a.size} ")
    return a.copy()


def vadd(session: SessionBase, a: Any, b: Any) -> Any:
    _calling("v_vectoradd", session)
    _say(f"len_a: {a.size} len_b: {b.size} ")
    return np.full(a.shape, 9.1, np.float32)


def parallel(session: SessionBase, a: Any, b: Any) -> tuple[Any, Any]:
    _calling("v_parallel", session)
    _say(f"len_a: {a.size}")
    return np.full(a.shape, 9.1, np.float32), np.full(a.shape, 18.2, np.float32)


def mmult(session: SessionBase, a: Any, b: Any) -> Any:
    _calling("v_mmult", session)
    _say(f"len_a: {a.size}")
    return np.full(a.shape, 9.1, np.float32)


def _model(what: str) -> Any:
    def run(session: SessionBase, resource_id: int) -> None:
        res = session.resource(resource_id)
        _say(f"Calling {what} for session {session.id}", f"model: resource {res.id}")

    return run


def _model_run(what: str) -> Any:
    def run(session: SessionBase, resource_id: int, inputs: list[Any]) -> list[Any]:
        session.resource(resource_id)
        _say(f"Calling {what} for session {session.id}", f"Number of inputs: {len(inputs)}")
        for i, t in enumerate(inputs):
            _say(f"\tInput {i}: shape {tuple(t.shape)} dtype {t.dtype}")
        return [t.copy() for t in inputs]

    return run


class NoopPlugin(Plugin):
    """Dummy results for every op; nothing blocks, so asyncio callers run it inline."""

    name = "noop"
    type = PluginType.DEBUG

    def operations(self) -> dict[OpType, Impl]:
        def quick(fn: Any) -> Impl:
            return Impl(fn, blocking=False)

        O = OpType  # noqa: E741
        return {
            O.NOOP: quick(noop),
            O.BLAS_SGEMM: quick(sgemm),
            O.IMAGE_CLASSIFY: quick(classify),
            O.IMAGE_DETECT: quick(_image("Image detection")),
            O.IMAGE_SEGMENT: quick(_image("Image segmentation")),
            O.IMAGE_POSE: quick(_image("Image pose")),
            O.IMAGE_DEPTH: quick(_image("Image depth")),
            O.EXEC: quick(exec_),
            O.TF_SESSION_LOAD: quick(_model("TensorFlow session load")),
            O.TF_SESSION_RUN: quick(_model_run("TensorFlow session run")),
            O.TF_SESSION_DELETE: quick(_model("TensorFlow session delete")),
            O.MINMAX: quick(minmax),
            O.FPGA_ARRAYCOPY: quick(arraycopy),
            O.FPGA_VECTORADD: quick(vadd),
            O.FPGA_PARALLEL: quick(parallel),
            O.FPGA_MMULT: quick(mmult),
            O.EXEC_WITH_RESOURCE: quick(exec_with_resource),
            O.TORCH_JITLOAD_FORWARD: quick(_model_run("jitload_forward")),
            O.TFLITE_SESSION_LOAD: quick(_model("TensorFlow Lite session load")),
            O.TFLITE_SESSION_RUN: quick(_model_run("TensorFlow Lite session run")),
            O.TFLITE_SESSION_DELETE: quick(_model("TensorFlow Lite session delete")),
        }
