"""`Arg`: one argument of exec/genop, a value with a type, as in vaccel-python."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .enums import ArgType

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


class Arg:
    """An argument of `exec`, `exec_with_resource` or `genop`: a value and its `ArgType`.

    `Arg(data, type_=ArgType.RAW, custom_type_id=0)`. `buf` is the value; an op that
    writes into a write argument (exec, genop) updates it, in place when the value is
    a writable buffer of the right size (a bytearray or a NumPy array), so a reference
    the caller kept sees the result too.

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

        A list of ints is an int32 array, a list of floats a float32 array, bytes or a
        bytearray a buffer, a str or a path a char array, a NumPy array raw data.
        """
        if isinstance(value, Arg):
            return value
        if isinstance(value, (list, tuple)) and value:
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return cls(np.asarray(value, np.int32), ArgType.INT32_ARRAY)
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                return cls(np.asarray(value, np.float32), ArgType.FLOAT32_ARRAY)
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
        return 8

    c_size = size

    def store(self, result: Any) -> None:
        """Write an op's result into this argument (in place when the buffer allows)."""
        current = self._buf
        if isinstance(current, np.ndarray) and current.flags.writeable:
            src = np.asarray(result)
            if src.nbytes == current.nbytes:
                current.reshape(-1).view(np.uint8)[:] = (
                    np.ascontiguousarray(src).reshape(-1).view(np.uint8)
                )
                return
        elif isinstance(current, bytearray):
            data = _as_bytes(result)
            if data is not None and len(data) == len(current):
                current[:] = data
                return
        dtype = _ARRAY_TYPES.get(self.type)
        if dtype is not None and not isinstance(result, np.ndarray):
            result = np.asarray(result, dtype)
        self._buf = result

    def __repr__(self) -> str:
        return f"<Arg {self.type.name} size={self.size}>"


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value).tobytes()
    return None
