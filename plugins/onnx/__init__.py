"""The onnx plugin: ONNX models in onnxruntime, on the CPU.

It serves the image ops (classify, detect, segment, pose, depth) with the ONNX model
registered with the session, and the `tf_model_*` ops with ONNX models: vAccel's
TensorFlow ops name a model's inputs and outputs by node (name, id), which is how an
ONNX graph names them too (the id must be 0). `tflite_model_*` and `torch_model_*` are
left to the tflite and torch plugins, whose model formats they are.

Install it with `pip install '.[onnx]'` in the pyvaccel clone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from vaccel.enums import OpType, PluginType
from vaccel.errors import BadArgumentError
from vaccel.ops.tensors import RawTensor
from vaccel.ops.tf import TensorTypeMapper
from vaccel.plugin import Impl, SessionLike
from vaccel.plugins.imaging.backend import TensorSpec
from vaccel.plugins.imaging.base import InferencePlugin
from vaccel.plugins.imaging.ops import image_ops
from vaccel.plugins.imaging.resources import ModelFiles
from vaccel.plugins.imaging.tensors import check_feeds, to_raw

if TYPE_CHECKING:
    from .model import OnnxModel

RUN = "tf_model_run"


def _nodes(nodes: list[list[Any]], specs: list[TensorSpec], what: str, model: str) -> list[str]:
    known = {s.name for s in specs}
    names = []
    for i, (name, id_) in enumerate(nodes):
        if name not in known or id_ != 0:
            listed = ", ".join(f"({s.name!r}, 0)" for s in specs)
            raise BadArgumentError(
                message=f"{RUN}: {what}[{i}] is ({name!r}, {id_}); model {model!r} has the "
                f"{what.split('_')[0]}put nodes {listed}"
            )
        names.append(str(name))
    return names


class OnnxPlugin(InferencePlugin):
    """ONNX models: the image ops and the tf_model_* ops."""

    name = "onnx"
    type = PluginType.CPU | PluginType.SOFTWARE
    kind = "ONNX"
    needs = "onnxruntime"

    def accepts(self, name: str, blob: bytes) -> bool:
        return bool(self._model.is_onnx(name, blob))

    def load_backend(self, files: ModelFiles) -> Any:
        return self._model.OnnxModel(files)

    def _loaded(self, session: SessionLike, resource_id: int) -> OnnxModel:
        return cast("OnnxModel", self.load(session, resource_id).backend)

    def model_load(self, session: SessionLike, resource_id: int) -> list[Any]:
        """tf_model_load: load the resource's ONNX model; Status [0, message]."""
        model = self._loaded(session, resource_id)
        return [0, f"loaded ONNX model {model.name}"]

    def model_unload(self, session: SessionLike, resource_id: int) -> list[Any]:
        """tf_model_unload: drop the session's loaded model; Status [0, message]."""
        self.unload(session, resource_id, "tf_model_unload")
        return [0, f"unloaded resource {resource_id}"]

    def model_run(
        self,
        session: SessionLike,
        resource_id: int,
        in_nodes: list[list[Any]],
        tensors: list[RawTensor],
        out_nodes: list[list[Any]],
        run_options: bytes | None,
    ) -> list[Any]:
        """tf_model_run: inputs by node name, outputs by node name; [outputs, [0, message]]."""
        model = self._loaded(session, resource_id)
        inputs = _nodes(in_nodes, model.inputs, "in_nodes", model.name)
        outputs = _nodes(out_nodes, model.outputs, "out_nodes", model.name)
        by_name = {s.name: s for s in model.inputs}
        specs = [by_name[n] for n in inputs]
        missing = sorted(set(by_name) - set(inputs))
        if missing:
            raise BadArgumentError(
                message=f"{RUN}: model {model.name!r} also needs input nodes {missing}"
            )
        feeds = check_feeds(RUN, model.name, specs, tensors, TensorTypeMapper)
        results = model.run_named(dict(zip(inputs, feeds, strict=True)), outputs)
        raw = to_raw(RUN, model.name, results, len(results), TensorTypeMapper)
        return [raw, [0, f"ran ONNX model {model.name}"]]

    def operations(self) -> dict[OpType, Impl]:
        return {
            **image_ops(self),
            OpType.TF_MODEL_LOAD: Impl(self.model_load),
            OpType.TF_MODEL_RUN: Impl(self.model_run),
            OpType.TF_MODEL_UNLOAD: Impl(self.model_unload, blocking=False),
        }
