"""The noop op."""

from __future__ import annotations

from ..enums import OpType
from .base import OpsBase, R


class NoopMixin(OpsBase[R]):
    """`noop`: does nothing, through whichever plugin serves it (a reachability check)."""

    def noop(self) -> R:
        """Run the empty operation: checks that a plugin (or an agent) answers.

        The noop plugin logs the call at debug level, as vAccel's does.

        Returns:
            None.

        Raises:
            NotSupportedError: no loaded plugin implements noop.
            UnavailableError: through an agent, when it cannot be reached.

        Examples:
            >>> session.noop()
        """
        return self._op(OpType.NOOP)
