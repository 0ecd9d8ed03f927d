"""The noop op."""

from __future__ import annotations

from ..enums import OpType
from .base import OpsBase, R


class NoopMixin(OpsBase[R]):
    """`noop`: does nothing, through whichever plugin serves it (a reachability check)."""

    def noop(self) -> R:
        """Run the no-op; returns None.

        Example: `session.noop()`.
        """
        return self._op(OpType.NOOP)
