"""The enumerations of vAccel's API, with vAccel 0.8's names and numbers."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class OpType(IntEnum):
    """vAccel operation numbers (vaccel_op_type, vAccel 0.8)."""

    NOOP = 0
    EXEC = 1
    EXEC_WITH_RESOURCE = 2
    IMAGE_CLASSIFY = 3
    IMAGE_DETECT = 4
    IMAGE_SEGMENT = 5
    IMAGE_POSE = 6
    IMAGE_DEPTH = 7
    TF_MODEL_LOAD = 8
    TF_MODEL_UNLOAD = 9
    TF_MODEL_RUN = 10
    TFLITE_MODEL_LOAD = 11
    TFLITE_MODEL_UNLOAD = 12
    TFLITE_MODEL_RUN = 13
    TORCH_MODEL_LOAD = 14
    TORCH_MODEL_RUN = 15
    TORCH_SGEMM = 16
    BLAS_SGEMM = 17
    FPGA_ARRAYCOPY = 18
    FPGA_MMULT = 19
    FPGA_PARALLEL = 20
    FPGA_VECTORADD = 21
    MINMAX = 22
    OPENCV = 23
    MAX = 24


class PluginType(IntFlag):
    """What kind of plugin; also used as session hints (vaccel_plugin_type, vAccel 0.8)."""

    CPU = 0x1
    GPU = 0x2
    FPGA = 0x4
    SOFTWARE = 0x8
    TENSORFLOW = 0x10
    TORCH = 0x20
    JETSON = 0x40
    GENERIC = 0x80
    DEBUG = 0x100
    REMOTE = 0x4000
    ALL = 0xFFFF
    MAX = 0x10000


class ResourceType(IntEnum):
    """What a Resource holds."""

    LIB = 0
    DATA = 1
    MODEL = 2
    MAX = 3


class ArgType(IntEnum):
    """How an `Arg` buffer is to be read (vaccel_arg_type, vAccel 0.8)."""

    RAW = 0
    INT8 = 1
    INT8_ARRAY = 2
    INT16 = 3
    INT16_ARRAY = 4
    INT32 = 5
    INT32_ARRAY = 6
    INT64 = 7
    INT64_ARRAY = 8
    UINT8 = 9
    UINT8_ARRAY = 10
    UINT16 = 11
    UINT16_ARRAY = 12
    UINT32 = 13
    UINT32_ARRAY = 14
    UINT64 = 15
    UINT64_ARRAY = 16
    FLOAT32 = 17
    FLOAT32_ARRAY = 18
    FLOAT64 = 19
    FLOAT64_ARRAY = 20
    BOOL = 21
    BOOL_ARRAY = 22
    CHAR = 23
    CHAR_ARRAY = 24
    UCHAR = 25
    UCHAR_ARRAY = 26
    STRING = 27
    BUFFER = 28
    CUSTOM = 29
    MAX = 30
