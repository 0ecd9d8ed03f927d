"""`InferencePlugin`: a plugin that runs models given as MODEL resources.

It follows each session's MODEL resources through the resource hooks (image ops use the
latest one it can read, as vAccel's image ops use the session's model), loads a model
once per session and resource, and forgets it when the resource or session goes.
Subclasses say what they need installed (`needs`), which files they read (`accepts`) and
how to load one (`load_backend`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from vaccel.enums import ResourceType
from vaccel.errors import BadArgumentError, PermissionDeniedError, PluginError
from vaccel.plugin import Plugin, ResourceLike, SessionLike

from .backend import Backend
from .resources import ModelFiles, find_model, model_files
from .state import SessionModels, session_models


@dataclass(frozen=True)
class Loaded:
    """A model resource's files and the model loaded from them."""

    files: ModelFiles
    backend: Backend


class InferencePlugin(Plugin):
    """Base of the inference plugins (onnx, tflite, torch, tf): MODEL resources -> loaded models."""

    #: What the plugin's models are called in messages ("ONNX", "TFLite").
    kind: ClassVar[str] = "model"
    #: The session hint that picks this plugin before others serving the same op.
    hint_name: ClassVar[str] = ""
    #: The framework the plugin's `model` module imports ("onnxruntime"), named when absent.
    needs: ClassVar[str] = ""

    _model: ModuleType

    def init(self) -> None:
        """Import the plugin's `model` module, and with it the framework it runs models in."""
        try:
            self._model = importlib.import_module(".model", type(self).__module__)
        except ImportError as exc:
            raise PluginError(message=self.missing(exc)) from None

    def missing(self, reason: ImportError) -> str:
        """What the PluginError says when the framework cannot be imported."""
        return (
            f"the {self.name} plugin needs {self.needs}: pip install '.[{self.name}]' "
            f"in the pyvaccel clone ({reason})"
        )

    def accepts(self, name: str, blob: bytes) -> bool:
        """Whether a resource file is a model this plugin runs."""
        raise NotImplementedError

    def load_backend(self, files: ModelFiles) -> Backend:
        """Load a model (BadArgumentError naming the file when it is not a valid one)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The framework and the models this plugin runs (for `vaccel info`)."""
        model = getattr(self, "_model", None)
        return {"framework": getattr(model, "FRAMEWORK", "not loaded"), "models": self.kind}

    # ------------------------------------------------------------------ session state

    def models(self, session: SessionLike) -> SessionModels:
        """This plugin's state for a session."""
        return session_models(session, self.display_name)

    def session_init(self, session: SessionLike) -> None:
        self.models(session)

    def session_free(self, session: SessionLike) -> None:
        session.plugin_state.pop(self.display_name, None)

    def resource_register(self, session: SessionLike, resource: ResourceLike) -> None:
        if resource.type == ResourceType.MODEL:
            self.models(session).add(resource.id)

    def resource_unregister(self, session: SessionLike, resource: ResourceLike) -> None:
        self.models(session).remove(resource.id)

    # ------------------------------------------------------------------ models

    def load(self, session: SessionLike, resource_id: int) -> Loaded:
        """The loaded model of a registered resource (loaded on first use)."""
        resource = session.resource(resource_id)

        def loader() -> Loaded:
            files = model_files(resource, self.accepts, self.kind)
            return Loaded(files, self.load_backend(files))

        return self.models(session).load(resource_id, loader)

    def unload(self, session: SessionLike, resource_id: int, op: str) -> Any:
        """Forget what the session loaded of a resource and return it (BadArgumentError
        naming `op` when nothing is loaded)."""
        loaded = self.models(session).unload(resource_id)
        if loaded is None:
            raise BadArgumentError(
                message=f"{op}: resource {resource_id} is not loaded in session {session.id}"
            )
        return loaded

    def image_model(self, session: SessionLike, op: str) -> Loaded:
        """The model an image op uses: the latest registered one this plugin runs."""
        others = []
        for rid in self.models(session).newest_first():
            try:
                resource = session.resource(rid)
            except PermissionDeniedError:  # its registration failed in a later plugin
                self.models(session).remove(rid)
                continue
            if find_model(resource, self.accepts) is not None:
                return self.load(session, rid)
            others.append(f"resource {rid}: {', '.join(resource.names)}")
        if not others:
            raise BadArgumentError(
                message=f"{op}: no model is registered with session {session.id}; register a "
                f"MODEL resource holding the {self.kind} model file (with, optionally, a labels "
                ".txt file and a preprocess.json)"
            )
        hint = f" (or open the session with the {self.hint_name} hint)" if self.hint_name else ""
        raise BadArgumentError(
            message=f"{op}: the {self.display_name} plugin runs {self.kind} models, and the "
            f"MODEL resources of session {session.id} hold none ({'; '.join(others)}); the "
            "first plugin in VACCEL_PLUGINS that serves an op runs it: put the plugin for "
            f"this model first{hint}"
        )
