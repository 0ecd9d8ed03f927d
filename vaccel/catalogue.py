"""The op catalogue: each operation's number, Session method name and vAccel's names for it.

`title` is the name vAccel logs when a plugin registers the op ("Registered function
Vector Add from plugin noop"); `lookup` is what it logs when a session looks for it
("Looking for plugin implementing fpga_vector_add operation").
"""

from __future__ import annotations

from dataclasses import dataclass

from .enums import OpType


@dataclass(frozen=True)
class OpSpec:
    """How one operation is named in the API and in vAccel's log lines."""

    op: OpType
    method: str
    title: str
    lookup: str


def _spec(op: OpType, method: str, title: str, lookup: str | None = None) -> OpSpec:
    return OpSpec(op, method, title, title if lookup is None else lookup)


# In the order vAccel's noop plugin registers them (the seed's transcript), then the rest.
CATALOGUE: dict[OpType, OpSpec] = {
    s.op: s
    for s in (
        _spec(OpType.NOOP, "noop", "noop"),
        _spec(OpType.BLAS_SGEMM, "sgemm", "sgemm"),
        _spec(OpType.IMAGE_CLASSIFY, "classify", "image classification"),
        _spec(OpType.IMAGE_DETECT, "detect", "image detection"),
        _spec(OpType.IMAGE_SEGMENT, "segment", "image segmentation"),
        _spec(OpType.IMAGE_POSE, "pose", "image pose estimation"),
        _spec(OpType.IMAGE_DEPTH, "depth", "image depth estimation"),
        _spec(OpType.EXEC, "exec", "exec"),
        _spec(OpType.TF_SESSION_LOAD, "tf_model_load", "TensorFlow session load"),
        _spec(OpType.TF_SESSION_RUN, "tf_model_run", "TensorFlow session run"),
        _spec(OpType.TF_SESSION_DELETE, "tf_model_unload", "TensorFlow session delete"),
        _spec(OpType.MINMAX, "minmax", "MinMax"),
        _spec(OpType.FPGA_ARRAYCOPY, "fpga_arraycopy", "Array copy", "fpga_array_copy operation"),
        _spec(OpType.FPGA_VECTORADD, "fpga_vadd", "Vector Add", "fpga_vector_add operation"),
        _spec(
            OpType.FPGA_PARALLEL,
            "fpga_parallel",
            "Parallel acceleration",
            "fpga_parallel operation",
        ),
        _spec(OpType.FPGA_MMULT, "fpga_mmult", "Matrix multiplication", "fpga_mmult operation"),
        _spec(OpType.EXEC_WITH_RESOURCE, "exec_with_resource", "Exec with resource"),
        _spec(OpType.TORCH_JITLOAD_FORWARD, "torch_model_run", "Torch jitload_forward function"),
        _spec(OpType.TFLITE_SESSION_LOAD, "tflite_model_load", "TensorFlow Lite session load"),
        _spec(OpType.TFLITE_SESSION_RUN, "tflite_model_run", "TensorFlow Lite session run"),
        _spec(
            OpType.TFLITE_SESSION_DELETE, "tflite_model_unload", "TensorFlow Lite session delete"
        ),
    )
}

BY_METHOD: dict[str, OpSpec] = {s.method: s for s in CATALOGUE.values()}


def op_title(op: OpType) -> str:
    """vAccel's display name of an op (falls back to the enum name)."""
    spec = CATALOGUE.get(op)
    return spec.title if spec else op.name


#: Ops whose first argument is a registered resource (its id on the wire).
RESOURCE_OPS = frozenset(
    {
        OpType.EXEC_WITH_RESOURCE,
        OpType.TF_SESSION_LOAD,
        OpType.TF_SESSION_RUN,
        OpType.TF_SESSION_DELETE,
        OpType.TFLITE_SESSION_LOAD,
        OpType.TFLITE_SESSION_RUN,
        OpType.TFLITE_SESSION_DELETE,
        OpType.TORCH_JITLOAD_FORWARD,
    }
)
