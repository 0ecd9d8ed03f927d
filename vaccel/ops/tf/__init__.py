"""TensorFlow model ops and their types, as vaccel-python's `vaccel.ops.tf`.

Example:
    >>> from vaccel.ops.tf import Node, Tensor, TensorType
    >>> t = Tensor([1, 2], TensorType.FLOAT, [1.0, 2.0])
    >>> t.dims, t.data_type.name, t.data
    ([1, 2], 'FLOAT', [1.0, 2.0])
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ...enums import OpType
from ..base import OpsBase, R
from ..tensors import C_TYPES, TensorBase, TypeMapper


class TensorType(IntEnum):
    """TF_DataType values, as vAccel's TF tensors carry them."""

    FLOAT = 1
    DOUBLE = 2
    INT32 = 3
    UINT8 = 4
    INT16 = 5
    INT8 = 6
    STRING = 7
    COMPLEX = 8
    COMPLEX64 = 8
    INT64 = 9
    BOOL = 10
    QINT8 = 11
    QUINT8 = 12
    QINT32 = 13
    BFLOAT16 = 14
    QINT16 = 15
    QUINT16 = 16
    UINT16 = 17
    COMPLEX128 = 18
    HALF = 19
    RESOURCE = 20
    VARIANT = 21
    UINT32 = 22
    UINT64 = 23


_MAPPER = TypeMapper(
    "tf",
    TensorType,
    {
        TensorType.FLOAT: "float32",
        TensorType.DOUBLE: "float64",
        TensorType.INT32: "int32",
        TensorType.UINT8: "uint8",
        TensorType.INT16: "int16",
        TensorType.INT8: "int8",
        TensorType.INT64: "int64",
        TensorType.BOOL: "bool",
        TensorType.UINT16: "uint16",
        TensorType.UINT32: "uint32",
        TensorType.UINT64: "uint64",
    },
    C_TYPES,
)


class Tensor(TensorBase):
    """A TensorFlow tensor: `Tensor(dims, TensorType.FLOAT, [values...])`."""

    mapper = _MAPPER


class Node:
    """A graph node named in a TF model run: `Node("serving_default_input", 0)`."""

    def __init__(self, name: str, id_: int = 0) -> None:
        self.name = str(name)
        self.id = int(id_)

    def __repr__(self) -> str:
        return f"<Node {self.name}:{self.id}>"


class Buffer:
    """Opaque bytes passed to a model run (run options)."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._data = bytes(data)

    @property
    def data(self) -> bytes:
        """The bytes."""
        return self._data

    @property
    def size(self) -> int:
        """Their length."""
        return len(self._data)


class Status:
    """What a TF op reports: `code` (0 on success) and a message."""

    def __init__(self, error_code: int = 0, message: str = "") -> None:
        self.code = int(error_code)
        self.message = str(message)

    @property
    def error_code(self) -> int:
        """The same as `code` (vAccel before 0.8 called it error_code)."""
        return self.code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"<Status {self.code}: {self.message!r}>"


class TFMixin(OpsBase[R]):
    """TensorFlow model ops on a registered MODEL resource.

    The tf plugin runs SavedModel directories (TensorFlow, optional); the onnx plugin
    serves the same ops on ONNX models, nodes naming the graph's inputs and outputs.

    Examples:
        ```python
        import numpy as np
        from vaccel import Resource, ResourceType, Session
        from vaccel.ops.tf import Node, Tensor

        with Session() as s:  # VACCEL_PLUGINS=onnx
            model = Resource("model.onnx", ResourceType.MODEL)
            s.register_resource(model)
            s.tf_model_load(model)
            x = Tensor.from_numpy(np.zeros((1, 4), np.float32))
            outs, status = s.tf_model_run(model, [Node("input")], [x], [Node("output")])
            print(outs[0].as_numpy(), status.code)
            s.tf_model_unload(model)
        ```
    """

    def tf_model_load(self, resource: Any) -> R:
        """Load a model, ready for `tf_model_run`.

        Args:
            resource: a MODEL `Resource` registered with this session.

        Returns:
            A `Status` (code 0 on success).

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> status = session.tf_model_load(model)  # doctest: +SKIP
        """
        return self._op(OpType.TF_MODEL_LOAD, resource)

    def tf_model_unload(self, resource: Any) -> R:
        """Unload a model loaded by `tf_model_load`.

        Args:
            resource: the MODEL `Resource` given to `tf_model_load`.

        Returns:
            A `Status` (code 0 on success).

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> status = session.tf_model_unload(model)  # doctest: +SKIP
        """
        return self._op(OpType.TF_MODEL_UNLOAD, resource)

    def tf_model_run(
        self,
        resource: Any,
        in_nodes: list[Node],
        in_tensors: list[Tensor],
        out_nodes: list[Node],
        run_options: Buffer | None = None,
    ) -> R:
        """Run a loaded model on input tensors.

        Args:
            resource: the MODEL `Resource` given to `tf_model_load`.
            in_nodes: the graph's input nodes, one per tensor of `in_tensors`.
            in_tensors: the inputs, `vaccel.ops.tf.Tensor`s.
            out_nodes: the graph's output nodes to read.
            run_options: opaque run options for the framework (a `Buffer`).

        Returns:
            (tensors, status): one `Tensor` per entry of `out_nodes`, and a `Status`.

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> outs, status = session.tf_model_run(  # doctest: +SKIP
            ...     model, [Node("input")], [x], [Node("output")])
        """
        return self._op(OpType.TF_MODEL_RUN, resource, in_nodes, in_tensors, out_nodes, run_options)


#: vaccel-python's name for the family's type conversions.
TensorTypeMapper = _MAPPER

__all__ = ["Buffer", "Node", "Status", "TFMixin", "Tensor", "TensorType", "TensorTypeMapper"]
