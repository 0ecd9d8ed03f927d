"""The enumerations of vAccel's API, with vAccel's numbering."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class OpType(IntEnum):
    """vAccel operation numbers (vaccel_op_type)."""

    NOOP = 0
    BLAS_SGEMM = 1
    IMAGE_CLASSIFY = 2
    IMAGE_DETECT = 3
    IMAGE_SEGMENT = 4
    IMAGE_POSE = 5
    IMAGE_DEPTH = 6
    EXEC = 7
    TF_MODEL_NEW = 8
    TF_MODEL_DESTROY = 9
    TF_MODEL_REGISTER = 10
    TF_MODEL_UNREGISTER = 11
    TF_SESSION_LOAD = 12
    TF_SESSION_RUN = 13
    TF_SESSION_DELETE = 14
    MINMAX = 15
    FPGA_ARRAYCOPY = 16
    FPGA_MMULT = 17
    FPGA_PARALLEL = 18
    FPGA_VECTORADD = 19
    EXEC_WITH_RESOURCE = 20
    TORCH_JITLOAD_FORWARD = 21
    TORCH_SGEMM = 22
    OPENCV = 23
    TFLITE_SESSION_LOAD = 24
    TFLITE_SESSION_RUN = 25
    TFLITE_SESSION_DELETE = 26


class PluginType(IntFlag):
    """What kind of plugin; also used as session hints (vaccel_plugin_type)."""

    NONE = 0
    GENERIC = 1 << 0
    SOFTWARE = 1 << 1
    HARDWARE = 1 << 2
    CPU = 1 << 3
    GPU = 1 << 4
    FPGA = 1 << 5
    REMOTE = 1 << 6
    DEBUG = 1 << 7


class ResourceType(IntEnum):
    """What a Resource holds."""

    LIB = 0
    DATA = 1
    MODEL = 2


class ArgType(IntEnum):
    """How an `Arg` buffer is to be read."""

    RAW = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT32 = 9
    FLOAT64 = 10
    BOOL = 11
    STRING = 12
    NUMPY = 13
