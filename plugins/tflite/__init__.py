"""The tflite plugin: TFLite models in LiteRT (ai-edge-litert), on the CPU.

It serves `tflite_model_load`, `tflite_model_unload` and `tflite_model_run` on MODEL
resources holding a `.tflite` file, and the image ops (classify, detect, segment, pose,
depth) with the TFLite model registered with the session, e.g. the face detection,
selfie segmentation and pose landmark models MediaPipe ships.

Install it with `pip install '.[tflite]'` in the pyvaccel clone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from vaccel.enums import OpType, PluginType
from vaccel.ops.tensors import RawTensor
from vaccel.ops.tf.lite import TensorTypeMapper
from vaccel.plugin import Impl, SessionLike
from vaccel.plugins.imaging.base import InferencePlugin
from vaccel.plugins.imaging.ops import image_ops
from vaccel.plugins.imaging.resources import ModelFiles
from vaccel.plugins.imaging.tensors import check_feeds, to_raw

if TYPE_CHECKING:
    from .model import LiteModel


class TFLitePlugin(InferencePlugin):
    """TFLite models: the tflite_model_* ops and the image ops."""

    name = "tflite"
    type = PluginType.TENSORFLOW | PluginType.CPU
    kind = "TFLite"
    hint_name = "PluginType.TENSORFLOW"
    needs = "LiteRT"

    def accepts(self, name: str, blob: bytes) -> bool:
        return bool(self._model.is_tflite(name, blob))

    def load_backend(self, files: ModelFiles) -> Any:
        return self._model.LiteModel(files)

    def model_load(self, session: SessionLike, resource_id: int) -> None:
        """tflite_model_load: load the resource's model for this session."""
        self.load(session, resource_id)

    def model_unload(self, session: SessionLike, resource_id: int) -> None:
        """tflite_model_unload: drop the session's loaded model."""
        self.unload(session, resource_id, "tflite_model_unload")

    def model_run(
        self, session: SessionLike, resource_id: int, tensors: list[RawTensor], count: int
    ) -> list[Any]:
        """tflite_model_run: [outputs, status 0] (the model is loaded on first use)."""
        backend = cast("LiteModel", self.load(session, resource_id).backend)
        op = "tflite_model_run"
        feeds = check_feeds(op, backend.name, backend.inputs, tensors, TensorTypeMapper)
        outputs = backend.run_raw(feeds)
        return [to_raw(op, backend.name, outputs, count, TensorTypeMapper), 0]

    def operations(self) -> dict[OpType, Impl]:
        return {
            OpType.TFLITE_MODEL_LOAD: Impl(self.model_load),
            OpType.TFLITE_MODEL_UNLOAD: Impl(self.model_unload, blocking=False),
            OpType.TFLITE_MODEL_RUN: Impl(self.model_run),
            **image_ops(self),
        }
