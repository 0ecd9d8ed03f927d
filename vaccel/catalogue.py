"""The op table: everything pyvaccel knows about each operation, declared once.

For every `OpType` an `OpSpec` gives the Session method name, vAccel's names for it in
log lines (`title` when a plugin registers it, `lookup` when a session looks for it),
the argument checker (caller's arguments -> the canonical arguments plugins receive,
run by sessions and by the agent alike), the result shaper (a plugin's canonical
result -> what the caller gets back: lists for lists, Tensors, Status), the kind of
resource its first argument must be, a bound on its result's size computed from its
arguments (checked before any work starts), and whether it may block.

Plugins implement entries of this table; sessions, the agent, the rpc plugin and the
registration log lines all read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import opargs as A
from .arg import Arg
from .enums import OpType, ResourceType
from .ops import tf, torch
from .ops.tensors import RawTensor, TensorBase
from .ops.tf import lite

Canonical = tuple[Any, ...]


@dataclass(frozen=True)
class OpSpec:
    """One operation, as the whole of pyvaccel sees it."""

    op: OpType
    #: The Session method (and the name used in messages).
    method: str
    #: vAccel's display name ("Registered function Vector Add from plugin noop").
    title: str
    #: What vAccel logs looking for it ("Looking for plugin implementing ...").
    lookup: str
    #: Caller's arguments -> canonical arguments (BadArgumentError naming what is wrong).
    check: Callable[..., Canonical]
    #: (caller's arguments, canonical result) -> what the caller gets.
    shape: Callable[[Sequence[Any], Any], Any]
    #: The type the first argument's resource must have (None: no resource argument).
    resource: ResourceType | None = None
    #: A bound on the result's size in bytes, from the canonical arguments.
    result_bytes: Callable[[Canonical], int] = lambda args: 0
    #: Whether the op may take long (plugins may still declare a call cheap).
    may_block: bool = True
    #: Where the result holds paths of files the op wrote (None: nowhere; (): the result
    #: itself; (i, ...): those items of a tuple result), carried by value to remote callers.
    file_results: tuple[int, ...] | None = None


# ---------------------------------------------------------------------- shapers


def _like(given: Any, result: Any) -> Any:
    """A list back when a list or tuple went in, else the array itself."""
    if isinstance(given, (list, tuple)) and isinstance(result, np.ndarray):
        return result.tolist()
    return result


def _first_like(given: Sequence[Any], result: Any) -> Any:
    return _like(given[0], result)


def _pair_like(given: Sequence[Any], result: Any) -> Any:
    first, second = result
    return _like(given[0], first), _like(given[0], second)


def _sgemm(given: Sequence[Any], result: Any) -> Any:
    return result if isinstance(given[4], np.ndarray) else np.asarray(result).tolist()


def _nothing(given: Sequence[Any], result: Any) -> None:
    return None


def _text(given: Sequence[Any], result: Any) -> str:
    return str(result)


def _classify(given: Sequence[Any], result: Any) -> tuple[str, str]:
    tag, name = result
    return str(tag), str(name)


def _minmax(given: Sequence[Any], result: Any) -> tuple[Any, float, float]:
    out, lo, hi = result
    if isinstance(given[0], (bytes, bytearray, memoryview)):
        out = bytearray(np.asarray(out, dtype=np.float64).tobytes())  # as vaccel-python
    else:
        out = _like(given[0], out)
    return out, float(lo), float(hi)


def _exec(given: Sequence[Any], result: Any) -> list[Any] | None:
    """Results go into the write arguments; their values come back (None without any).

    As vaccel-python, a write item that is not an `Arg` is wrapped in one, so each value
    comes back in the kind the caller gave (a list for a list, a float for a float); an
    `Arg` (and a bytearray or NumPy array) is written in place.
    """
    write = given[3] if len(given) > 3 else None
    if not write:
        return None
    values = list(result)
    out = []
    for i, item in enumerate(write):
        value = values[i] if i < len(values) else None
        arg = item if isinstance(item, Arg) else Arg(item)
        arg.store(value)
        out.append(arg.buf)
    return out


def _raw(value: Any) -> RawTensor:
    if isinstance(value, RawTensor):
        return value
    type_, dims, data = value
    return RawTensor(int(type_), tuple(int(d) for d in dims), data)


def _tensors(cls: type[TensorBase], values: Any) -> list[Any]:
    return [cls.from_raw(_raw(v)) for v in values]


def _tf_status(given: Sequence[Any], result: Any) -> tf.Status:
    code, message = result
    return tf.Status(int(code), str(message))


def _tf_run(given: Sequence[Any], result: Any) -> tuple[list[Any], tf.Status]:
    outs, (code, message) = result
    return _tensors(tf.Tensor, outs), tf.Status(int(code), str(message))


def _tflite_run(given: Sequence[Any], result: Any) -> tuple[list[Any], int]:
    outs, status = result
    return _tensors(lite.Tensor, outs), int(status)


def _torch_run(given: Sequence[Any], result: Any) -> list[Any]:
    return _tensors(torch.Tensor, result)


# ---------------------------------------------------------------------- result bounds


def _same_as_first(args: Canonical) -> int:
    return int(args[0].nbytes)


def _twice_first(args: Canonical) -> int:
    return 2 * int(args[0].nbytes)


def _sgemm_bytes(args: Canonical) -> int:
    m, _n, _k, _alpha, _a, _lda, _b, _ldb, _beta, ldc, _c = args
    return 4 * int(m) * int(ldc)


def _minmax_bytes(args: Canonical) -> int:
    return 8 * int(args[1])


def _tensor_bytes(tensors: Sequence[Any]) -> int:
    return sum(int(_raw(t).data.nbytes) for t in tensors)


def _tf_run_bytes(args: Canonical) -> int:
    """A TF run: as much again as its input tensors (a plugin bounds the rest)."""
    return _tensor_bytes(args[2])


def _model_run_bytes(args: Canonical) -> int:
    """A TFLite or Torch run: as much again as its input tensors."""
    return _tensor_bytes(args[1])


def _value_bytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, str)):
        return len(value)
    return 8


def _exec_bytes(args: Canonical) -> int:
    """exec: its write arguments' sizes (what it should write back)."""
    return sum(_value_bytes(v) for v in args[3])


def _image_result_bytes(args: Canonical) -> int:
    """An image op's result image: as large as a lightly compressed decode of its input."""
    return (1 << 20) + 64 * len(args[0])


def _spec(
    op: OpType,
    method: str,
    title: str,
    check: Callable[..., Canonical],
    shape: Callable[[Sequence[Any], Any], Any],
    *,
    lookup: str | None = None,
    resource: ResourceType | None = None,
    result_bytes: Callable[[Canonical], int] = lambda args: 0,
    may_block: bool = True,
    file_results: tuple[int, ...] | None = None,
) -> OpSpec:
    return OpSpec(
        op,
        method,
        title,
        title if lookup is None else lookup,
        check,
        shape,
        resource,
        result_bytes,
        may_block,
        file_results,
    )


def _image(op: OpType, method: str, title: str) -> OpSpec:
    return _spec(
        op,
        method,
        title,
        A.check_image,
        _text,
        result_bytes=_image_result_bytes,
        file_results=(),
    )


MODEL = ResourceType.MODEL

# In the order vAccel's noop plugin registers them (the seed's transcript), then the rest.
CATALOGUE: dict[OpType, OpSpec] = {
    s.op: s
    for s in (
        _spec(OpType.NOOP, "noop", "noop", A.check_noop, _nothing, may_block=False),
        _spec(
            OpType.BLAS_SGEMM, "sgemm", "sgemm", A.check_sgemm, _sgemm, result_bytes=_sgemm_bytes
        ),
        _spec(
            OpType.IMAGE_CLASSIFY,
            "classify",
            "image classification",
            A.check_image,
            _classify,
            result_bytes=_image_result_bytes,
            file_results=(1,),
        ),
        _image(OpType.IMAGE_DETECT, "detect", "image detection"),
        _image(OpType.IMAGE_SEGMENT, "segment", "image segmentation"),
        _image(OpType.IMAGE_POSE, "pose", "image pose estimation"),
        _image(OpType.IMAGE_DEPTH, "depth", "image depth estimation"),
        _spec(OpType.EXEC, "exec", "exec", A.check_exec, _exec, result_bytes=_exec_bytes),
        _spec(
            OpType.TF_MODEL_LOAD,
            "tf_model_load",
            "TensorFlow session load",
            A.check_model,
            _tf_status,
            resource=MODEL,
        ),
        _spec(
            OpType.TF_MODEL_RUN,
            "tf_model_run",
            "TensorFlow session run",
            A.check_tf_run,
            _tf_run,
            resource=MODEL,
            result_bytes=_tf_run_bytes,
        ),
        _spec(
            OpType.TF_MODEL_UNLOAD,
            "tf_model_unload",
            "TensorFlow session delete",
            A.check_model,
            _tf_status,
            resource=MODEL,
        ),
        _spec(
            OpType.MINMAX, "minmax", "MinMax", A.check_minmax, _minmax, result_bytes=_minmax_bytes
        ),
        _spec(
            OpType.FPGA_ARRAYCOPY,
            "fpga_arraycopy",
            "Array copy",
            A.check_arraycopy,
            _first_like,
            lookup="fpga_array_copy operation",
            result_bytes=_same_as_first,
        ),
        _spec(
            OpType.FPGA_VECTORADD,
            "fpga_vadd",
            "Vector Add",
            A.check_vadd,
            _first_like,
            lookup="fpga_vector_add operation",
            result_bytes=_same_as_first,
        ),
        _spec(
            OpType.FPGA_PARALLEL,
            "fpga_parallel",
            "Parallel acceleration",
            A.check_parallel,
            _pair_like,
            lookup="fpga_parallel operation",
            result_bytes=_twice_first,
        ),
        _spec(
            OpType.FPGA_MMULT,
            "fpga_mmult",
            "Matrix multiplication",
            A.check_mmult,
            _first_like,
            lookup="fpga_mmult operation",
            result_bytes=_same_as_first,
        ),
        _spec(
            OpType.EXEC_WITH_RESOURCE,
            "exec_with_resource",
            "Exec with resource",
            A.check_exec_with_resource,
            _exec,
            resource=ResourceType.LIB,
            result_bytes=_exec_bytes,
        ),
        _spec(
            OpType.TFLITE_MODEL_LOAD,
            "tflite_model_load",
            "TensorFlow Lite session load",
            A.check_model,
            _nothing,
            resource=MODEL,
        ),
        _spec(
            OpType.TFLITE_MODEL_RUN,
            "tflite_model_run",
            "TensorFlow Lite session run",
            A.check_tflite_run,
            _tflite_run,
            resource=MODEL,
            result_bytes=_model_run_bytes,
        ),
        _spec(
            OpType.TFLITE_MODEL_UNLOAD,
            "tflite_model_unload",
            "TensorFlow Lite session delete",
            A.check_model,
            _nothing,
            resource=MODEL,
        ),
        _spec(
            OpType.TORCH_MODEL_LOAD,
            "torch_model_load",
            "Torch model load",
            A.check_model,
            _nothing,
            resource=MODEL,
        ),
        _spec(
            OpType.TORCH_MODEL_RUN,
            "torch_model_run",
            "Torch jitload_forward function",
            A.check_torch_run,
            _torch_run,
            resource=MODEL,
            result_bytes=_model_run_bytes,
        ),
    )
}

BY_METHOD: dict[str, OpSpec] = {s.method: s for s in CATALOGUE.values()}


def spec_of(op: OpType) -> OpSpec:
    """The table entry of `op` (KeyError for ops pyvaccel does not serve)."""
    return CATALOGUE[op]


def op_title(op: OpType) -> str:
    """vAccel's display name of an op (falls back to the enum name)."""
    spec = CATALOGUE.get(op)
    return spec.title if spec else op.name


def store_into(into: list[Any], result: Any) -> None:
    """genop: write an op's result(s) into its write arguments, in order."""
    values = list(result) if isinstance(result, tuple) else [result]
    for target, value in zip(into, values, strict=False):
        if isinstance(target, Arg):
            target.store(value)
