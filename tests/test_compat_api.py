"""Compatibility with vaccel-python 0.3 (vAccel 0.8): the API surface, checked by itself.

Written from docs/reference/vaccel-api.md (section 1: the API table; section 3: the TF,
TFLite and Torch API): every public name, every signature (parameter names, order,
kinds and vaccel-python's defaults), every enum member and its C value, the Tensor
constructors and accessors of the three families, Node, Buffer, Status, Config, Arg and
the error module. Running ops is tests/test_compat_ops.py's; a whole application,
tests/test_compat_app.py's.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vaccel
from vaccel import (
    Arg,
    ArgType,
    AsyncSession,
    Config,
    OpType,
    PluginType,
    Resource,
    ResourceType,
    Runtime,
    Session,
    VaccelError,
)
from vaccel.error import FFIError, NullPointerError, ptr_or_raise
from vaccel.errors import BadArgumentError, NotFoundError, PermissionDeniedError
from vaccel.ops import tf
from vaccel.ops import torch as vtorch
from vaccel.ops.tf import lite

try:
    import torch
except ImportError:  # the torch parts of the API need it; the rest does not
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
KW = inspect.Parameter.KEYWORD_ONLY
EMPTY = inspect.Parameter.empty


# ---------------------------------------------------------------------- names


VACCEL_PYTHON_ALL = {
    "Arg",
    "ArgType",
    "Config",
    "OpType",
    "PluginType",
    "Resource",
    "ResourceType",
    "Session",
    "__version__",
    "bootstrap",
    "cleanup",
}
#: Names pyvaccel adds at the top level (section 1; docs/compatibility.md).
PYVACCEL_EXTRAS = {"AsyncSession", "BaseSession", "Runtime", "VaccelError"}

#: module -> the names vaccel-python's module exports.
MODULE_NAMES = {
    "vaccel.error": {"FFIError", "NullPointerError", "ptr_or_raise"},
    "vaccel.op": {"OpType"},
    "vaccel.vaccel": {"bootstrap", "cleanup"},
    "vaccel.session": {"BaseSession", "Session"},
    "vaccel.arg": {"Arg"},
    "vaccel.config": {"Config"},
    "vaccel.resource": {"Resource"},
    "vaccel.ops.tf": {"Buffer", "Node", "Status", "TFMixin", "Tensor", "TensorType"},
    "vaccel.ops.tf.lite": {"TFLiteMixin", "Tensor", "TensorType"},
    "vaccel.ops.torch": {"Buffer", "Tensor", "TensorType", "TorchMixin"},
    "vaccel.ops.blas": {"BlasMixin"},
    "vaccel.ops.exec": {"ExecMixin"},
    "vaccel.ops.fpga": {"FpgaMixin"},
    "vaccel.ops.genop": {"GenopMixin"},
    "vaccel.ops.image": {"ImageMixin"},
    "vaccel.ops.minmax": {"MinmaxMixin"},
    "vaccel.ops.noop": {"NoopMixin"},
}
#: Modules whose `__all__` vaccel-python declares (pyvaccel may list more).
DECLARES_ALL = {"vaccel.error", "vaccel.ops.tf", "vaccel.ops.tf.lite", "vaccel.ops.torch"}


def test_top_level_names_are_vaccel_pythons_plus_documented_extras() -> None:
    assert set(vaccel.__all__) == VACCEL_PYTHON_ALL | PYVACCEL_EXTRAS
    for name in vaccel.__all__:
        assert hasattr(vaccel, name), name
    assert isinstance(vaccel.__version__, str) and vaccel.__version__


@pytest.mark.parametrize("module", sorted(MODULE_NAMES))
def test_every_module_of_vaccel_python_exists_with_its_names(module: str) -> None:
    mod = importlib.import_module(module)
    for name in MODULE_NAMES[module]:
        assert getattr(mod, name, None) is not None, f"{module}.{name}"
    if module in DECLARES_ALL:
        assert MODULE_NAMES[module] <= set(mod.__all__)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.__all__ names {name}, which is missing"


def test_the_same_object_under_every_name() -> None:
    from vaccel import arg, config, op, resource, session
    from vaccel import vaccel as vaccel_module

    assert op.OpType is OpType and arg.Arg is Arg and config.Config is Config
    assert resource.Resource is Resource and session.Session is Session
    assert session.BaseSession is vaccel.BaseSession
    assert vaccel_module.bootstrap is vaccel.bootstrap
    assert vaccel_module.cleanup is vaccel.cleanup


@pytest.mark.parametrize("cls", [Session, AsyncSession])
def test_sessions_have_every_mixin_and_the_shared_base(cls: type) -> None:
    from vaccel.ops.blas import BlasMixin
    from vaccel.ops.exec import ExecMixin
    from vaccel.ops.fpga import FpgaMixin
    from vaccel.ops.genop import GenopMixin
    from vaccel.ops.image import ImageMixin
    from vaccel.ops.minmax import MinmaxMixin
    from vaccel.ops.noop import NoopMixin
    from vaccel.session import BaseSession

    for mixin in (
        BaseSession,
        BlasMixin,
        ExecMixin,
        FpgaMixin,
        GenopMixin,
        ImageMixin,
        MinmaxMixin,
        NoopMixin,
        tf.TFMixin,
        lite.TFLiteMixin,
        vtorch.TorchMixin,
    ):
        assert issubclass(cls, mixin), mixin.__name__


# ---------------------------------------------------------------------- enums


OP_TYPE = {
    "NOOP": 0,
    "EXEC": 1,
    "EXEC_WITH_RESOURCE": 2,
    "IMAGE_CLASSIFY": 3,
    "IMAGE_DETECT": 4,
    "IMAGE_SEGMENT": 5,
    "IMAGE_POSE": 6,
    "IMAGE_DEPTH": 7,
    "TF_MODEL_LOAD": 8,
    "TF_MODEL_UNLOAD": 9,
    "TF_MODEL_RUN": 10,
    "TFLITE_MODEL_LOAD": 11,
    "TFLITE_MODEL_UNLOAD": 12,
    "TFLITE_MODEL_RUN": 13,
    "TORCH_MODEL_LOAD": 14,
    "TORCH_MODEL_RUN": 15,
    "TORCH_SGEMM": 16,
    "BLAS_SGEMM": 17,
    "FPGA_ARRAYCOPY": 18,
    "FPGA_MMULT": 19,
    "FPGA_PARALLEL": 20,
    "FPGA_VECTORADD": 21,
    "MINMAX": 22,
    "OPENCV": 23,
    "MAX": 24,
}
ARG_TYPE = {
    "RAW": 0,
    "INT8": 1,
    "INT8_ARRAY": 2,
    "INT16": 3,
    "INT16_ARRAY": 4,
    "INT32": 5,
    "INT32_ARRAY": 6,
    "INT64": 7,
    "INT64_ARRAY": 8,
    "UINT8": 9,
    "UINT8_ARRAY": 10,
    "UINT16": 11,
    "UINT16_ARRAY": 12,
    "UINT32": 13,
    "UINT32_ARRAY": 14,
    "UINT64": 15,
    "UINT64_ARRAY": 16,
    "FLOAT32": 17,
    "FLOAT32_ARRAY": 18,
    "FLOAT64": 19,
    "FLOAT64_ARRAY": 20,
    "BOOL": 21,
    "BOOL_ARRAY": 22,
    "CHAR": 23,
    "CHAR_ARRAY": 24,
    "UCHAR": 25,
    "UCHAR_ARRAY": 26,
    "STRING": 27,
    "BUFFER": 28,
    "CUSTOM": 29,
    "MAX": 30,
}
PLUGIN_TYPE = {
    "CPU": 0x1,
    "GPU": 0x2,
    "FPGA": 0x4,
    "SOFTWARE": 0x8,
    "TENSORFLOW": 0x10,
    "TORCH": 0x20,
    "JETSON": 0x40,
    "GENERIC": 0x80,
    "DEBUG": 0x100,
    "REMOTE": 0x4000,
    "ALL": 0xFFFF,
    "MAX": 0x10000,
}
RESOURCE_TYPE = {"LIB": 0, "DATA": 1, "MODEL": 2, "MAX": 3}
TF_TENSOR_TYPE = {
    "FLOAT": 1,
    "DOUBLE": 2,
    "INT32": 3,
    "UINT8": 4,
    "INT16": 5,
    "INT8": 6,
    "STRING": 7,
    "COMPLEX": 8,
    "COMPLEX64": 8,
    "INT64": 9,
    "BOOL": 10,
    "QINT8": 11,
    "QUINT8": 12,
    "QINT32": 13,
    "BFLOAT16": 14,
    "QINT16": 15,
    "QUINT16": 16,
    "UINT16": 17,
    "COMPLEX128": 18,
    "HALF": 19,
    "RESOURCE": 20,
    "VARIANT": 21,
    "UINT32": 22,
    "UINT64": 23,
}
TFLITE_TENSOR_TYPE = {
    "NOTYPE": 0,
    "FLOAT32": 1,
    "INT32": 2,
    "UINT8": 3,
    "INT64": 4,
    "STRING": 5,
    "BOOL": 6,
    "INT16": 7,
    "COMPLEX64": 8,
    "INT8": 9,
    "FLOAT16": 10,
    "FLOAT64": 11,
    "COMPLEX128": 12,
    "UINT64": 13,
    "RESOURCE": 14,
    "VARIANT": 15,
    "UINT32": 16,
    "UINT16": 17,
    "INT4": 18,
}
TORCH_TENSOR_TYPE = {
    "BYTE": 1,
    "CHAR": 2,
    "SHORT": 3,
    "INT": 4,
    "LONG": 5,
    "HALF": 6,
    "FLOAT": 7,
}

ENUMS: list[tuple[str, type[IntEnum], dict[str, int]]] = [
    ("OpType", OpType, OP_TYPE),
    ("ArgType", ArgType, ARG_TYPE),
    ("PluginType", PluginType, PLUGIN_TYPE),
    ("ResourceType", ResourceType, RESOURCE_TYPE),
    ("tf.TensorType", tf.TensorType, TF_TENSOR_TYPE),
    ("tflite.TensorType", lite.TensorType, TFLITE_TENSOR_TYPE),
    ("torch.TensorType", vtorch.TensorType, TORCH_TENSOR_TYPE),
]


@pytest.mark.parametrize(("label", "enum", "table"), ENUMS, ids=[e[0] for e in ENUMS])
def test_enum_members_and_values_are_vaccel_08s(
    label: str, enum: type[IntEnum], table: dict[str, int]
) -> None:
    members = dict(enum.__members__)  # aliases included (tf COMPLEX64 = COMPLEX)
    assert {name: int(m) for name, m in members.items()} == table
    for name, value in table.items():
        assert int(getattr(enum, name)) == value
        assert enum(value) is getattr(enum, name) or enum(value).value == value


def test_enum_kinds() -> None:
    assert issubclass(PluginType, __import__("enum").IntFlag)
    assert PluginType.CPU | PluginType.FPGA == 0x5
    assert PluginType(0x4000) is PluginType.REMOTE
    for enum in (OpType, ArgType, ResourceType, tf.TensorType, lite.TensorType):
        assert issubclass(enum, IntEnum)
    assert tf.TensorType.COMPLEX64 is tf.TensorType.COMPLEX  # an alias, as in the C header


# ---------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class P:
    """One of vaccel-python's parameters: name, kind, default (EMPTY: none)."""

    name: str
    default: Any = EMPTY
    kind: Any = POS


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())
    return [p for p in params if p.name not in ("self", "cls")]


def assert_signature(fn: Callable[..., Any], expected: list[P]) -> None:
    """vaccel-python's parameters come first, in order, with its names, kinds and
    defaults; pyvaccel may add a default where vaccel-python has none (every old call
    still works), and optional parameters after them (documented extensions)."""
    ours = _params(fn)
    label = getattr(fn, "__qualname__", repr(fn))
    assert len(ours) >= len(expected), f"{label}: {inspect.signature(fn)}"
    for got, want in zip(ours, expected, strict=False):
        assert got.name == want.name, f"{label}: parameter {got.name!r}, expected {want.name!r}"
        assert got.kind == want.kind, f"{label}({got.name}): kind {got.kind}, expected {want.kind}"
        if want.default is not EMPTY:
            assert got.default is not EMPTY, f"{label}({got.name}) lost its default"
            assert type(got.default) is type(want.default) and got.default == want.default, (
                f"{label}({got.name}) default {got.default!r}, expected {want.default!r}"
            )
    for extra in ours[len(expected) :]:
        assert extra.default is not EMPTY or extra.kind == inspect.Parameter.VAR_KEYWORD, (
            f"{label}: extra parameter {extra.name!r} must be optional"
        )


RES = [P("resource")]
SESSION_METHODS: dict[str, list[P]] = {
    "noop": [],
    "sgemm": [
        P("m"),
        P("n"),
        P("k"),
        P("alpha"),
        P("a"),
        P("lda"),
        P("b"),
        P("ldb"),
        P("beta"),
        P("ldc"),
    ],
    "classify": [P("image")],
    "detect": [P("image")],
    "segment": [P("image")],
    "pose": [P("image")],
    "depth": [P("image")],
    "exec": [P("library"), P("symbol"), P("arg_read", None), P("arg_write", None)],
    "exec_with_resource": [P("resource"), P("symbol"), P("arg_read", None), P("arg_write", None)],
    "genop": [P("arg_read"), P("arg_write")],
    "minmax": [P("indata"), P("ndata"), P("low_threshold"), P("high_threshold")],
    "fpga_arraycopy": [P("a")],
    "fpga_mmult": [P("a"), P("b")],
    "fpga_parallel": [P("a"), P("b")],
    "fpga_vadd": [P("a"), P("b")],
    "tf_model_load": RES,
    "tf_model_unload": RES,
    "tf_model_run": [
        P("resource"),
        P("in_nodes"),
        P("in_tensors"),
        P("out_nodes"),
        P("run_options", None),
    ],
    "tflite_model_load": RES,
    "tflite_model_unload": RES,
    "tflite_model_run": [P("resource"), P("in_tensors"), P("nr_out_tensors", 1)],
    "torch_model_load": RES,
    "torch_model_run": [
        P("resource"),
        P("in_tensors"),
        P("nr_out_tensors", 1),
        P("run_options", None),
    ],
    "has_resource": RES,
}


@pytest.mark.parametrize("cls", [Session, AsyncSession])
@pytest.mark.parametrize("method", sorted(SESSION_METHODS))
def test_session_method_signatures(cls: type, method: str) -> None:
    assert_signature(getattr(cls, method), SESSION_METHODS[method])


def test_no_torch_model_unload() -> None:
    # vAccel 0.8 has none; an application cannot have called it.
    assert not hasattr(Session, "torch_model_unload")


TENSOR_FAMILIES = [tf, lite, vtorch]
FAMILY_IDS = ["tf", "tflite", "torch"]


def _signatures() -> Iterator[tuple[str, Callable[..., Any], list[P]]]:
    yield "Session", Session, [P("flags", 0)]
    yield "AsyncSession", AsyncSession, [P("flags", 0)]
    yield (
        "Config",
        Config,
        [
            P("plugins", "libvaccel-noop.so"),
            P("log_level", 1),
            P("log_file", None),
            P("profiling_enabled", False, KW),
            P("version_ignore", False, KW),
        ],
    )
    yield "Arg", Arg, [P("data"), P("type_", ArgType.RAW), P("custom_type_id", 0)]
    yield "Resource", Resource, [P("paths"), P("type_")]
    yield "Resource.from_buffer", Resource.from_buffer, [P("data"), P("type_")]
    yield "Resource.from_numpy", Resource.from_numpy, [P("data")]
    for method in ("register", "unregister", "sync"):
        yield f"Resource.{method}", getattr(Resource, method), [P("session")]
    yield "bootstrap", vaccel.bootstrap, [P("config", None)]
    yield "cleanup", vaccel.cleanup, []
    yield "FFIError", FFIError, [P("error_code"), P("message")]
    yield "NullPointerError", NullPointerError, [P("context")]
    yield "ptr_or_raise", ptr_or_raise, [P("ptr"), P("context", "pointer")]
    yield "tf.Node", tf.Node, [P("name"), P("id_")]
    yield "tf.Status", tf.Status, [P("error_code", 0), P("message", "")]
    yield "tf.Buffer", tf.Buffer, [P("data")]
    yield "torch.Buffer", vtorch.Buffer, [P("data")]
    for fam, label in zip(TENSOR_FAMILIES, FAMILY_IDS, strict=True):
        t = fam.Tensor
        yield f"{label}.Tensor", t, [P("dims"), P("data_type"), P("data")]
        yield f"{label}.Tensor.from_buffer", t.from_buffer, [P("dims"), P("data_type"), P("data")]
        yield f"{label}.Tensor.from_numpy", t.from_numpy, [P("data")]
        yield f"{label}.Tensor.empty", t.empty, []
        for method in ("as_bytelike", "as_memoryview", "to_bytes", "as_numpy"):
            yield f"{label}.Tensor.{method}", getattr(t, method), []
        m = fam.TensorTypeMapper
        yield f"{label}.type_to_c_type", m.type_to_c_type, [P("tensor_type")]
        yield f"{label}.type_to_c_size", m.type_to_c_size, [P("tensor_type")]
        yield f"{label}.type_from_numpy", m.type_from_numpy, [P("dtype")]
        yield f"{label}.type_to_numpy", m.type_to_numpy, [P("ttype")]
    yield "torch.Tensor.from_torch", vtorch.Tensor.from_torch, [P("data")]
    yield "torch.Tensor.as_torch", vtorch.Tensor.as_torch, []
    yield "torch.type_from_torch", vtorch.TensorTypeMapper.type_from_torch, [P("dtype")]
    yield "torch.type_to_torch", vtorch.TensorTypeMapper.type_to_torch, [P("ttype")]


SIGNATURES = list(_signatures())


@pytest.mark.parametrize(("label", "fn", "expected"), SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_signatures(label: str, fn: Callable[..., Any], expected: list[P]) -> None:
    assert_signature(fn, expected)


def test_extra_parameters_are_the_documented_ones() -> None:
    """pyvaccel's additions, all optional: sgemm's `c`, Session's keyword `runtime`,
    Resource's keyword `blobs`/`names`, from_buffer's `name`, from_numpy's `type_`, and
    Config's keyword-only settings (docs/compatibility.md)."""
    extras = {
        "sgemm": ["c"],
        "Session": ["runtime"],
        "Resource": ["blobs", "names"],
        "Resource.from_buffer": ["name"],
        "Resource.from_numpy": ["type_"],
        "Config": ["rpc_address", "agent_endpoint", "exec_allow", "rpc_timeout"],
    }
    got = {
        "sgemm": [p.name for p in _params(Session.sgemm)][10:],
        "Session": [p.name for p in _params(Session)][1:],
        "Resource": [p.name for p in _params(Resource)][2:],
        "Resource.from_buffer": [p.name for p in _params(Resource.from_buffer)][2:],
        "Resource.from_numpy": [p.name for p in _params(Resource.from_numpy)][1:],
        "Config": [p.name for p in _params(Config)][5:9],
    }
    assert got == extras


# ---------------------------------------------------------------------- errors


def test_ffierror_is_vaccel_pythons() -> None:
    e = FFIError(errno.ENOENT, "no such model")
    assert isinstance(e, RuntimeError)
    assert (e.code, e.message) == (errno.ENOENT, "no such model")
    assert str(e) == "[errno 2] ENOENT: no such model"
    with pytest.raises(FFIError) as info:
        raise FFIError(errno.EPERM, "x")
    assert info.value.code == errno.EPERM


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (VaccelError, errno.EIO),
        (BadArgumentError, errno.EINVAL),
        (NotFoundError, errno.ENOENT),
        (PermissionDeniedError, errno.EPERM),
    ],
)
def test_pyvaccel_errors_are_ffierrors(cls: type[VaccelError], code: int) -> None:
    e = cls(message="what went wrong")
    assert isinstance(e, FFIError) and isinstance(e, RuntimeError)
    assert e.code == code and e.message == "what went wrong"
    # vaccel-python's call form works too: (code, message)
    e2 = cls(errno.EBUSY, "busy")
    assert (e2.code, e2.message) == (errno.EBUSY, "busy")


def test_null_pointer_error_and_ptr_or_raise() -> None:
    e = NullPointerError("Tensor._c_obj")
    assert isinstance(e, RuntimeError)
    assert str(e) == "Unexpected NULL pointer encountered in Tensor._c_obj"
    sentinel = object()
    assert ptr_or_raise(sentinel) is sentinel
    with pytest.raises(NullPointerError, match="in pointer$"):
        ptr_or_raise(None)
    with pytest.raises(NullPointerError, match="in my.ptr$"):
        ptr_or_raise(None, context="my.ptr")


# ---------------------------------------------------------------------- Config


def test_config_defaults_and_fields() -> None:
    c = Config()
    assert (c.plugins, c.log_level, c.log_file) == ("libvaccel-noop.so", 1, None)
    assert (c.profiling_enabled, c.version_ignore) == (False, False)
    c = Config("noop:numpy", 4, "/tmp/vaccel.log", profiling_enabled=True, version_ignore=True)
    assert (c.plugins, c.log_level, c.log_file) == ("noop:numpy", 4, "/tmp/vaccel.log")
    assert c.profiling_enabled is True and c.version_ignore is True
    with pytest.raises(TypeError):
        Config("noop", 1, None, True)  # type: ignore[misc]  # keyword-only, as there


def test_config_plugins_is_a_colon_joined_str() -> None:
    assert Config(plugins=["noop", "numpy"]).plugins == "noop:numpy"  # type: ignore[arg-type]
    assert Config(plugins=("libvaccel-noop.so",)).plugins == "libvaccel-noop.so"  # type: ignore[arg-type]
    assert isinstance(Config("a:b").plugins, str)
    assert Config("noop:numpy").plugin_list == ["noop", "numpy"]


def test_config_repr_shows_vaccel_pythons_fields_and_evaluates_back() -> None:
    c = Config("noop", 4, None, profiling_enabled=True)
    text = repr(c)
    assert text == (
        "Config(plugins='noop', log_level=4, log_file=None, profiling_enabled=True, "
        "version_ignore=False)"
    )
    back = eval(text, {"Config": Config})
    assert back == c


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"VACCEL_PLUGINS": "noop:numpy"}, "plugins", "noop:numpy"),
        ({"VACCEL_BACKENDS": "noop"}, "plugins", "noop"),
        ({}, "plugins", ""),  # vAccel 0.8: no VACCEL_PLUGINS, no plugin
        ({"VACCEL_LOG_LEVEL": "4"}, "log_level", 4),
        ({"VACCEL_DEBUG_LEVEL": "3"}, "log_level", 3),
        ({}, "log_level", 1),
        ({"VACCEL_LOG_FILE": "/tmp/x.log"}, "log_file", "/tmp/x.log"),
        ({"VACCEL_PROFILING_ENABLED": "1"}, "profiling_enabled", True),
        ({"VACCEL_PROFILING_ENABLED": "2"}, "profiling_enabled", True),
        ({"VACCEL_PROFILING_ENABLED": "0"}, "profiling_enabled", False),
        ({}, "profiling_enabled", False),
        ({"VACCEL_VERSION_IGNORE": "1"}, "version_ignore", True),
        ({"VACCEL_IGNORE_VERSION": "1"}, "version_ignore", True),
        ({}, "version_ignore", False),
    ],
)
def test_config_from_vaccel_08s_environment(env: dict[str, str], field: str, value: Any) -> None:
    assert getattr(Config.from_env(env), field) == value


def test_bootstrap_with_the_default_config_loads_noop() -> None:
    """vaccel-python: `bootstrap(Config())` loads libvaccel-noop.so; pyvaccel returns the
    Runtime (vaccel-python: None), and Session() then uses it."""
    try:
        runtime = vaccel.bootstrap(Config(log_level=0))
        assert isinstance(runtime, Runtime)
        assert [p.name for p in runtime.plugins] == ["noop"]
        with Session() as s:
            assert s.runtime is runtime
            assert s.noop() is None
            assert s.fpga_mmult([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == [float(np.float32(9.1))] * 3
    finally:
        vaccel.cleanup()
    vaccel.cleanup()  # twice is fine


# ---------------------------------------------------------------------- Arg


def test_arg_constructor_and_accessors() -> None:
    a = Arg(b"data")
    assert a.buf == b"data" and a.type is ArgType.RAW and a.custom_type_id == 0
    b = Arg(7, type_=ArgType.INT32, custom_type_id=3)
    assert (b.buf, b.type, b.custom_type_id) == (7, ArgType.INT32, 3)
    c = Arg([1, 2], ArgType.CUSTOM, 42)
    assert c.type is ArgType.CUSTOM and c.custom_type_id == 42 and c.buf == [1, 2]
    assert Arg(1, 5).type is ArgType.INT32  # an int converts to the enum
    assert Arg(bytearray(12)).size == 12 == Arg(bytearray(12)).c_size


@pytest.mark.parametrize(
    ("value", "type_", "nbytes"),
    [
        ([1, 2, 3], ArgType.INT32_ARRAY, 12),  # a list of ints: int32[]
        ([1.0, 2, 3.5], ArgType.FLOAT32_ARRAY, 12),  # a list of numbers: float32[]
        (b"abc", ArgType.BUFFER, 3),
        (bytearray(b"abcd"), ArgType.BUFFER, 4),
        ("text", ArgType.CHAR_ARRAY, 5),  # a C string, NUL included
        (Path("/lib/x.so"), ArgType.CHAR_ARRAY, 10),
        (np.zeros(3, np.float64), ArgType.RAW, 24),
    ],
)
def test_plain_values_are_typed_as_vaccel_python_types_them(
    value: Any, type_: ArgType, nbytes: int
) -> None:
    arg = Arg.wrap(value)
    assert arg.type is type_ and arg.size == nbytes
    if isinstance(value, list):
        assert arg.buf == value  # read back as a list
    elif isinstance(value, Path):
        assert arg.buf == os.fspath(value)


def test_arg_store_keeps_the_kind_of_value() -> None:
    arr = np.zeros(3, np.float32)
    a = Arg(arr)
    a.store([1.0, 2.0, 3.0])
    assert a.buf is arr and arr.tolist() == [1.0, 2.0, 3.0]  # in place, cast
    ba = bytearray(8)
    b = Arg(ba)
    b.store(np.array([1, 2], np.int32))
    assert b.buf is ba and np.frombuffer(ba, np.int32).tolist() == [1, 2]
    lst = Arg([0, 0])
    lst.store(np.array([5, 6], np.int32))
    assert lst.buf == [5, 6] and isinstance(lst.buf[0], int)
    f = Arg(0.0)
    f.store(np.array([2.5]))
    assert f.buf == 2.5 and isinstance(f.buf, float)
    i = Arg(0)
    i.store(9)
    assert i.buf == 9 and isinstance(i.buf, int)


# ---------------------------------------------------------------------- tensors

#: family -> {TensorType name: NumPy dtype} (section 3: the types with a data mapping).
MAPPED = {
    "tf": {
        "FLOAT": "float32",
        "DOUBLE": "float64",
        "INT32": "int32",
        "UINT8": "uint8",
        "INT16": "int16",
        "INT8": "int8",
        "INT64": "int64",
        "BOOL": "bool",
        "UINT16": "uint16",
        "UINT32": "uint32",
        "UINT64": "uint64",
    },
    "tflite": {
        "FLOAT32": "float32",
        "INT32": "int32",
        "UINT8": "uint8",
        "INT64": "int64",
        "BOOL": "bool",
        "INT16": "int16",
        "INT8": "int8",
        "FLOAT64": "float64",
        "UINT64": "uint64",
        "UINT32": "uint32",
        "UINT16": "uint16",
    },
    "torch": {
        "BYTE": "uint8",
        "CHAR": "int8",
        "SHORT": "int16",
        "INT": "int32",
        "LONG": "int64",
        "FLOAT": "float32",
    },
}
C_TYPE = {
    "float32": ("float", 4),
    "float64": ("double", 8),
    "int8": ("int8_t", 1),
    "int16": ("int16_t", 2),
    "int32": ("int32_t", 4),
    "int64": ("int64_t", 8),
    "uint8": ("uint8_t", 1),
    "uint16": ("uint16_t", 2),
    "uint32": ("uint32_t", 4),
    "uint64": ("uint64_t", 8),
    "bool": ("bool", 1),
}
FAMILIES = list(zip(FAMILY_IDS, TENSOR_FAMILIES, strict=True))


def _mapped_cases() -> list[tuple[str, Any, str, str]]:
    return [
        (label, fam, name, dtype)
        for label, fam in FAMILIES
        for name, dtype in MAPPED[label].items()
    ]


MAPPED_CASES = _mapped_cases()
MAPPED_IDS = [f"{c[0]}-{c[2]}" for c in MAPPED_CASES]


@pytest.mark.parametrize(("label", "fam", "name", "dtype"), MAPPED_CASES, ids=MAPPED_IDS)
def test_type_mapper_for_mapped_types(label: str, fam: Any, name: str, dtype: str) -> None:
    m = fam.TensorTypeMapper
    tt = fam.TensorType[name]
    assert m.type_to_numpy(tt) == np.dtype(dtype)
    assert m.type_from_numpy(np.dtype(dtype)) is tt
    assert m.type_from_numpy(dtype) is tt  # anything np.dtype() takes
    assert (m.type_to_c_type(tt), m.type_to_c_size(tt)) == C_TYPE[dtype]


UNMAPPED = [
    (label, fam, t)
    for label, fam in FAMILIES
    for t in fam.TensorType
    if t.name not in MAPPED[label]
]


@pytest.mark.parametrize(
    ("label", "fam", "tt"), UNMAPPED, ids=[f"{u[0]}-{u[2].name}" for u in UNMAPPED]
)
def test_type_mapper_raises_value_error_for_unsupported_types(
    label: str, fam: Any, tt: IntEnum
) -> None:
    m = fam.TensorTypeMapper
    for method in (m.type_to_c_type, m.type_to_c_size, m.type_to_numpy):
        with pytest.raises(ValueError):
            method(tt)
    with pytest.raises(ValueError):
        fam.Tensor([1], tt, [0])  # a Tensor needs a mapped type
    if label == "torch" and torch is not None:
        with pytest.raises(ValueError):
            m.type_to_torch(tt)


@pytest.mark.parametrize(("label", "fam"), FAMILIES, ids=FAMILY_IDS)
def test_type_mapper_refuses_unknown_dtypes_and_numbers(label: str, fam: Any) -> None:
    m = fam.TensorTypeMapper
    for dtype in (np.complex64, np.float16 if label != "tflite" else np.complex128, "U4"):
        with pytest.raises(ValueError):
            m.type_from_numpy(dtype)
    for method in (m.type_to_c_type, m.type_to_c_size, m.type_to_numpy):
        with pytest.raises(ValueError):
            method(99)


@needs_torch
def test_torch_dtype_mapping() -> None:
    m = vtorch.TensorTypeMapper
    pairs = {
        "BYTE": torch.uint8,
        "CHAR": torch.int8,
        "SHORT": torch.int16,
        "INT": torch.int32,
        "LONG": torch.int64,
        "FLOAT": torch.float32,
    }
    for name, dtype in pairs.items():
        assert m.type_to_torch(vtorch.TensorType[name]) is dtype
        assert m.type_from_torch(dtype) is vtorch.TensorType[name]
    for unsupported in (torch.float16, torch.float64, torch.bool, torch.complex64):
        with pytest.raises(ValueError):
            m.type_from_torch(unsupported)
    with pytest.raises(ValueError):
        m.type_to_torch(vtorch.TensorType.HALF)  # HALF has no mapping


@pytest.mark.parametrize(("label", "fam", "name", "dtype"), MAPPED_CASES, ids=MAPPED_IDS)
def test_tensor_from_values(label: str, fam: Any, name: str, dtype: str) -> None:
    tt = fam.TensorType[name]
    values = [1, 0, 1, 1, 0, 1] if dtype == "bool" else [1, 2, 3, 4, 5, 6]
    t = fam.Tensor([2, 3], tt, values)
    want = np.array(values, dtype=dtype)
    assert t.dims == [2, 3] and t.shape == [2, 3] and t.data_type is tt
    assert t.data == want.tolist()
    assert type(t.data[0]) is type(want.tolist()[0])  # Python numbers
    assert t.to_bytes() == want.tobytes()
    assert isinstance(t.to_bytes(), bytes)
    assert bytes(t.as_memoryview()) == want.tobytes()
    assert bytes(t.as_bytelike()) == want.tobytes()
    arr = t.as_numpy()
    assert arr.dtype == np.dtype(dtype) and arr.shape == (2, 3)
    assert arr.reshape(-1).tolist() == want.tolist()


@pytest.mark.parametrize(("label", "fam", "name", "dtype"), MAPPED_CASES, ids=MAPPED_IDS)
def test_tensor_from_buffer_is_zero_copy(label: str, fam: Any, name: str, dtype: str) -> None:
    tt = fam.TensorType[name]
    src = np.array([0, 1, 1, 0], dtype=dtype)
    buf = bytearray(src.tobytes())
    t = fam.Tensor.from_buffer([4], tt, buf)
    assert t.as_bytelike() is buf  # the object it was given, kept
    assert t.data == src.tolist() and t.dims == [4] and t.data_type is tt
    # a mutation of the buffer shows in the tensor (no copy was made)
    flipped = np.array([1, 0, 0, 1], dtype=dtype)
    buf[:] = flipped.tobytes()
    assert t.data == flipped.tolist()
    assert t.as_numpy().tolist() == flipped.tolist()
    assert t.to_bytes() == bytes(buf)
    mv = t.as_memoryview()
    assert isinstance(mv, memoryview) and mv.obj is buf


def test_tensor_from_buffer_takes_bytes_and_memoryviews_of_any_type() -> None:
    raw = np.arange(4, dtype=np.float32).tobytes()
    t = tf.Tensor.from_buffer([2, 2], tf.TensorType.FLOAT, raw)
    assert t.as_bytelike() is raw and t.data == [0.0, 1.0, 2.0, 3.0]
    view = memoryview(bytearray(raw))
    t = lite.Tensor.from_buffer([4], lite.TensorType.FLOAT32, view)
    assert t.as_bytelike() is view
    # a type without a data mapping still carries its bytes (a TF string tensor)
    s = tf.Tensor.from_buffer([5], tf.TensorType.STRING, b"hello")
    assert s.to_bytes() == b"hello" and s.data_type is tf.TensorType.STRING
    with pytest.raises(ValueError):
        _ = s.data  # no element type to decode it with
    with pytest.raises(TypeError):
        tf.Tensor.from_buffer([1], tf.TensorType.FLOAT, [1.0])  # type: ignore[arg-type]


@pytest.mark.parametrize(("label", "fam", "name", "dtype"), MAPPED_CASES, ids=MAPPED_IDS)
def test_tensor_from_numpy(label: str, fam: Any, name: str, dtype: str) -> None:
    arr = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    t = fam.Tensor.from_numpy(arr)
    assert t.data_type is fam.TensorType[name] and t.dims == [3, 4] == t.shape
    assert t.as_numpy() is arr  # the array itself (it was contiguous)
    mv = t.as_bytelike()
    assert isinstance(mv, memoryview) and mv.format == arr.data.format  # typed
    assert mv == arr.data and (mv == memoryview(arr))
    assert t.as_memoryview() == memoryview(arr)
    assert t.data == arr.reshape(-1).tolist()
    arr[0, 0] = 1 if dtype != "bool" else True
    assert t.data[0] == arr[0, 0]  # it is the same memory
    assert t.to_bytes() == arr.tobytes()


def test_tensor_from_numpy_keeps_a_contiguous_copy_and_refuses_unmapped_dtypes() -> None:
    arr = np.arange(6, dtype=np.float32).reshape(2, 3).T  # not C-contiguous
    t = tf.Tensor.from_numpy(arr)
    assert t.dims == [3, 2]
    kept = t.as_numpy()
    assert kept.flags.c_contiguous and np.array_equal(kept, arr)
    assert t.data == arr.reshape(-1).tolist()
    for fam in TENSOR_FAMILIES:
        with pytest.raises(ValueError):
            fam.Tensor.from_numpy(np.zeros(2, np.complex64))
    with pytest.raises(ValueError):
        vtorch.Tensor.from_numpy(np.zeros(2, np.float64))  # torch has no DOUBLE


@needs_torch
@pytest.mark.parametrize(
    ("dtype_name", "name"),
    [
        ("float32", "FLOAT"),
        ("int64", "LONG"),
        ("int32", "INT"),
        ("int16", "SHORT"),
        ("int8", "CHAR"),
        ("uint8", "BYTE"),
    ],
)
def test_tensor_from_torch_and_as_torch(dtype_name: str, name: str) -> None:
    dtype = getattr(torch, dtype_name)
    src = torch.arange(6).to(dtype).reshape(2, 3)
    t = vtorch.Tensor.from_torch(src)
    assert t.dims == [2, 3] and t.data_type is vtorch.TensorType[name]
    assert t.data == src.reshape(-1).tolist()
    assert t.as_torch() is src  # contiguous and on the CPU already: the tensor itself
    src[0, 0] = 5
    assert t.data[0] == 5  # shared memory
    assert t.as_numpy().tolist() == src.tolist()
    # a tensor that did not come from torch converts: torch.frombuffer, reshaped
    other = vtorch.Tensor([2, 3], vtorch.TensorType[name], list(range(6)))
    back = other.as_torch()
    assert isinstance(back, torch.Tensor) and back.dtype == dtype
    assert back.shape == (2, 3) and back.reshape(-1).tolist() == list(range(6))


@needs_torch
def test_tensor_from_torch_keeps_a_contiguous_cpu_tensor() -> None:
    src = torch.arange(6, dtype=torch.float32).reshape(2, 3).T
    t = vtorch.Tensor.from_torch(src)
    assert t.dims == [3, 2] and t.as_torch().is_contiguous()
    assert torch.equal(t.as_torch(), src)
    grad = torch.ones(3, requires_grad=True)
    assert vtorch.Tensor.from_torch(grad).data == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        vtorch.Tensor.from_torch(torch.zeros(2, dtype=torch.float16))  # HALF: no mapping


@pytest.mark.parametrize(("label", "fam"), FAMILIES, ids=FAMILY_IDS)
def test_tensor_empty_and_scalars(label: str, fam: Any) -> None:
    e = fam.Tensor.empty()
    assert isinstance(e, fam.Tensor) and e.dims == [] and e.to_bytes() == b""
    first = next(iter(MAPPED[label]))
    scalar = fam.Tensor([], fam.TensorType[first], [1])
    assert scalar.dims == [] and scalar.data == [1] and scalar.as_numpy().shape == ()
    none = fam.Tensor([0, 3], fam.TensorType[first], [])
    assert none.dims == [0, 3] and none.data == [] and none.as_numpy().shape == (0, 3)
    with pytest.raises(ValueError):
        fam.Tensor([2, 2], fam.TensorType[first], [1, 2, 3])  # 3 values for 4 elements


def test_the_three_families_are_distinct_types() -> None:
    assert tf.Tensor is not lite.Tensor is not vtorch.Tensor
    assert lite.Tensor.dims_dtype == np.int32 and tf.Tensor.dims_dtype == np.int64
    assert vtorch.Tensor.dims_dtype == np.int64


# ---------------------------------------------------------------------- Node, Buffer, Status


def test_node() -> None:
    n = tf.Node("serving_default_input", 3)
    assert (n.name, n.id) == ("serving_default_input", 3)
    assert isinstance(n.name, str) and isinstance(n.id, int)


@pytest.mark.parametrize("buffer_cls", [tf.Buffer, vtorch.Buffer], ids=["tf", "torch"])
def test_buffer(buffer_cls: Any) -> None:
    for data in (b"run options", bytearray(b"run options")):
        b = buffer_cls(data)
        assert b.data == b"run options" and type(b.data) is bytes  # bytes, as intended
        assert b.size == 11
    assert buffer_cls(b"").size == 0 and buffer_cls(b"").data == b""


def test_status() -> None:
    s = tf.Status()
    assert (s.code, s.message) == (0, "")
    s = tf.Status(3, "Operation handled by noop plugin")
    assert s.code == 3 and type(s.code) is int  # reads the code (vaccel-python: AttributeError)
    assert s.message == "Operation handled by noop plugin"
    assert tf.Status(0, "x") == tf.Status(0, "x") != tf.Status(1, "x")


def test_torch_conversions_need_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torch installed, the torch conversions raise NotImplementedError (the
    NumPy ones need nothing: NumPy is one of pyvaccel's own dependencies)."""
    import importlib.util

    real = importlib.util.find_spec

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "torch" else real(name, *args, **kwargs)

    class FakeTensor:
        """Stands for a torch tensor where torch is not installed."""

        dtype = "torch.float32"

        def contiguous(self) -> FakeTensor:
            return self

        def cpu(self) -> FakeTensor:
            return self

    t = vtorch.Tensor([2], vtorch.TensorType.FLOAT, [1.0, 2.0])
    monkeypatch.setattr(importlib.util, "find_spec", no_torch)
    m = vtorch.TensorTypeMapper
    with pytest.raises(NotImplementedError):
        m.type_to_torch(vtorch.TensorType.FLOAT)
    with pytest.raises(NotImplementedError):
        m.type_from_torch(FakeTensor.dtype)
    with pytest.raises(NotImplementedError):
        t.as_torch()
    with pytest.raises(NotImplementedError):
        vtorch.Tensor.from_torch(FakeTensor())
    assert t.data == [1.0, 2.0]  # everything else still works
