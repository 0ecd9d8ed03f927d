"""The tf plugin: TensorFlow SavedModels for the `tf_model_*` ops (optional extra `tf`).

vAccel's TensorFlow ops name a graph's tensors by node: (operation name, output index),
e.g. ("serving_default_input_1", 0) in and ("StatefulPartitionedCall", 0) out. The
plugin loads the MODEL resource's SavedModel directory (laid out in the session's run
directory when it arrived as bytes) into a TF1-style session and feeds and fetches
those tensors. It refuses to load where TensorFlow is not installed; `make test` does
not install TensorFlow (ONNX models serve the same ops through the onnx plugin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from vaccel.enums import OpType, PluginType
from vaccel.errors import BadArgumentError
from vaccel.ops.tensors import RawTensor
from vaccel.plugin import Impl, SessionLike
from vaccel.plugins.imaging.base import InferencePlugin
from vaccel.plugins.imaging.resources import ModelFiles

if TYPE_CHECKING:
    from .model import SavedModel

MISSING = (
    "the tf plugin runs TensorFlow SavedModels and needs TensorFlow, which is not installed "
    "here ({reason}); install it with pip install '.[tf]' in the pyvaccel clone, or serve the "
    "tf_model_* ops with ONNX models through the onnx plugin (VACCEL_PLUGINS=onnx)"
)


class TFPlugin(InferencePlugin):
    """TensorFlow SavedModels: tf_model_load, tf_model_run, tf_model_unload."""

    name = "tf"
    type = PluginType.TENSORFLOW | PluginType.CPU
    kind = "TensorFlow SavedModel"
    hint_name = "PluginType.TENSORFLOW"

    def missing(self, reason: ImportError) -> str:
        return MISSING.format(reason=reason)

    def accepts(self, name: str, blob: bytes) -> bool:
        return name.endswith("saved_model.pb")

    def load_backend(self, files: ModelFiles) -> Any:
        raise NotImplementedError  # SavedModels load from a directory: see `_saved`

    def _saved(self, session: SessionLike, resource_id: int) -> SavedModel:
        resource = session.resource(resource_id)

        def loader() -> Any:
            if not any(self.accepts(n, b"") for n in resource.names):
                raise BadArgumentError(
                    message=f"resource {resource_id} holds no TensorFlow SavedModel (no "
                    f"saved_model.pb among {', '.join(resource.names)})"
                )
            materialize = getattr(resource, "materialize", None)
            if materialize is None:
                raise BadArgumentError(message=f"resource {resource_id} cannot be laid out")
            return self._model.SavedModel(materialize(session.rundir), resource_id)

        return cast("SavedModel", self.models(session).load(resource_id, loader))

    def model_load(self, session: SessionLike, resource_id: int) -> list[Any]:
        """tf_model_load: Status [0, message]."""
        self._saved(session, resource_id)
        return [0, f"loaded SavedModel of resource {resource_id}"]

    def model_unload(self, session: SessionLike, resource_id: int) -> list[Any]:
        """tf_model_unload: Status [0, message]."""
        self.unload(session, resource_id, "tf_model_unload").close()
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
        """tf_model_run: [outputs, [0, message]]."""
        saved = self._saved(session, resource_id)
        outputs = saved.run(in_nodes, tensors, out_nodes, run_options)
        return [outputs, [0, "ok"]]

    def operations(self) -> dict[OpType, Impl]:
        return {
            OpType.TF_MODEL_LOAD: Impl(self.model_load),
            OpType.TF_MODEL_RUN: Impl(self.model_run),
            OpType.TF_MODEL_UNLOAD: Impl(self.model_unload),
        }
