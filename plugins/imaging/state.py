"""Per session: the MODEL resources registered with it and what a plugin loaded of them.

Image ops have no resource argument: as in vAccel, they use the model registered with
the session (the latest one a plugin can read). Loading is done once per resource and
session, under a lock, so concurrent calls on one session share one loaded model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vaccel.plugin import SessionLike

T = TypeVar("T")


class SessionModels:
    """The MODEL resource ids of one session, in registration order, and loaded models."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.loaded: dict[int, Any] = {}
        self.lock = threading.Lock()

    def add(self, resource_id: int) -> None:
        """A MODEL resource was registered."""
        with self.lock:
            if resource_id not in self.order:
                self.order.append(resource_id)

    def remove(self, resource_id: int) -> None:
        """A resource was unregistered: forget it and what was loaded of it."""
        with self.lock:
            if resource_id in self.order:
                self.order.remove(resource_id)
            self.loaded.pop(resource_id, None)

    def newest_first(self) -> list[int]:
        """The registered model ids, latest first."""
        with self.lock:
            return list(reversed(self.order))

    def load(self, resource_id: int, loader: Callable[[], T]) -> T:
        """The loaded model of a resource, loading it once (under the lock)."""
        with self.lock:
            hit = self.loaded.get(resource_id)
            if hit is None:
                hit = self.loaded[resource_id] = loader()
            return hit  # type: ignore[no-any-return]

    def unload(self, resource_id: int) -> Any:
        """Drop what was loaded of a resource and return it; None when nothing was."""
        with self.lock:
            return self.loaded.pop(resource_id, None)


def session_models(session: SessionLike, key: str) -> SessionModels:
    """The `SessionModels` a plugin keeps in a session's plugin state under `key`."""
    state = session.plugin_state.get(key)
    if not isinstance(state, SessionModels):
        state = session.plugin_state.setdefault(key, SessionModels())
    return state
