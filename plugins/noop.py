"""The noop plugin: dummy results and argument dumps, for debugging (vAccel's noop).

Every op logs `[noop] Calling ...` and its arguments at debug level and returns what
vAccel 0.8's noop plugin returns: a copy for arraycopy, 9.1 for every element of
mmult (any length), the input with min -1.0 and max 10000.0 for minmax, copies of the
inputs for the model runs, Status 0 "Operation handled by noop plugin" for the TF ops,
and for exec a copy of the first read argument into a single write argument of the
same size (a multiple of 4 bytes). vadd and parallel keep the values of vAccel 0.5,
which the seed's transcripts show: 9.1 for every element, and (9.1, 18.2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaccel import log
from vaccel.enums import OpType, PluginType
from vaccel.ops.blas import SgemmArgs
from vaccel.ops.tensors import RawTensor
from vaccel.plugin import Impl, Plugin
from vaccel.plugin import SessionLike as SessionBase

CLASSIFY_TAG = "This is a dummy classification tag!"
DUMMY_IMGNAME = "This is a dummy imgname!"


def _say(*lines: str) -> None:
    for line in lines:
        log.plain(f"[noop] {line}")


def _calling(what: str, session: SessionBase) -> None:
    _say(f"Calling {what} for session {session.id}", f"Dumping arguments for {what}:")


def noop(session: SessionBase) -> None:
    """vAccel's noop: logs the call."""
    _say(f"Calling no-op for session {session.id}")


def sgemm(session: SessionBase, *args: Any) -> np.ndarray[Any, Any]:
    """Dummy SGEMM: logs its arguments (`SgemmArgs`); returns C as given (zeros without one)."""
    g = SgemmArgs(*args)
    _calling("sgemm", session)
    _say(
        f"m: {g.m} n: {g.n} k: {g.k}",
        f"alpha: {g.alpha:f}",
        f"A: {g.a.size} elements lda: {g.lda}",
        f"B: {g.b.size} elements ldb: {g.ldb}",
        f"beta: {g.beta:f}",
        f"C: ldc: {g.ldc}",
    )
    return g.initial_c().reshape(-1)


def _image(what: str) -> Any:
    def run(session: SessionBase, image: bytes) -> str:
        _calling(what, session)
        _say(f"len_img: {len(image)}", "will return a dummy result")
        return DUMMY_IMGNAME

    return run


def classify(session: SessionBase, image: bytes) -> tuple[str, str]:
    """vAccel's dummy classification tag and image name."""
    _calling("Image classification", session)
    _say(f"len_img: {len(image)}", "will return a dummy result")
    return CLASSIFY_TAG, DUMMY_IMGNAME


NOOP_STATUS = "Operation handled by noop plugin"


def _size(value: Any) -> int:
    """An exec argument's size in bytes, as vAccel's arg.size."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode()) + 1
    return 0 if value is None else 8


def _raw_bytes(value: Any) -> bytes:
    """An exec argument's bytes, as vAccel holds them in memory."""
    if isinstance(value, np.ndarray):
        return bytes(np.ascontiguousarray(value).tobytes())
    if isinstance(value, str):
        return value.encode() + b"\0"
    if isinstance(value, (bool, int)):
        return bytes(np.int64(value).tobytes())
    if isinstance(value, float):
        return bytes(np.float64(value).tobytes())
    return bytes(value) if isinstance(value, bytes) else b""


def _exec_copy(read: list[Any], write: list[Any]) -> list[Any]:
    """vAccel 0.8: with one write argument as large as the first read one (a multiple of
    4 bytes), copy the read bytes into it as int32 values; otherwise write nothing."""
    out = list(write)
    if len(write) == 1 and read and _size(write[0]) == _size(read[0]) and _size(read[0]) % 4 == 0:
        out[0] = _read_as(_raw_bytes(read[0]), write[0])
    return out


def _read_as(data: bytes, dst: Any) -> Any:
    """The copied bytes read back as the write argument's own type, as the caller's C
    buffer would hold them (a float stays a float, an int32 array an int32 array)."""
    if isinstance(dst, np.ndarray):
        return np.frombuffer(data, dtype=dst.dtype).reshape(dst.shape).copy()
    if isinstance(dst, bytes):
        return data
    if isinstance(dst, bool):
        return any(data)
    if isinstance(dst, int):
        return int(np.frombuffer(data, dtype=np.int64)[0])
    if isinstance(dst, float):
        return float(np.frombuffer(data, dtype=np.float64)[0])
    if isinstance(dst, str):
        return data.split(b"\0", 1)[0].decode(errors="replace")
    return np.frombuffer(data, dtype=np.int32).copy()


def exec_(
    session: SessionBase, library: str, symbol: str, read: list[Any], write: list[Any]
) -> list[Any]:
    """Logs the call; copies the read arguments into the write arguments, as vAccel's noop."""
    _calling("exec", session)
    _say(f"library: {library} symbol: {symbol}", f"nr_read: {len(read)} nr_write: {len(write)}")
    return _exec_copy(read, write)


def exec_with_resource(
    session: SessionBase, resource_id: int, symbol: str, read: list[Any], write: list[Any]
) -> list[Any]:
    """As `exec_`, for a LIB resource."""
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
    """vAccel's dummy minmax: the data unclipped, min -1.0, max 10000.0."""
    _say(
        f"Calling minmax for session {session.id}",
        f"Dumping arguments for minmax: ndata:{ndata}",
        f"low: {low} high: {high} ",
        "will return dummy min and max values",
    )
    return indata.copy(), -1.0, 10000.0


def arraycopy(session: SessionBase, a: Any) -> Any:
    """A copy of the input, as vAccel's noop."""
    _calling("v_arraycopy", session)
    _say(f"size: {a.size} ")
    return a.copy()


def vadd(session: SessionBase, a: Any, b: Any) -> Any:
    """The dummy 9.1 per element of vAccel's PYNQ transcripts."""
    _calling("v_vectoradd", session)
    _say(f"len_a: {a.size} len_b: {b.size} ")
    return np.full(a.shape, 9.1, np.float32)


def parallel(session: SessionBase, a: Any, b: Any) -> tuple[Any, Any]:
    """The dummy 9.1 / 18.2 of vAccel's PYNQ transcripts."""
    _calling("v_parallel", session)
    _say(f"len_a: {a.size}")
    return np.full(a.shape, 9.1, np.float32), np.full(a.shape, 18.2, np.float32)


def mmult(session: SessionBase, a: Any, b: Any) -> Any:
    """The dummy 9.1 per element of vAccel's PYNQ transcripts."""
    _calling("v_mmult", session)
    _say(f"len_a: {a.size}")
    return np.full(a.shape, 9.1, np.float32)


def _copies(inputs: list[RawTensor], count: int) -> list[RawTensor]:
    """Outputs i < count are fresh copies of inputs i (dims, type and bytes)."""
    return [RawTensor(t.type, t.dims, t.data.copy()) for t in inputs[:count]]


def _dump_tensors(inputs: list[RawTensor]) -> None:
    for i, t in enumerate(inputs):
        _say(f"\tInput {i}: type {t.type} dims {list(t.dims)} size {t.data.nbytes}")


def _tf_model(what: str) -> Any:
    def run(session: SessionBase, resource_id: int) -> list[Any]:
        res = session.resource(resource_id)
        _say(f"Calling {what} for session {session.id}", f"model: resource {res.id}")
        return [0, NOOP_STATUS]

    return run


def tf_model_run(
    session: SessionBase,
    resource_id: int,
    in_nodes: list[Any],
    in_tensors: list[RawTensor],
    out_nodes: list[Any],
    run_options: bytes | None,
) -> list[Any]:
    """vAccel's dummy TF run: copies of the inputs, one per output node, and an OK status."""
    _say(f"Calling TensorFlow session run for session {session.id}")
    _say(f"Number of inputs: {len(in_tensors)} outputs: {len(out_nodes)}")
    if run_options is not None:
        _say(f"run options: {len(run_options)} bytes")
    _dump_tensors(in_tensors)
    return [_copies(in_tensors, len(out_nodes)), [0, NOOP_STATUS]]


def _plain_model(what: str) -> Any:
    def run(session: SessionBase, resource_id: int) -> None:
        res = session.resource(resource_id)
        _say(f"Calling {what} for session {session.id}", f"model: resource {res.id}")

    return run


def tflite_model_run(
    session: SessionBase, resource_id: int, in_tensors: list[RawTensor], nr_out: int
) -> list[Any]:
    """vAccel's dummy TFLite run: copies of the inputs, status 0."""
    _say(f"Calling TensorFlow Lite session run for session {session.id}")
    _say(f"Number of inputs: {len(in_tensors)} outputs: {nr_out}")
    _dump_tensors(in_tensors)
    return [_copies(in_tensors, nr_out), 0]


def torch_model_run(
    session: SessionBase,
    resource_id: int,
    in_tensors: list[RawTensor],
    nr_out: int,
    run_options: bytes | None,
) -> list[RawTensor]:
    """vAccel's dummy torch run: copies of the inputs."""
    _say(f"Calling torch jitload_forward for session {session.id}")
    _say(f"Number of inputs: {len(in_tensors)} outputs: {nr_out}")
    _dump_tensors(in_tensors)
    return _copies(in_tensors, nr_out)


class NoopPlugin(Plugin):
    """Dummy results for every op; nothing blocks, so asyncio callers run it inline."""

    name = "noop"
    type = PluginType.DEBUG

    def operations(self) -> dict[OpType, Impl]:
        """Every op of the table, with vAccel's dummy results."""

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
            O.TF_MODEL_LOAD: quick(_tf_model("TensorFlow model load")),
            O.TF_MODEL_RUN: quick(tf_model_run),
            O.TF_MODEL_UNLOAD: quick(_tf_model("TensorFlow model unload")),
            O.MINMAX: quick(minmax),
            O.FPGA_ARRAYCOPY: quick(arraycopy),
            O.FPGA_VECTORADD: quick(vadd),
            O.FPGA_PARALLEL: quick(parallel),
            O.FPGA_MMULT: quick(mmult),
            O.EXEC_WITH_RESOURCE: quick(exec_with_resource),
            O.TFLITE_MODEL_LOAD: quick(_plain_model("TensorFlow Lite model load")),
            O.TFLITE_MODEL_RUN: quick(tflite_model_run),
            O.TFLITE_MODEL_UNLOAD: quick(_plain_model("TensorFlow Lite model unload")),
            O.TORCH_MODEL_LOAD: quick(_plain_model("torch model load")),
            O.TORCH_MODEL_RUN: quick(torch_model_run),
        }
