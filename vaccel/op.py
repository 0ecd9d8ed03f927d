"""vaccel-python's `vaccel.op` module: the op numbers."""

from __future__ import annotations

from .enums import OpType

__all__ = ["OpType"]
