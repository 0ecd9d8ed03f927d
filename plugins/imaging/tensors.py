"""Model-op tensors against a model's inputs: checked feeds in, RawTensors out.

The model ops (tflite_model_run, tf_model_run on ONNX models) receive `RawTensor`s of
one family's types; a tensor whose type or shape the model does not take is refused
here with a message naming the tensor, what it is and what the model takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vaccel.errors import BadArgumentError
from vaccel.ops.tensors import RawTensor, TypeMapper

from .backend import TensorSpec


def _type_name(mapper: TypeMapper, dtype: np.dtype[Any]) -> str:
    try:
        return mapper.type_from_numpy(dtype).name
    except ValueError:
        return str(dtype)


def _fits(dims: Sequence[int], shape: Sequence[int]) -> bool:
    return len(dims) == len(shape) and all(
        s < 0 or s == d for d, s in zip(dims, shape, strict=True)
    )


def check_feeds(
    op: str, model: str, specs: list[TensorSpec], tensors: list[RawTensor], mapper: TypeMapper
) -> list[np.ndarray[Any, Any]]:
    """One array per model input, in order; BadArgumentError naming the first misfit."""
    if len(tensors) != len(specs):
        takes = "; ".join(s.describe() for s in specs)
        raise BadArgumentError(
            message=f"{op}: model {model!r} takes {len(specs)} input tensors ({takes}); "
            f"got {len(tensors)}"
        )
    feeds = []
    for i, (tensor, spec) in enumerate(zip(tensors, specs, strict=True)):
        what = f"{op}: in_tensors[{i}]"
        given = mapper.types(tensor.type).name
        want = _type_name(mapper, spec.dtype)
        if not mapper.mapped(tensor.type) or tensor.data.dtype != spec.dtype:
            raise BadArgumentError(
                message=f"{what} is {given}; model {model!r} input {spec.describe()} takes {want}"
            )
        if not _fits(tensor.dims, spec.shape):
            raise BadArgumentError(
                message=f"{what} has dims {list(tensor.dims)}; model {model!r} input "
                f"{spec.describe()} takes that shape (? is any size)"
            )
        feeds.append(np.ascontiguousarray(tensor.data.reshape(tensor.dims)))
    return feeds


def to_raw(
    op: str, model: str, outputs: list[np.ndarray[Any, Any]], count: int, mapper: TypeMapper
) -> list[RawTensor]:
    """The first `count` outputs as RawTensors of `mapper`'s family."""
    if count > len(outputs):
        raise BadArgumentError(
            message=f"{op}: nr_out_tensors is {count}; model {model!r} has {len(outputs)} outputs"
        )
    out = []
    for i, array in enumerate(outputs[:count]):
        try:
            type_ = int(mapper.type_from_numpy(array.dtype))
        except ValueError:
            raise BadArgumentError(
                message=f"{op}: output {i} of model {model!r} is {array.dtype}, which "
                f"{mapper.family} tensors cannot carry"
            ) from None
        contiguous = np.ascontiguousarray(array)
        out.append(RawTensor(type_, tuple(int(d) for d in contiguous.shape), contiguous))
    return out
