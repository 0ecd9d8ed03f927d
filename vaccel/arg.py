"""`Arg`: one argument of exec/genop, a value with a type, as in vaccel-python."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .enums import ArgType
from .errors import BadArgumentError

_ARRAY_TYPES: dict[ArgType, np.dtype[Any]] = {
    ArgType.INT8_ARRAY: np.dtype(np.int8),
    ArgType.INT16_ARRAY: np.dtype(np.int16),
    ArgType.INT32_ARRAY: np.dtype(np.int32),
    ArgType.INT64_ARRAY: np.dtype(np.int64),
    ArgType.UINT8_ARRAY: np.dtype(np.uint8),
    ArgType.UINT16_ARRAY: np.dtype(np.uint16),
    ArgType.UINT32_ARRAY: np.dtype(np.uint32),
    ArgType.UINT64_ARRAY: np.dtype(np.uint64),
    ArgType.FLOAT32_ARRAY: np.dtype(np.float32),
    ArgType.FLOAT64_ARRAY: np.dtype(np.float64),
    ArgType.BOOL_ARRAY: np.dtype(np.bool_),
}


def _is_int(value: Any) -> bool:
    """An int in a list vaccel-python packs as int32 (a bool is an int there too)."""
    return isinstance(value, (int, np.integer, np.bool_))


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def list_array(values: list[Any] | tuple[Any, ...], name: str = "argument") -> np.ndarray[Any, Any]:
    """A list as the C array vaccel-python makes of it: ints an int32 array, numbers a
    float32 one. BadArgumentError for an empty list or one that mixes other values."""
    if not values:
        raise BadArgumentError(message=f"{name} is an empty list (vAccel has no empty C array)")
    if all(_is_int(v) for v in values):
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(np.int32)
        if wide.min() < info.min or wide.max() > info.max:
            raise BadArgumentError(
                message=f"{name}: a list of ints is an int32 array; a value "
                "is outside the int32 range"
            )
        return wide.astype(np.int32)
    if all(_is_number(v) for v in values):
        return np.asarray(values, dtype=np.float32)
    raise BadArgumentError(
        message=f"{name} must be a list of ints (an int32 array) or of numbers (a float32 "
        f"array); got {[type(v).__name__ for v in values[:4]]}"
    )


def _list_type(values: Any) -> ArgType | None:
    """INT32_ARRAY or FLOAT32_ARRAY for a list vaccel-python would pack, else None."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    if all(_is_int(v) for v in values):
        return ArgType.INT32_ARRAY
    if all(_is_number(v) for v in values):
        return ArgType.FLOAT32_ARRAY
    return None


class Arg:
    """An argument of `exec`, `exec_with_resource` or `genop`: a value and its `ArgType`.

    `Arg(data, type_=ArgType.RAW, custom_type_id=0)`. `buf` is the value; an op that
    writes into a write argument (exec, genop) updates it, keeping its kind: in place
    when the value is a writable buffer (a bytearray or a NumPy array), a new list for a
    list (vaccel-python packs a list of ints as an int32 array, of floats as a float32
    one, and reads it back as a list), a number of the same type for a number.

    Example:
        >>> out = Arg(bytearray(8))
        >>> out.type
        <ArgType.RAW: 0>
    """

    def __init__(
        self, data: Any, type_: ArgType | int = ArgType.RAW, custom_type_id: int = 0
    ) -> None:
        self._buf = data
        self.type = ArgType(type_)
        self.custom_type_id = int(custom_type_id)

    @classmethod
    def wrap(cls, value: Any) -> Arg:
        """An `Arg` for a plain value, typed as vaccel-python types it.

        A list of ints is an int32 array, a list of floats a float32 array (the list is
        kept, and read back as a list), bytes or a bytearray a buffer, a str or a path a
        char array, a NumPy array raw data.
        """
        if isinstance(value, Arg):
            return value
        list_type = _list_type(value)
        if list_type is not None:
            return cls(value, list_type)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(value, ArgType.BUFFER)
        if isinstance(value, (str, os.PathLike)):
            return cls(os.fspath(value), ArgType.CHAR_ARRAY)
        if isinstance(value, bool):
            return cls(value, ArgType.BOOL)
        if isinstance(value, int):
            return cls(value, ArgType.INT64)
        if isinstance(value, float):
            return cls(value, ArgType.FLOAT64)
        return cls(value, ArgType.RAW)

    @property
    def buf(self) -> Any:
        """The argument's value (after an op, what the op wrote into it)."""
        return self._buf

    @buf.setter
    def buf(self, value: Any) -> None:
        self._buf = value

    @property
    def argtype(self) -> ArgType:
        """The same as `type` (pyvaccel 0.1's name)."""
        return self.type

    @property
    def size(self) -> int:
        """The value's size in bytes, as vAccel's `arg.size`."""
        value = self._buf
        nbytes = getattr(value, "nbytes", None)
        if nbytes is not None:
            return int(nbytes)
        if isinstance(value, (bytes, bytearray)):
            return len(value)
        if isinstance(value, str):
            return len(value.encode()) + 1  # a C string with its terminating NUL
        if _list_type(value) is not None:
            return 4 * len(value)  # int32 or float32 elements
        return 8

    c_size = size

    def store(self, result: Any) -> None:
        """Write an op's result into this argument, keeping the kind of value it holds.

        A writable NumPy array or bytearray is written in place when the result fits it
        (same number of elements, or same number of bytes); a list becomes a list of the
        result's values; an int, float or bool stays one; anything else is replaced.
        """
        current = self._buf
        if result is None:
            return
        if isinstance(current, np.ndarray) and _store_array(current, result):
            return
        if isinstance(current, bytearray):
            data = _as_bytes(result)
            if data is not None and len(data) == len(current):
                current[:] = data
                return
        if isinstance(current, (list, tuple)) and isinstance(result, (np.ndarray, list, tuple)):
            values = np.asarray(result).reshape(-1).tolist()
            self._buf = type(current)(values) if isinstance(current, tuple) else values
            return
        if isinstance(current, (bool, int, float)) and not isinstance(current, np.generic):
            scalar = _scalar(result)
            if scalar is not None:
                self._buf = type(current)(scalar)
                return
        if isinstance(current, bytes):
            data = _as_bytes(result)
            if data is not None:
                self._buf = data
                return
        dtype = _ARRAY_TYPES.get(self.type)
        if dtype is not None and not isinstance(result, np.ndarray):
            result = np.asarray(result, dtype)
        self._buf = result

    def __repr__(self) -> str:
        return f"<Arg {self.type.name} size={self.size}>"


def _store_array(current: np.ndarray[Any, Any], result: Any) -> bool:
    """Copy `result` into `current` in place when it fits: by element, else by bytes."""
    if not (current.flags.writeable and current.flags.c_contiguous):
        return False
    src = np.asarray(result)
    flat = current.reshape(-1)
    if src.size == current.size and src.dtype.kind in "biuf" and current.dtype.kind in "biuf":
        flat[:] = src.reshape(-1).astype(current.dtype, copy=False)
        return True
    if src.nbytes == current.nbytes:
        flat.view(np.uint8)[:] = np.ascontiguousarray(src).reshape(-1).view(np.uint8)
        return True
    return False


def _scalar(value: Any) -> Any:
    """A number from a result: the value itself, or a one-element array's element."""
    if isinstance(value, (bool, int, float, np.generic)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(-1)[0].item()
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return _scalar(value[0])
    return None


def _as_bytes(value: Any) -> bytes | None:
    """A result's bytes as vAccel would write them (a list of numbers as vaccel-python
    packs one: int32 or float32 elements)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value).tobytes()
    if _list_type(value) is not None:
        return list_array(value).tobytes()
    return None
