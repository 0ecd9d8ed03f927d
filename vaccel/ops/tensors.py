"""Tensors of the model ops, written once for the TF, TFLite and Torch families.

Each family (`vaccel.ops.tf`, `vaccel.ops.tf.lite`, `vaccel.ops.torch`) has its own
`TensorType` numbering (vAccel's C values) and dims width; `Tensor` classes built by
`tensor_class` share one implementation of vaccel-python's surface. Plugins and the
wire see a tensor as a `RawTensor`: its type number, its dims and a NumPy array (of
the mapped dtype, or raw bytes for types without one), so tensors travel by the
protocol's zero-copy array path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..errors import BadArgumentError


class RawTensor(NamedTuple):
    """A tensor as plugins and the wire see it: type number, dims, data array."""

    type: int
    dims: tuple[int, ...]
    data: np.ndarray[Any, Any]


class TypeMapper:
    """Conversions between one family's TensorType and NumPy / C types."""

    def __init__(
        self,
        family: str,
        types: type[IntEnum],
        numpy_types: Mapping[int, str],
        c_types: Mapping[str, str],
    ) -> None:
        self.family = family
        self.types = types
        self._numpy = {int(k): np.dtype(v) for k, v in numpy_types.items()}
        self._c = dict(c_types)

    def type_to_numpy(self, ttype: int) -> np.dtype[Any]:
        """The NumPy dtype of TensorType `ttype`; ValueError for types with no mapping."""
        try:
            return self._numpy[int(ttype)]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{self.family} tensor type {self._name(ttype)} has no NumPy mapping; "
                f"supported: {self._supported()}"
            ) from None

    def type_from_numpy(self, dtype: Any) -> IntEnum:
        """The TensorType of a NumPy dtype; ValueError when the family has none for it."""
        try:
            wanted = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"{dtype!r} is not a NumPy dtype") from None
        for number, mapped in self._numpy.items():
            if mapped == wanted:
                return self.types(number)
        raise ValueError(
            f"NumPy dtype {wanted} has no {self.family} tensor type; supported: "
            + ", ".join(str(d) for d in self._numpy.values())
        )

    def type_to_c_type(self, tensor_type: int) -> str:
        """The C element type of `tensor_type` (as vAccel's headers name it); ValueError
        for types with no mapping."""
        return self._c[self.type_to_numpy(tensor_type).name]

    def type_to_c_size(self, tensor_type: int) -> int:
        """The size in bytes of one element of `tensor_type`; ValueError for types with
        no mapping."""
        return int(self.type_to_numpy(tensor_type).itemsize)

    def _supported(self) -> str:
        return ", ".join(self._name(t) for t in self._numpy)

    def mapped(self, data_type: int) -> bool:
        """Whether `data_type` has a NumPy mapping."""
        return int(data_type) in self._numpy

    def _name(self, data_type: int) -> str:
        try:
            return self.types(int(data_type)).name
        except (TypeError, ValueError):
            return repr(data_type)


C_TYPES = {
    "float16": "uint16_t",
    "float32": "float",
    "float64": "double",
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "uint8": "uint8_t",
    "uint16": "uint16_t",
    "uint32": "uint32_t",
    "uint64": "uint64_t",
    "bool": "bool",
}


class TensorBase:
    """One tensor: dims, a data type and its bytes (vaccel-python's `Tensor`)."""

    mapper: ClassVar[TypeMapper]
    #: The dtype vAccel stores this family's dims in (int64, or int32 for TFLite).
    dims_dtype: ClassVar[np.dtype[Any]] = np.dtype(np.int64)

    def __init__(self, dims: Sequence[int], data_type: Any, data: Sequence[Any]) -> None:
        dtype = self._numpy_type(data_type)
        self._set(dims, data_type, np.asarray(list(data), dtype=dtype))
        self._origin: Any = None

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_buffer(
        cls, dims: Sequence[int], data_type: Any, data: bytes | bytearray | memoryview
    ) -> TensorBase:
        """A tensor over `data` without copying it (the object is kept as given)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like; got {type(data).__name__}")
        tensor = cls.__new__(cls)
        raw = np.frombuffer(data, dtype=np.uint8)
        tensor._set(dims, data_type, raw, check_size=False)
        tensor._origin = data
        return tensor

    @classmethod
    def from_numpy(cls, data: np.ndarray[Any, Any]) -> TensorBase:
        """A tensor over a NumPy array (kept contiguous; its dtype gives the type)."""
        if not isinstance(data, np.ndarray):
            raise TypeError(f"expected a NumPy array; got {type(data).__name__}")
        data_type = cls.mapper.type_from_numpy(data.dtype)
        contiguous = np.ascontiguousarray(data)
        tensor = cls.__new__(cls)
        tensor._set(list(contiguous.shape), data_type, contiguous)
        tensor._origin = contiguous
        return tensor

    @classmethod
    def empty(cls) -> TensorBase:
        """A placeholder tensor with no dims and no data."""
        tensor = cls.__new__(cls)
        tensor._dims = []
        tensor._type = cls.mapper.types(next(iter(cls.mapper.types)))
        tensor._array = np.empty(0, np.uint8)
        tensor._origin = None
        return tensor

    @classmethod
    def from_raw(cls, raw: RawTensor) -> TensorBase:
        """The tensor a plugin or the agent returned."""
        tensor = cls.__new__(cls)
        tensor._set(list(raw.dims), raw.type, raw.data, check_size=False)
        tensor._origin = None
        return tensor

    def _set(
        self,
        dims: Sequence[int],
        data_type: Any,
        array: np.ndarray[Any, Any],
        check_size: bool = True,
    ) -> None:
        try:
            self._type = self.mapper.types(int(data_type))
        except ValueError:
            raise ValueError(f"{data_type!r} is not a {self.mapper.family} TensorType") from None
        dims_list = [int(d) for d in dims]
        if any(d < 0 for d in dims_list):
            raise ValueError(f"tensor dims must be non-negative; got {dims_list}")
        self._dims = dims_list
        self._array = array
        if check_size and array.size != math.prod(dims_list):
            raise ValueError(
                f"tensor of dims {dims_list} needs {math.prod(dims_list)} elements; "
                f"got {array.size}"
            )

    @classmethod
    def _numpy_type(cls, data_type: Any) -> np.dtype[Any]:
        return cls.mapper.type_to_numpy(int(data_type))

    # ------------------------------------------------------------------ accessors

    @property
    def dims(self) -> list[int]:
        """The tensor's dimensions."""
        return list(self._dims)

    @property
    def shape(self) -> list[int]:
        """The same as `dims`."""
        return list(self._dims)

    @property
    def data_type(self) -> IntEnum:
        """The element type (this family's TensorType)."""
        return self._type

    @property
    def size(self) -> int:
        """The data's size in bytes."""
        return int(self._array.nbytes)

    @property
    def data(self) -> list[Any]:
        """The elements as Python numbers (size // itemsize of them)."""
        values: list[Any] = self.as_numpy().reshape(-1).tolist()
        return values

    def as_bytelike(self) -> Any:
        """The object given to `from_buffer`, a typed memoryview for `from_numpy`, else bytes."""
        if self._origin is not None:
            return self._origin.data if isinstance(self._origin, np.ndarray) else self._origin
        return np.ascontiguousarray(self._array).reshape(-1).view(np.uint8).data

    def as_memoryview(self) -> memoryview:
        """A memoryview of the tensor's storage."""
        return memoryview(self.as_bytelike())

    def to_bytes(self) -> bytes:
        """A copy of the tensor's bytes."""
        return np.ascontiguousarray(self._array).tobytes()

    def as_numpy(self) -> np.ndarray[Any, Any]:
        """The array given to `from_numpy`, else a view of the data with the mapped dtype."""
        if isinstance(self._origin, np.ndarray):
            return self._origin
        dtype = self._numpy_type(self._type)
        raw = np.ascontiguousarray(self._array).reshape(-1).view(np.uint8)
        flat = raw[: raw.size // dtype.itemsize * dtype.itemsize].view(dtype)
        return flat.reshape(self._dims) if flat.size == math.prod(self._dims) else flat

    def to_raw(self) -> RawTensor:
        """The tensor as plugins and the wire see it."""
        if self.mapper.mapped(self._type):
            data = self.as_numpy()
        else:
            data = np.ascontiguousarray(self._array).reshape(-1).view(np.uint8)
        return RawTensor(int(self._type), tuple(self._dims), data)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._type.name} dims={self._dims}>"


def raw_tensor(value: Any, mapper: TypeMapper, name: str) -> RawTensor:
    """A tensor argument as plugins take it: from a Tensor, or as it came over the wire."""
    if isinstance(value, TensorBase):
        if value.mapper is not mapper:
            raise BadArgumentError(
                message=f"{name} is a {value.mapper.family} tensor; this op takes "
                f"{mapper.family} tensors"
            )
        return value.to_raw()
    if isinstance(value, (list, tuple)) and len(value) == 3:
        type_, dims, data = value
        if (
            isinstance(type_, int)
            and isinstance(dims, (list, tuple))
            and isinstance(data, np.ndarray)
        ):
            return _checked_wire_tensor(type_, tuple(dims), data, mapper, name)
    raise BadArgumentError(
        message=f"{name} must be a {mapper.family} Tensor; got {type(value).__name__}"
    )


def _checked_wire_tensor(
    type_: int, dims: tuple[Any, ...], data: np.ndarray[Any, Any], mapper: TypeMapper, name: str
) -> RawTensor:
    try:
        tensor_type = mapper.types(type_)
    except ValueError:
        raise BadArgumentError(
            message=f"{name}: {type_} is not a {mapper.family} TensorType"
        ) from None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise BadArgumentError(message=f"{name}: dims must be non-negative integers; got {dims}")
    if len(dims) > 32:
        raise BadArgumentError(message=f"{name}: {len(dims)} dims; at most 32")
    if mapper.mapped(tensor_type):
        want = mapper.type_to_numpy(tensor_type)
        if data.dtype != want or data.size != math.prod(dims):
            raise BadArgumentError(
                message=f"{name}: a {tensor_type.name} tensor of dims {list(dims)} needs "
                f"{math.prod(dims)} {want} elements; got {data.size} of {data.dtype}"
            )
        return RawTensor(int(tensor_type), dims, data.reshape(dims))
    return RawTensor(int(tensor_type), dims, data.reshape(-1).view(np.uint8))
