"""The one thing an inference plugin must provide: a loaded model as a `Backend`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: its name, shape (-1 where unknown) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def describe(self) -> str:
        """`name float32 [1, 3, 224, 224]` (? for unknown dims), for messages."""
        dims = ", ".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name!r} {self.dtype} [{dims}]"


class Backend(Protocol):
    """A loaded model that a framework runs."""

    #: The model's file name (for messages and result images).
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        """Run the model on one array per input; every output, as float or integer arrays."""
        ...
