"""Values on the wire: msgpack, with arrays and large byte strings carried out of band.

A message's msgpack body holds plain values; a NumPy array or a byte string of
`INLINE_MAX` bytes or more is replaced by a reference (an ext type naming its index in
the message's buffer list, and for arrays the dtype and shape). The buffers themselves
travel after the body in DATA frames, so they are never copied into the msgpack body,
and the receiver decodes them with `np.frombuffer` over the one array it received into.
Small arrays travel inline (ext 3) to keep small calls to a single frame.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from .errors import ProtocolError
from .frames import data_layout
from .status import Status

EXT_ARRAY_REF = 1
EXT_BYTES_REF = 2
EXT_ARRAY_INLINE = 3
#: Arrays and byte strings under this size travel inline, in the message body ...
INLINE_MAX = 64 * 1024
#: ... until a message holds this many inline bytes: the rest go out of band.
INLINE_TOTAL = 256 * 1024
#: Array element kinds that may cross the wire (no objects, no structured or void types).
SAFE_KINDS = frozenset("biufc")
MAX_NDIM = 32

_PLAIN_TYPES = frozenset({int, float, str, bool, type(None)})
_INDEX = struct.Struct(">I")
#: Valid dtype strings seen so far (a bounded set: there are few numeric dtypes).
_DTYPES: dict[bytes, np.dtype[Any]] = {}


class EncodeError(TypeError):
    """A value that cannot be sent: it has no wire form, or it exceeds the peer's limits.

    `status` is what reports it (INVALID_ARGUMENT for a type, RESOURCE_EXHAUSTED for a size).
    """

    def __init__(self, message: str, status: Status = Status.INVALID_ARGUMENT) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _array_bytes(arr: np.ndarray[Any, Any]) -> memoryview:
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return memoryview(arr).cast("B") if arr.size else memoryview(b"")  # type: ignore[arg-type]


#: Array descriptors already built, by (dtype, shape): calls repeat the same arrays.
_DESCRIPTORS: dict[tuple[Any, tuple[int, ...]], bytes] = {}


def _describe(arr: np.ndarray[Any, Any]) -> bytes:
    """An array's dtype and shape: u8 n, n bytes of dtype.str, u8 ndim, ndim x u64 (BE)."""
    key = (arr.dtype, arr.shape)
    known = _DESCRIPTORS.get(key)
    if known is not None:
        return known
    text: bytes = arr.dtype.str.encode("ascii")
    made = (
        bytes((len(text),)) + text + bytes((arr.ndim,)) + struct.pack(f">{arr.ndim}Q", *arr.shape)
    )
    if len(_DESCRIPTORS) >= 1024:
        _DESCRIPTORS.clear()
    _DESCRIPTORS[key] = made
    return made


class _Prepared:
    """What `prepare` collects while it walks a value: out-of-band buffers, inline room."""

    __slots__ = ("bufs", "inline_left")

    def __init__(self) -> None:
        self.bufs: list[memoryview] = []
        self.inline_left = INLINE_TOTAL

    def inline(self, nbytes: int) -> bool:
        """Whether `nbytes` more go inline (small, and room left in the body)."""
        if nbytes < INLINE_MAX and nbytes <= self.inline_left:
            self.inline_left -= nbytes
            return True
        return False

    def refer(self, view: memoryview) -> bytes:
        """Carry `view` out of band; its index, packed for an ext payload."""
        self.bufs.append(view)
        return _INDEX.pack(len(self.bufs) - 1)


def _prepare_other(obj: Any, out: _Prepared, depth: int) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in SAFE_KINDS:
            raise EncodeError(f"arrays of dtype {obj.dtype} cannot be sent")
        if out.inline(obj.nbytes):  # one copy: descriptor and data joined into the payload
            return msgpack.ExtType(EXT_ARRAY_INLINE, b"".join((_describe(obj), _array_bytes(obj))))
        return msgpack.ExtType(EXT_ARRAY_REF, out.refer(_array_bytes(obj)) + _describe(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        view = memoryview(obj).cast("B") if isinstance(obj, memoryview) else obj
        if out.inline(len(view)):
            return bytes(view)
        return msgpack.ExtType(EXT_BYTES_REF, out.refer(memoryview(view)))
    if isinstance(obj, dict):
        return {k: _prepare(v, out, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_prepare(x, out, depth + 1) for x in obj]
    if isinstance(obj, (int, float, str)):  # subclasses: bool, IntEnum, ...
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise EncodeError(f"values of type {type(obj).__name__} cannot be sent")


def _prepare(obj: Any, out: _Prepared, depth: int) -> Any:
    kind = type(obj)
    if kind in _PLAIN_TYPES:
        return obj
    if depth > MAX_NDIM:
        raise EncodeError("value nests too deeply to send")
    if kind is list or kind is tuple:
        return [_prepare(x, out, depth + 1) for x in obj]
    return _prepare_other(obj, out, depth)


def prepare(value: Any) -> tuple[Any, list[memoryview]]:
    """`value` with arrays and large byte strings replaced by references, and those buffers."""
    out = _Prepared()
    return _prepare(value, out, 0), out.bufs


def _dtype(text: bytes) -> np.dtype[Any]:
    dtype = _DTYPES.get(text)
    if dtype is not None:
        return dtype
    try:
        dtype = np.dtype(text.decode("ascii"))
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"dtype {text!r} is not a dtype: {exc}") from None
    if dtype.kind not in SAFE_KINDS or dtype.itemsize == 0 or dtype.str.encode() != text:
        raise ValueError(f"dtype {text!r} is not allowed")
    _DTYPES[text] = dtype
    return dtype


def _read_descriptor(payload: bytes, pos: int) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """Parse what `_describe` wrote at `pos`; returns dtype, shape and the end position."""
    n = payload[pos]
    dtype = _dtype(payload[pos + 1 : pos + 1 + n])
    pos += 1 + n
    ndim = payload[pos]
    if ndim > MAX_NDIM:
        raise ValueError(f"arrays of {ndim} dimensions are not allowed")
    shape = struct.unpack_from(f">{ndim}Q", payload, pos + 1)
    return dtype, shape, pos + 1 + 8 * ndim


#: Where a message's data is received: `allocate(nbytes)` gives a uint8 array of that size
#: (a connection's owner may hand out reused, warm buffers).
Allocate = Callable[[int], "np.ndarray[Any, Any]"]


def _fresh(nbytes: int) -> np.ndarray[Any, Any]:
    return np.empty(nbytes, dtype=np.uint8)


class MessageData:
    """The out-of-band bytes of one message: one array, received into, then viewed."""

    def __init__(self, sizes: Sequence[int], allocate: Allocate | None = None) -> None:
        self.sizes = list(sizes)
        self.offsets, self.total = data_layout(self.sizes)
        self.array = (allocate or _fresh)(self.total)
        self.filled = 0

    def view(self, index: Any) -> np.ndarray[Any, Any]:
        if not isinstance(index, int) or not 0 <= index < len(self.sizes):
            raise ValueError(f"buffer reference {index!r} is out of range")
        start = self.offsets[index]
        return self.array[start : start + self.sizes[index]]


class _Ref:
    """A reference to buffer `index`, resolved by `bind` once the buffer sizes are known."""

    __slots__ = ("dtype", "index", "shape")
    #: How many references were ever decoded: lets `decode_counting` tell, for free,
    #: whether a body holds any (most small calls hold none and skip `bind`).
    made = 0

    def __init__(self, index: int, dtype: np.dtype[Any] | None, shape: tuple[int, ...]) -> None:
        self.index, self.dtype, self.shape = index, dtype, shape
        _Ref.made += 1


class _LazyBytes:
    """A byte-string reference, turned into bytes once the data has arrived."""

    __slots__ = ("region",)

    def __init__(self, region: np.ndarray[Any, Any]) -> None:
        self.region = region


def _ext_hook(code: int, payload: bytes) -> Any:
    try:
        if code == EXT_ARRAY_INLINE:
            dtype, shape, pos = _read_descriptor(payload, 0)
            if math.prod(shape) * dtype.itemsize != len(payload) - pos:
                raise ValueError("inline array size does not match its shape")
            # One copy: the array must outlive (and be writable apart from) the body.
            return np.frombuffer(payload, dtype=dtype, offset=pos).reshape(shape).copy()
        if code == EXT_ARRAY_REF:
            (index,) = _INDEX.unpack_from(payload)
            dtype, shape, pos = _read_descriptor(payload, _INDEX.size)
            if pos != len(payload):
                raise ValueError("array reference has trailing bytes")
            return _Ref(index, dtype, shape)
        if code == EXT_BYTES_REF:
            if len(payload) != _INDEX.size:
                raise ValueError("byte-string reference must be 4 bytes")
            return _Ref(_INDEX.unpack(payload)[0], None, ())
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated ext {code}: {exc}") from None
    raise ValueError(f"unknown ext type {code}")


class _TooLarge(ValueError):
    """A body with more values than the decoder accepts."""


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of lists and maps in `value`, counted up to `limit` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        if isinstance(obj, list):
            stack.extend((x, depth + 1) for x in obj if isinstance(x, (list, dict)))
        elif isinstance(obj, dict):
            stack.extend((x, depth + 1) for x in obj.values() if isinstance(x, (list, dict)))
    return deepest


#: Bodies up to this size are decoded with no counting hook: they cannot hold more values
#: than bytes, and the recursive walks over decoded values check their depth themselves.
SMALL_BODY = 16384


def _undecodable(exc: Exception) -> ProtocolError:
    if isinstance(exc, _TooLarge) or (isinstance(exc, ValueError) and "exceeds max_" in str(exc)):
        return ProtocolError(  # our count, or msgpack's own length limits
            f"message body too large to decode: {exc}", Status.RESOURCE_EXHAUSTED, fatal=False
        )
    return ProtocolError(  # msgpack raises many types; all mean "not a valid body"
        f"message body is not valid msgpack: {type(exc).__name__}: {exc}", fatal=False
    )


def decode_counting(
    body: bytes | memoryview, max_elements: int = 16384, max_depth: int = 32
) -> tuple[Any, bool]:
    """Decode a msgpack body within limits, and say whether it holds buffer references.

    At most `max_elements` values in lists and maps (all levels together, a map entry
    counting as two) and `max_depth` levels of nesting: decoding a hostile body costs
    bounded time and no recursion.
    """
    before = _Ref.made
    if len(body) <= SMALL_BODY and max_elements >= SMALL_BODY and max_depth >= MAX_NDIM:
        # the small-call fast path: no more values than bytes; depth checked by the walks
        try:
            value = msgpack.unpackb(body, raw=False, ext_hook=_ext_hook, strict_map_key=False)
        except Exception as exc:
            raise _undecodable(exc) from None
        return value, _Ref.made != before
    count = [0, 0]  # values in lists and maps, containers

    def counted(items: list[Any]) -> list[Any]:
        count[0] += len(items)
        count[1] += 1
        if count[0] > max_elements:
            raise _TooLarge(f"the body holds more than {max_elements} values")
        return items

    def counted_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        count[0] += 2 * len(pairs)
        count[1] += 1
        if count[0] > max_elements:
            raise _TooLarge(f"the body holds more than {max_elements} values")
        return dict(pairs)

    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            ext_hook=_ext_hook,
            list_hook=counted,
            object_pairs_hook=counted_map,
            strict_map_key=False,
            max_array_len=max_elements,
            max_map_len=max_elements // 4,
        )
    except Exception as exc:
        raise _undecodable(exc) from None
    # Nesting deeper than max_depth needs more than max_depth lists: most bodies have a few.
    if count[1] > max_depth and _depth(value, max_depth) > max_depth:
        raise ProtocolError(f"message body nests deeper than {max_depth} levels", fatal=False)
    return value, _Ref.made != before


def _bind(obj: Any, data: MessageData | None, seen: list[bool], depth: int = 0) -> Any:
    if isinstance(obj, _Ref):
        if data is None:
            raise ValueError(f"reference to buffer {obj.index} in a message with no buffers")
        region = data.view(obj.index)
        if obj.dtype is None:
            seen[0] = True
            return _LazyBytes(region)
        if math.prod(obj.shape) * obj.dtype.itemsize != region.nbytes:
            raise ValueError(
                f"array in buffer {obj.index}: shape {obj.shape} of {obj.dtype} "
                f"does not match its {region.nbytes} bytes"
            )
        return region.view(obj.dtype).reshape(obj.shape)
    if isinstance(obj, (list, dict)) and depth > MAX_NDIM:
        raise ValueError(f"the body nests deeper than {MAX_NDIM} levels")
    if isinstance(obj, list):
        return [_bind(x, data, seen, depth + 1) for x in obj]
    if isinstance(obj, dict):
        return {k: _bind(v, data, seen, depth + 1) for k, v in obj.items()}
    return obj


def bind(value: Any, data: MessageData | None) -> tuple[Any, bool]:
    """Replace references with views of `data`; says whether byte strings await `finish`."""
    seen = [False]
    try:
        return _bind(value, data, seen), seen[0]
    except ValueError as exc:
        raise ProtocolError(f"bad buffer reference: {exc}", fatal=False) from None


def _finish(obj: Any) -> Any:
    if isinstance(obj, _LazyBytes):
        return obj.region.tobytes()
    if isinstance(obj, list):
        return [_finish(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _finish(v) for k, v in obj.items()}
    return obj


def finish(value: Any) -> Any:
    """Turn byte-string references into bytes once a message's data is complete."""
    return _finish(value)
