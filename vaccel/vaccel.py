"""vaccel-python's `vaccel.vaccel` module: start and stop the process-wide runtime."""

from __future__ import annotations

from .runtime import bootstrap, cleanup

__all__ = ["bootstrap", "cleanup"]
