"""A TFLite model loaded in LiteRT (ai-edge-litert), as a `Backend`.

An interpreter is not thread-safe: calls on one loaded model take turns. Inputs whose
shape the model leaves open (-1 in its signature) are resized to what is fed.
"""

from __future__ import annotations

import threading
from importlib.metadata import version
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from vaccel.errors import BadArgumentError
from vaccel.plugins.imaging.backend import TensorSpec
from vaccel.plugins.imaging.resources import ModelFiles

#: What `vaccel info` shows of the framework.
FRAMEWORK = f"ai-edge-litert {version('ai-edge-litert')}"
#: The identifier at bytes 4..8 of every TFLite flatbuffer.
MAGIC = b"TFL3"


def is_tflite(name: str, blob: bytes) -> bool:
    """A `.tflite` file, or any file with TFLite's identifier."""
    return name.endswith(".tflite") or blob[4:8] == MAGIC


def _spec(detail: dict[str, Any]) -> TensorSpec:
    shape = detail.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = detail["shape"]
    return TensorSpec(str(detail["name"]), tuple(int(d) for d in shape), np.dtype(detail["dtype"]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class LiteModel:
    """One TFLite model in one interpreter."""

    def __init__(self, files: ModelFiles, threads: int | None = None) -> None:
        self.name = files.name
        self._content = files.model
        try:
            self.interpreter = Interpreter(model_content=self._content, num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:
            raise BadArgumentError(
                message=f"model {files.name!r} (resource {files.resource_id}) is not a TFLite "
                f"model LiteRT can load: {_first_line(exc)}"
            ) from None
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self.inputs = [_spec(d) for d in self._inputs]
        self.outputs = [_spec(d) for d in self._outputs]
        self.lock = threading.Lock()

    def run_raw(self, feeds: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        """The outputs as the model gives them (quantized outputs stay integers)."""
        with self.lock:
            resized = False
            for detail, feed in zip(self._inputs, feeds, strict=True):
                if tuple(detail["shape"]) != feed.shape:
                    self.interpreter.resize_tensor_input(detail["index"], list(feed.shape))
                    resized = True
            if resized:
                self.interpreter.allocate_tensors()
                self._inputs = self.interpreter.get_input_details()
            for detail, feed in zip(self._inputs, feeds, strict=True):
                self.interpreter.set_tensor(detail["index"], feed)
            try:
                self.interpreter.invoke()
            except Exception as exc:
                raise BadArgumentError(
                    message=f"model {self.name!r} failed on its inputs: {_first_line(exc)}"
                ) from None
            details = self.interpreter.get_output_details()
            return [self.interpreter.get_tensor(d["index"]) for d in details]

    def run(self, feeds: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        """The outputs, quantized ones turned back into real values."""
        out = []
        for detail, array in zip(self._outputs, self.run_raw(feeds), strict=True):
            scale, zero = detail.get("quantization", (0.0, 0))
            if scale and array.dtype.kind in "iu":
                array = (array.astype(np.float32) - zero) * np.float32(scale)
            out.append(array)
        return out
