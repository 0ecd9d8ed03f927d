"""An ONNX model in an onnxruntime InferenceSession (CPU), as a `Backend`.

An InferenceSession runs calls from many threads at once, so loaded models are shared
without a lock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from vaccel.errors import BadArgumentError
from vaccel.plugins.imaging.backend import TensorSpec
from vaccel.plugins.imaging.resources import ModelFiles

#: What `vaccel info` shows of the framework.
FRAMEWORK = f"onnxruntime {ort.__version__}"
#: onnxruntime's element type names -> NumPy.
DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}
#: Extensions of models other plugins run (never sniffed as ONNX).
OTHERS = (".tflite", ".pt", ".pth", ".ptl", ".pb", ".h5", ".keras")


def is_onnx(name: str, blob: bytes) -> bool:
    """An `.onnx` file, or an unnamed protobuf starting as a ModelProto (ir_version first)."""
    if name.endswith(".onnx"):
        return True
    return not name.endswith(OTHERS) and blob[:1] == b"\x08" and blob[4:8] != b"TFL3"


def _dim(value: Any) -> int:
    return int(value) if isinstance(value, int) and value > 0 else -1


def _spec(arg: Any, model: str) -> TensorSpec:
    dtype = DTYPES.get(arg.type)
    if dtype is None:
        raise BadArgumentError(
            message=f"model {model!r}: its tensor {arg.name!r} is {arg.type}, which pyvaccel "
            "cannot feed or read"
        )
    shape = arg.shape if isinstance(arg.shape, (list, tuple)) else []
    return TensorSpec(str(arg.name), tuple(_dim(d) for d in shape), np.dtype(dtype))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class OnnxModel:
    """One ONNX model in one InferenceSession."""

    def __init__(self, files: ModelFiles, threads: int = 0) -> None:
        self.name = files.name
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                files.model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BadArgumentError(
                message=f"model {files.name!r} (resource {files.resource_id}) is not an ONNX "
                f"model onnxruntime can load: {_first_line(exc)}"
            ) from None
        self.inputs = [_spec(a, self.name) for a in self.session.get_inputs()]
        self.outputs = [_spec(a, self.name) for a in self.session.get_outputs()]

    def run_named(
        self, feeds: dict[str, np.ndarray[Any, Any]], names: list[str] | None = None
    ) -> list[np.ndarray[Any, Any]]:
        """Named inputs -> the named outputs (all of them when `names` is None)."""
        try:
            outputs = self.session.run(names, feeds)
        except Exception as exc:
            raise BadArgumentError(
                message=f"model {self.name!r} failed on its inputs: {_first_line(exc)}"
            ) from None
        return [np.asarray(o) for o in outputs]

    def run(self, feeds: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        """One array per input, in order -> every output."""
        return self.run_named({s.name: f for s, f in zip(self.inputs, feeds, strict=True)})
