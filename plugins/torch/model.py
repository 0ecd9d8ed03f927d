"""A TorchScript module loaded with CPU torch.

`import torch` here is the real torch: this package (`vaccel.plugins.torch`) only ever
uses absolute imports, so its own name never shadows it.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import Any

import numpy as np
import torch

from vaccel.errors import BadArgumentError
from vaccel.ops.tensors import RawTensor
from vaccel.ops.torch import TensorType, TensorTypeMapper
from vaccel.plugins.imaging.resources import ModelFiles

#: What `vaccel info` shows of the framework.
FRAMEWORK = f"torch {torch.__version__}"
EXTENSIONS = (".pt", ".pth", ".ptl", ".torchscript")
OP = "torch_model_run"
#: torch warns that TorchScript is deprecated (2.10 on); it is vAccel's format: loads are
#: made one at a time with that warning silenced.
_LOADING = threading.Lock()


def is_torchscript(name: str, blob: bytes) -> bool:
    """A `.pt`-like file, or any zip archive (TorchScript's container)."""
    return name.endswith(EXTENSIONS) or blob[:2] == b"PK"


def _reason(exc: BaseException) -> str:
    """The useful line of a (TorchScript) error: the last `...Error: ...` line, or the first."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    errors = [line for line in lines if "Error: " in line]
    return errors[-1] if errors else (lines[0] if lines else type(exc).__name__)


class TorchModel:
    """One TorchScript module, in inference mode."""

    def __init__(self, files: ModelFiles) -> None:
        self.name = files.name
        try:
            with _LOADING, warnings.catch_warnings():
                warnings.filterwarnings("ignore", r"`torch\.jit\.load`", DeprecationWarning)
                self.module = torch.jit.load(  # type: ignore[no-untyped-call]
                    io.BytesIO(files.model), map_location="cpu"
                )
        except Exception as exc:
            raise BadArgumentError(
                message=f"model {files.name!r} (resource {files.resource_id}) is not a "
                f"TorchScript model torch can load: {_reason(exc)}"
            ) from None
        self.module.eval()

    def run(self, tensors: list[RawTensor], count: int) -> list[RawTensor]:
        """Feed the tensors to `forward`; the first `count` outputs."""
        inputs = [_to_torch(i, t) for i, t in enumerate(tensors)]
        try:
            with torch.inference_mode():
                result = self.module(*inputs)
        except Exception as exc:
            given = ", ".join(f"{TensorType(t.type).name} {list(t.dims)}" for t in tensors)
            raise BadArgumentError(
                message=f"{OP}: model {self.name!r} refused in_tensors ({given}): {_reason(exc)}"
            ) from None
        outputs = _flatten(result)
        if count > len(outputs):
            raise BadArgumentError(
                message=f"{OP}: nr_out_tensors is {count}; model {self.name!r} returned "
                f"{len(outputs)} tensors"
            )
        return [_from_torch(i, t, self.name) for i, t in enumerate(outputs[:count])]


def _to_torch(index: int, tensor: RawTensor) -> Any:
    if tensor.type == TensorType.HALF:
        array = tensor.data.reshape(-1).view(np.float16).reshape(tensor.dims)
    else:
        array = tensor.data.reshape(tensor.dims)
    return torch.from_numpy(np.array(array, copy=True))


def _flatten(result: Any) -> list[Any]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _flatten(item)]
    raise BadArgumentError(message=f"{OP}: the model returned {type(result).__name__}, not tensors")


def _from_torch(index: int, tensor: Any, model: str) -> RawTensor:
    kept = tensor.detach().contiguous().cpu()
    try:
        type_ = TensorTypeMapper.type_from_torch(kept.dtype)
    except ValueError:
        raise BadArgumentError(
            message=f"{OP}: output {index} of model {model!r} is {kept.dtype}, which vAccel's "
            "torch tensors cannot carry (uint8, int8, int16, int32, int64, float16, float32)"
        ) from None
    data = kept.numpy()
    if type_ == TensorType.HALF:
        data = data.view(np.uint8).reshape(-1)
    return RawTensor(int(type_), tuple(int(d) for d in kept.shape), data)
