"""Torch (TorchScript) model ops and their types, as vaccel-python's `vaccel.ops.torch`.

Example:
    >>> from vaccel.ops.torch import Tensor, TensorType
    >>> Tensor([2], TensorType.FLOAT, [1.0, 2.0]).data
    [1.0, 2.0]
"""

from __future__ import annotations

import importlib.util
from enum import IntEnum
from typing import Any

import numpy as np

from ..enums import OpType
from .base import OpsBase, R
from .tensors import C_TYPES, TensorBase, TypeMapper
from .tf import Buffer

#: The torch dtypes of the mapped types (HALF has no mapping, as in vaccel-python).
_TORCH_NAMES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    7: "float32",
}


class TensorType(IntEnum):
    """vAccel's torch tensor types."""

    BYTE = 1
    CHAR = 2
    SHORT = 3
    INT = 4
    LONG = 5
    HALF = 6
    FLOAT = 7


class _TorchMapper(TypeMapper):
    """The torch family's mapper, with conversions to and from torch dtypes."""

    def type_to_torch(self, ttype: int) -> Any:
        """The torch dtype of TensorType `ttype`: ValueError for types with no mapping
        (HALF), NotImplementedError without torch."""
        torch = _torch()
        try:
            return getattr(torch, _TORCH_NAMES[int(ttype)])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"torch tensor type {self._name(ttype)} has no torch dtype; supported: "
                + ", ".join(TensorType(t).name for t in _TORCH_NAMES)
            ) from None

    def type_from_torch(self, dtype: Any) -> IntEnum:
        """The TensorType of a torch dtype: ValueError for dtypes with no vAccel type,
        NotImplementedError without torch."""
        torch = _torch()
        for number, torch_name in _TORCH_NAMES.items():
            if isinstance(dtype, torch.dtype) and dtype == getattr(torch, torch_name):
                return TensorType(number)
        raise ValueError(
            f"torch dtype {dtype} has no vAccel tensor type; supported: "
            + ", ".join(f"torch.{n}" for n in _TORCH_NAMES.values())
        )


_MAPPER = _TorchMapper(
    "torch",
    TensorType,
    {
        TensorType.BYTE: "uint8",
        TensorType.CHAR: "int8",
        TensorType.SHORT: "int16",
        TensorType.INT: "int32",
        TensorType.LONG: "int64",
        TensorType.FLOAT: "float32",
    },
    C_TYPES,
)


def _torch() -> Any:
    if importlib.util.find_spec("torch") is None:
        raise NotImplementedError(
            "torch is not installed (pip install '.[torch]' in the pyvaccel clone)"
        )
    import torch

    return torch


class Tensor(TensorBase):
    """A torch tensor for vAccel: `Tensor(dims, TensorType.FLOAT, [values...])`."""

    mapper = _MAPPER
    _torch: Any = None

    @classmethod
    def from_torch(cls, data: Any) -> Tensor:
        """A tensor over a torch tensor (kept contiguous, on the CPU); its dtype gives the
        type (ValueError for one with no vAccel type)."""
        kept = data.contiguous().cpu()
        data_type = _MAPPER.type_from_torch(kept.dtype)
        out = cls.__new__(cls)
        raw = (
            kept.detach().reshape(-1).view(_torch().uint8).numpy()
            if kept.numel()
            else np.empty(0, np.uint8)
        )
        out._set(list(kept.shape), data_type, raw, check_size=False)
        out._origin = None
        out._torch = kept
        return out

    def as_torch(self) -> Any:
        """The tensor given to `from_torch`, else a torch view of the data."""
        if self._torch is not None:
            return self._torch
        torch = _torch()
        data = bytearray(self.to_bytes())
        dtype = _MAPPER.type_to_torch(self.data_type)
        if not data:
            return torch.empty(self.dims, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(self.dims)


class TorchMixin(OpsBase[R]):
    """Torch model ops on a registered MODEL resource (a TorchScript file).

    The torch plugin (CPU torch) serves them.

    Examples:
        ```python
        import numpy as np
        from vaccel import PluginType, Resource, ResourceType, Session
        from vaccel.ops.torch import Tensor

        with Session(PluginType.TORCH) as s:  # VACCEL_PLUGINS=torch
            model = Resource("model.pt", ResourceType.MODEL)  # torch.jit.save'd
            s.register_resource(model)
            s.torch_model_load(model)
            outs = s.torch_model_run(model, [Tensor.from_numpy(np.ones((1, 4), np.float32))])
            print(outs[0].as_numpy())
        ```
    """

    def torch_model_load(self, resource: Any) -> R:
        """Load a TorchScript model, ready for `torch_model_run`.

        Args:
            resource: a MODEL `Resource` registered with this session (a file written by
                `torch.jit.save`).

        Returns:
            None.

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: torch failed to load or run the model.

        Examples:
            >>> session.torch_model_load(model)  # doctest: +SKIP
        """
        return self._op(OpType.TORCH_MODEL_LOAD, resource)

    def torch_model_run(
        self,
        resource: Any,
        in_tensors: list[Tensor],
        nr_out_tensors: int = 1,
        run_options: Buffer | None = None,
    ) -> R:
        """Run a loaded TorchScript model on input tensors.

        Args:
            resource: the MODEL `Resource` given to `torch_model_load`.
            in_tensors: the inputs, `vaccel.ops.torch.Tensor`s, in the model's order.
            nr_out_tensors: how many outputs to return.
            run_options: opaque run options (a `vaccel.ops.tf.Buffer`).

        Returns:
            The output `Tensor`s (`Tensor.as_torch()` or `.as_numpy()` read them).

        Raises:
            PermissionDeniedError: `resource` is not registered with this session.
            BadArgumentError: `resource` is not a MODEL resource, or a tensor does not
                fit the model.
            NotSupportedError: no loaded plugin implements it, or none can load this
                model.
            PluginFailure: torch failed to load or run the model.

        Examples:
            >>> outs = session.torch_model_run(model, [x])  # doctest: +SKIP
        """
        return self._op(OpType.TORCH_MODEL_RUN, resource, in_tensors, nr_out_tensors, run_options)


#: vaccel-python's name for the family's type conversions.
TensorTypeMapper = _MAPPER

__all__ = ["Buffer", "Tensor", "TensorType", "TensorTypeMapper", "TorchMixin"]
