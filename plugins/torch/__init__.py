"""The torch plugin: TorchScript models with CPU torch.

It serves `torch_model_load` and `torch_model_run` on MODEL resources holding a
TorchScript file (`torch.jit.save`): the input tensors are passed to the module's
`forward` in order, and its tensor outputs (a tensor, or a tuple, list or dict of them)
come back. `torch_sgemm` has no entry in the op table yet and is not served.

Install it with `pip install '.[torch]'` in the pyvaccel clone (pinned to the CPU build's release).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from vaccel import log
from vaccel.enums import OpType, PluginType
from vaccel.ops.tensors import RawTensor
from vaccel.plugin import Impl, SessionLike
from vaccel.plugins.imaging.base import InferencePlugin
from vaccel.plugins.imaging.resources import ModelFiles

if TYPE_CHECKING:
    from .model import TorchModel


class TorchPlugin(InferencePlugin):
    """TorchScript models: torch_model_load and torch_model_run."""

    name = "torch"
    type = PluginType.TORCH | PluginType.CPU
    kind = "TorchScript"
    hint_name = "PluginType.TORCH"
    needs = "torch"

    def accepts(self, name: str, blob: bytes) -> bool:
        return bool(self._model.is_torchscript(name, blob))

    def load_backend(self, files: ModelFiles) -> Any:
        return self._model.TorchModel(files)

    def model_load(self, session: SessionLike, resource_id: int) -> None:
        """torch_model_load: load the resource's TorchScript module for this session."""
        self.load(session, resource_id)

    def model_run(
        self,
        session: SessionLike,
        resource_id: int,
        tensors: list[RawTensor],
        count: int,
        run_options: bytes | None,
    ) -> list[RawTensor]:
        """torch_model_run: the module's first `count` outputs (loaded on first use)."""
        model = cast("TorchModel", self.load(session, resource_id).backend)
        if run_options:
            log.debug(f"[{self.display_name}] run options ({len(run_options)} bytes) ignored")
        return model.run(tensors, count)

    def operations(self) -> dict[OpType, Impl]:
        return {
            OpType.TORCH_MODEL_LOAD: Impl(self.model_load),
            OpType.TORCH_MODEL_RUN: Impl(self.model_run),
        }
