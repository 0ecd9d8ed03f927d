"""TensorFlow Lite model ops and their types, as vaccel-python's `vaccel.ops.tf.lite`.

Example:
    >>> import numpy as np
    >>> from vaccel.ops.tf.lite import Tensor
    >>> Tensor.from_numpy(np.zeros((1, 3), np.float32)).data_type.name
    'FLOAT32'
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np

from ...enums import OpType
from ..base import OpsBase, R
from ..tensors import C_TYPES, TensorBase, TypeMapper


class TensorType(IntEnum):
    """TfLiteType values."""

    NOTYPE = 0
    FLOAT32 = 1
    INT32 = 2
    UINT8 = 3
    INT64 = 4
    STRING = 5
    BOOL = 6
    INT16 = 7
    COMPLEX64 = 8
    INT8 = 9
    FLOAT16 = 10
    FLOAT64 = 11
    COMPLEX128 = 12
    UINT64 = 13
    RESOURCE = 14
    VARIANT = 15
    UINT32 = 16
    UINT16 = 17
    INT4 = 18


_MAPPER = TypeMapper(
    "tflite",
    TensorType,
    {
        TensorType.FLOAT32: "float32",
        TensorType.INT32: "int32",
        TensorType.UINT8: "uint8",
        TensorType.INT64: "int64",
        TensorType.BOOL: "bool",
        TensorType.INT16: "int16",
        TensorType.INT8: "int8",
        TensorType.FLOAT64: "float64",
        TensorType.UINT64: "uint64",
        TensorType.UINT32: "uint32",
        TensorType.UINT16: "uint16",
    },
    C_TYPES,
)


class Tensor(TensorBase):
    """A TFLite tensor: `Tensor(dims, TensorType.FLOAT32, [values...])` (dims are int32)."""

    mapper = _MAPPER
    dims_dtype = np.dtype(np.int32)


class TFLiteMixin(OpsBase[R]):
    """TensorFlow Lite model ops on a registered MODEL resource (a .tflite file).

    The tflite plugin (LiteRT) serves them.

    Examples:
        ```python
        import numpy as np
        from vaccel import PluginType, Resource, ResourceType, Session
        from vaccel.ops.tf.lite import Tensor

        with Session(PluginType.TENSORFLOW) as s:  # VACCEL_PLUGINS=tflite
            model = Resource("model.tflite", ResourceType.MODEL)
            s.register_resource(model)
            s.tflite_model_load(model)
            x = Tensor.from_numpy(np.zeros((1, 128, 128, 3), np.float32))
            outs, status = s.tflite_model_run(model, [x], 1)
            print(outs[0].dims, status)
            s.tflite_model_unload(model)
        ```
    """

    def tflite_model_load(self, resource: Any) -> R:
        """Load a TFLite model, ready for `tflite_model_run`.

        Args:
            resource: a MODEL `Resource` registered with this session.

        Returns:
            None.

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> session.tflite_model_load(model)  # doctest: +SKIP
        """
        return self._op(OpType.TFLITE_MODEL_LOAD, resource)

    def tflite_model_unload(self, resource: Any) -> R:
        """Unload a model loaded by `tflite_model_load`.

        Args:
            resource: the MODEL `Resource` given to `tflite_model_load`.

        Returns:
            None.

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> session.tflite_model_unload(model)  # doctest: +SKIP
        """
        return self._op(OpType.TFLITE_MODEL_UNLOAD, resource)

    def tflite_model_run(
        self, resource: Any, in_tensors: list[Tensor], nr_out_tensors: int = 1
    ) -> R:
        """Run a loaded TFLite model on input tensors.

        Args:
            resource: the MODEL `Resource` given to `tflite_model_load`.
            in_tensors: the inputs, `vaccel.ops.tf.lite.Tensor`s, in the model's order.
            nr_out_tensors: how many of the model's outputs to return.

        Returns:
            (tensors, status): the output `Tensor`s and an int status, 0 on success.

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: the framework failed to load or run the model.

        Examples:
            >>> outs, status = session.tflite_model_run(model, [x], 1)  # doctest: +SKIP
        """
        return self._op(OpType.TFLITE_MODEL_RUN, resource, in_tensors, nr_out_tensors)


#: vaccel-python's name for the family's type conversions.
TensorTypeMapper = _MAPPER

__all__ = ["TFLiteMixin", "Tensor", "TensorType", "TensorTypeMapper"]
