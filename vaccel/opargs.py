"""Argument checking and conversion for every operation, shared by all callers.

Each `check_*` function takes what an application (or, on the agent, a remote peer)
passed and returns the canonical positional arguments the plugins receive: NumPy arrays
of the op's dtype, plain ints, floats, strings and bytes. Anything else raises a
`BadArgumentError` naming the argument and what was expected. The agent runs the same
checks on what arrives over the wire, so a remote caller is held to the same rules.
"""

from __future__ import annotations

import numbers
import os
import reprlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .arg import Arg, list_array
from .enums import OpType
from .errors import BadArgumentError

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
I32 = np.dtype(np.int32)

Canonical = tuple[Any, ...]


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _show(value: object) -> str:
    """A caller's value in an error message: short, and never deep (hostile input)."""
    return _SHORT.repr(value)


def _type_name(value: object) -> str:
    return type(value).__name__


def _first_bad(values: Sequence[Any], kinds: tuple[type, ...]) -> tuple[int, Any] | None:
    for i, v in enumerate(values):
        if not isinstance(v, kinds) or (isinstance(v, bool) and kinds == (numbers.Integral,)):
            return i, v
    return None


def array_arg(value: Any, dtype: np.dtype[Any], name: str) -> tuple[npt.NDArray[Any], bool]:
    """`value` as an array of `dtype`; the flag says whether a list or tuple was given."""
    integral = dtype.kind in "iu"
    what = "integers" if integral else "numbers"
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        allowed = "iub" if integral else "iubf"
        if kind not in allowed:
            raise BadArgumentError(
                message=f"{name} must be an array of {what} ({dtype.name}); "
                f"got an array of {value.dtype}"
            )
        if integral and value.size and value.dtype != dtype:
            info = np.iinfo(dtype)
            if value.min() < info.min or value.max() > info.max:
                raise BadArgumentError(message=f"{name} has values outside the {dtype.name} range")
        return np.ascontiguousarray(value, dtype=dtype), False
    if isinstance(value, (list, tuple)):
        kinds: tuple[type, ...] = (numbers.Integral,) if integral else (numbers.Real,)
        bad = _first_bad(value, kinds)
        if bad is not None:
            i, v = bad
            raise BadArgumentError(
                message=f"{name} must be a list of {what}; element {i} is {_show(v)} "
                f"({_type_name(v)})"
            )
        if integral:
            wide = np.asarray(value, dtype=np.int64) if value else np.empty(0, np.int64)
            info = np.iinfo(dtype)
            if wide.size and (wide.min() < info.min or wide.max() > info.max):
                raise BadArgumentError(message=f"{name} has values outside the {dtype.name} range")
            return wide.astype(dtype), True
        return np.asarray(value, dtype=dtype), True
    raise BadArgumentError(
        message=f"{name} must be a list or NumPy array of {what}; got {_type_name(value)}"
    )


def int_arg(value: Any, name: str, minimum: int | None = None) -> int:
    """A Python int (NumPy integers accepted, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadArgumentError(message=f"{name} must be an integer; got {_type_name(value)}")
    result = int(value)
    if minimum is not None and result < minimum:
        raise BadArgumentError(message=f"{name} must be >= {minimum}; got {result}")
    return result


def float_arg(value: Any, name: str) -> float:
    """A Python float from any real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadArgumentError(message=f"{name} must be a number; got {_type_name(value)}")
    return float(value)


def str_arg(value: Any, name: str) -> str:
    """`value` as a non-empty str (BadArgumentError naming `name` otherwise)."""
    if not isinstance(value, str) or not value:
        raise BadArgumentError(message=f"{name} must be a non-empty string; got {_show(value)}")
    return value


def bytes_arg(value: Any, name: str) -> bytes:
    """Bytes from bytes, bytearray, memoryview or a uint8 array; never a path string."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, (bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, np.ndarray) and value.dtype == np.uint8:
        data = value.tobytes()
    elif isinstance(value, str):
        raise BadArgumentError(
            message=f"{name} must be bytes (the data itself), not a str; read the file first"
        )
    else:
        raise BadArgumentError(message=f"{name} must be bytes; got {_type_name(value)}")
    if not data:
        raise BadArgumentError(message=f"{name} is empty")
    return data


def same_shape(a: npt.NDArray[Any], b: npt.NDArray[Any], what: str) -> None:
    """BadArgumentError unless `a` and `b` have the same shape (`what` names the op)."""
    if a.shape != b.shape:
        raise BadArgumentError(
            message=f"{what}: a and b must have the same length; got {a.size} and {b.size}"
            if a.ndim == b.ndim == 1
            else f"{what}: a and b must have the same shape; got {a.shape} and {b.shape}"
        )


# --- one checker per op: (user or wire arguments) -> canonical arguments ---------------


def check_noop() -> Canonical:
    """noop takes no argument."""
    return ()


def nonempty(arr: npt.NDArray[Any], name: str, what: str) -> None:
    """Refuse an empty array (no accelerator run can do anything useful with it)."""
    if not arr.size:
        raise BadArgumentError(message=f"{what}: {name} is empty")


def check_vadd(a: Any, b: Any) -> Canonical:
    """fpga_vadd: two non-empty float32 arrays of one shape."""
    a_arr, _ = array_arg(a, F32, "a")
    b_arr, _ = array_arg(b, F32, "b")
    same_shape(a_arr, b_arr, "fpga_vadd")
    nonempty(a_arr, "a", "fpga_vadd")
    return a_arr, b_arr


def check_parallel(a: Any, b: Any) -> Canonical:
    """fpga_parallel: two non-empty float32 arrays of one shape."""
    a_arr, _ = array_arg(a, F32, "a")
    b_arr, _ = array_arg(b, F32, "b")
    same_shape(a_arr, b_arr, "fpga_parallel")
    nonempty(a_arr, "a", "fpga_parallel")
    return a_arr, b_arr


def check_arraycopy(a: Any) -> Canonical:
    """fpga_arraycopy: a non-empty int32 array."""
    arr = array_arg(a, I32, "a")[0]
    nonempty(arr, "a", "fpga_arraycopy")
    return (arr,)


def check_mmult(a: Any, b: Any) -> Canonical:
    """Two float32 arrays of one length; which lengths can be multiplied is the plugin's
    to say (vAccel's noop takes any; numpy and pynq need n*n elements)."""
    a_arr, _ = array_arg(a, F32, "a")
    b_arr, _ = array_arg(b, F32, "b")
    if a_arr.size != b_arr.size:
        raise BadArgumentError(
            message=f"fpga_mmult: a and b must have the same length; got {a_arr.size} and "
            f"{b_arr.size}"
        )
    nonempty(a_arr, "a", "fpga_mmult")
    return a_arr, b_arr


def square_side(a: npt.NDArray[Any], who: str) -> int:
    """n for an n*n matrix given flat or n x n; BadArgumentError naming the plugin otherwise."""
    n = round(a.size**0.5)
    if n * n != a.size or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape != (n, n)):
        raise BadArgumentError(
            message=f"fpga_mmult: the {who} plugin multiplies square matrices (n*n elements, "
            f"flat or n x n); got shape {a.shape}"
        )
    return int(n)


def check_minmax(indata: Any, ndata: Any, low: Any, high: Any) -> Canonical:
    """minmax: (float64 values, ndata, low, high), ndata values at least, low <= high."""
    count = int_arg(ndata, "ndata", 1)
    if isinstance(indata, (bytes, bytearray, memoryview)):
        raw = memoryview(indata).cast("B")
        if len(raw) < count * 8:
            raise BadArgumentError(
                message=f"minmax: indata holds {len(raw)} bytes, fewer than ndata={count} doubles "
                f"({count * 8} bytes)"
            )
        values = np.frombuffer(raw, dtype=F64, count=count)
    else:
        values, _ = array_arg(indata, F64, "indata")
        if values.size < count:
            raise BadArgumentError(
                message=f"minmax: indata holds {values.size} values, fewer than ndata={count}"
            )
        values = values.reshape(-1)[:count]
    lo = int_arg(low, "low_threshold")
    hi = int_arg(high, "high_threshold")
    if lo > hi:
        raise BadArgumentError(message=f"minmax: low_threshold {lo} is above high_threshold {hi}")
    return values, count, lo, hi


def check_sgemm(
    m: Any,
    n: Any,
    k: Any,
    alpha: Any,
    a: Any,
    lda: Any,
    b: Any,
    ldb: Any,
    beta: Any,
    ldc: Any,
    c: Any = None,
) -> Canonical:
    """Row-major SGEMM: C[m x n] = alpha * A[m x k] @ B[k x n] + beta * C."""
    mi, ni, ki = int_arg(m, "m", 0), int_arg(n, "n", 0), int_arg(k, "k", 0)
    ldai = int_arg(lda, "lda", max(1, ki))
    ldbi = int_arg(ldb, "ldb", max(1, ni))
    ldci = int_arg(ldc, "ldc", max(1, ni))
    a_arr = array_arg(a, F32, "a")[0].reshape(-1)
    b_arr = array_arg(b, F32, "b")[0].reshape(-1)
    need = {
        "a": (mi - 1) * ldai + ki if mi and ki else 0,
        "b": (ki - 1) * ldbi + ni if ki and ni else 0,
    }
    for label, arr in (("a", a_arr), ("b", b_arr)):
        if arr.size < need[label]:
            raise BadArgumentError(
                message=f"sgemm: {label} holds {arr.size} elements; m={mi} n={ni} k={ki} "
                f"with ld{label}={ldai if label == 'a' else ldbi} need at least {need[label]}"
            )
    c_arr = None
    if c is not None:
        c_arr = array_arg(c, F32, "c")[0].reshape(-1)
        if c_arr.size < mi * ldci:
            raise BadArgumentError(
                message=f"sgemm: c holds {c_arr.size} elements; m={mi} ldc={ldci} need {mi * ldci}"
            )
    return (
        mi,
        ni,
        ki,
        float_arg(alpha, "alpha"),
        a_arr,
        ldai,
        b_arr,
        ldbi,
        float_arg(beta, "beta"),
        ldci,
        c_arr,
    )


def check_image(image: Any) -> Canonical:
    """Image ops: the encoded image as bytes."""
    return (bytes_arg(image, "image"),)


_PLAIN = (bytes, str, int, float, bool, type(None), np.ndarray)


def plain_value(value: Any, name: str) -> Any:
    """An exec argument as a value the wire carries: an Arg's buffer or a plain value."""
    buf = value.buf if isinstance(value, Arg) else value
    if isinstance(buf, (bytearray, memoryview)):
        return bytes(buf)
    if isinstance(buf, np.generic):
        return buf.item()
    if isinstance(buf, os.PathLike):
        return os.fspath(buf)
    if isinstance(buf, (list, tuple)):
        return list_array(buf, name)
    if not isinstance(buf, _PLAIN):
        raise BadArgumentError(
            message=f"{name} must be bytes, str, int, float, bool, None, a list of numbers "
            f"or a NumPy array; got {_type_name(buf)}"
        )
    return buf


def _arg_list(values: Any, name: str) -> list[Any]:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise BadArgumentError(
            message=f"{name} must be a list of arguments; got {_type_name(values)}"
        )
    return [plain_value(v, f"{name}[{i}]") for i, v in enumerate(values)]


def _library(library: Any) -> str:
    if isinstance(library, os.PathLike):
        library = os.fspath(library)
    return str_arg(library, "library")


def check_exec(library: Any, symbol: Any, arg_read: Any = None, arg_write: Any = None) -> Canonical:
    """exec: (library, symbol, read Args, write Args)."""
    return (
        _library(library),
        str_arg(symbol, "symbol"),
        _arg_list(arg_read, "arg_read"),
        _arg_list(arg_write, "arg_write"),
    )


def resource_id(resource: Any, name: str = "resource") -> int:
    """A resource's id from a Resource (or an id, as the agent receives it)."""
    rid = getattr(resource, "id", resource)
    return int_arg(rid, name, 1)


def check_exec_with_resource(
    resource: Any, symbol: Any, arg_read: Any = None, arg_write: Any = None
) -> Canonical:
    """exec_with_resource: (resource id, symbol, read Args, write Args)."""
    return (
        resource_id(resource),
        str_arg(symbol, "symbol"),
        _arg_list(arg_read, "arg_read"),
        _arg_list(arg_write, "arg_write"),
    )


def check_model(resource: Any) -> Canonical:
    """Model load/unload ops: the resource's id."""
    return (resource_id(resource),)


def _tensors(values: Any, mapper: Any, name: str) -> list[Any]:
    from .ops.tensors import raw_tensor

    if not isinstance(values, (list, tuple)):
        raise BadArgumentError(
            message=f"{name} must be a list of tensors; got {_type_name(values)}"
        )
    return [raw_tensor(v, mapper, f"{name}[{i}]") for i, v in enumerate(values)]


def _nodes(values: Any, name: str) -> list[list[Any]]:
    if not isinstance(values, (list, tuple)):
        raise BadArgumentError(message=f"{name} must be a list of Nodes; got {_type_name(values)}")
    out = []
    for i, node in enumerate(values):
        if isinstance(node, (list, tuple)) and len(node) == 2:
            node_name, node_id = node
        else:
            node_name, node_id = getattr(node, "name", None), getattr(node, "id", None)
        out.append([str_arg(node_name, f"{name}[{i}].name"), int_arg(node_id, f"{name}[{i}].id")])
    return out


def _options(run_options: Any) -> bytes | None:
    if run_options is None:
        return None
    data = getattr(run_options, "data", run_options)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadArgumentError(
            message=f"run_options must be a Buffer; got {_type_name(run_options)}"
        )
    return bytes(data)


def check_tf_run(
    resource: Any, in_nodes: Any, in_tensors: Any, out_nodes: Any, run_options: Any = None
) -> Canonical:
    """tf_model_run: (resource id, input nodes, input tensors, output nodes, run options)."""
    from .ops.tf import TensorTypeMapper

    nodes_in = _nodes(in_nodes, "in_nodes")
    tensors = _tensors(in_tensors, TensorTypeMapper, "in_tensors")
    if len(nodes_in) != len(tensors):
        raise BadArgumentError(
            message=f"tf_model_run: {len(nodes_in)} input nodes for {len(tensors)} input tensors"
        )
    return (
        resource_id(resource),
        nodes_in,
        tensors,
        _nodes(out_nodes, "out_nodes"),
        _options(run_options),
    )


def check_tflite_run(resource: Any, in_tensors: Any, nr_out_tensors: Any = 1) -> Canonical:
    """tflite_model_run: (resource id, input tensors, number of outputs)."""
    from .ops.tf.lite import TensorTypeMapper

    return (
        resource_id(resource),
        _tensors(in_tensors, TensorTypeMapper, "in_tensors"),
        int_arg(nr_out_tensors, "nr_out_tensors", 0),
    )


def check_torch_run(
    resource: Any, in_tensors: Any, nr_out_tensors: Any = 1, run_options: Any = None
) -> Canonical:
    """torch_model_run: (resource id, input tensors, number of outputs, run options)."""
    from .ops.torch import TensorTypeMapper

    return (
        resource_id(resource),
        _tensors(in_tensors, TensorTypeMapper, "in_tensors"),
        int_arg(nr_out_tensors, "nr_out_tensors", 0),
        _options(run_options),
    )


def genop_request(arg_read: Any) -> tuple[OpType, list[Any]]:
    """genop's first read argument names the op; the rest are its arguments."""
    if not isinstance(arg_read, (list, tuple)) or not arg_read:
        raise BadArgumentError(message="genop: arg_read must start with the op type")
    first = arg_read[0].buf if isinstance(arg_read[0], Arg) else arg_read[0]
    if isinstance(first, np.ndarray) and first.size == 1:
        first = first.reshape(-1)[0]
    if isinstance(first, (bytes, bytearray)) and len(first) in (4, 8):
        first = int.from_bytes(first, "little")
    try:
        op = OpType(int(first))
    except (TypeError, ValueError):
        raise BadArgumentError(message=f"genop: {_show(first)} is not an OpType") from None
    if op in (OpType.MAX, OpType.OPENCV, OpType.TORCH_SGEMM):
        raise BadArgumentError(message=f"genop: op {op.name} cannot be called through genop")
    return op, [a.buf if isinstance(a, Arg) else a for a in arg_read[1:]]
