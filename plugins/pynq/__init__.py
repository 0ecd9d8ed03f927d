"""The pynq plugin: vector add, array copy, matrix multiply and parallel add/multiply on
HLS cores in the FPGA fabric, driven through the `pynq` package.

This module is only the glue to vaccel's plugin interface; the work is done by
`fabric.Fabric` (cores, contiguous memory, locking, faults) over `driver` (registers
and handshake), `memory` (the CMA budget), `regcheck` (the .hwh check at load) and
`board` (pynq, or the register-level model in `sim`). Settings: see `settings`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaccel import log
from vaccel.enums import OpType, PluginType
from vaccel.plugin import Impl, Plugin
from vaccel.plugin import SessionLike as SessionBase

from .fabric import Fabric, open_fabric

#: op -> (vAccel op type, the seed's log title)
OPS: dict[str, tuple[OpType, str]] = {
    "arraycopy": (OpType.FPGA_ARRAYCOPY, "Array copy"),
    "vadd": (OpType.FPGA_VECTORADD, "Vector Add"),
    "parallel": (OpType.FPGA_PARALLEL, "Parallel acceleration"),
    "mmult": (OpType.FPGA_MMULT, "Matrix multiplication"),
}


class PynqPlugin(Plugin):
    """The FPGA plugin: one fabric per process, shared by every session and thread."""

    name = "pynq"
    type = PluginType.FPGA

    fabric: Fabric

    def init(self) -> None:
        """Open the board and load and check the overlay."""
        self.fabric = open_fabric(self.config.env)
        log.debug(
            f"[pynq] overlay loaded on {self.fabric.board.name}: "
            f"{', '.join(s.ip for s in self.fabric.slots.values())}"
        )

    def fini(self) -> None:
        """Free the buffers and release the board."""
        self.fabric.close()

    def operations(self) -> dict[OpType, Impl]:
        """The ops whose core the overlay has."""
        return {
            OPS[kernel][0]: Impl(self._entry(kernel), blocking=True)
            for kernel in OPS
            if kernel in self.fabric.slots
        }

    def _entry(self, kernel: str) -> Callable[..., Any]:
        op: Callable[..., Any] = getattr(self.fabric, kernel)
        title = OPS[kernel][1]

        def call(session: SessionBase, *args: Any) -> Any:
            if log.enabled(log.DEBUG):
                log.debug(f"[pynq] Calling {title} function (FPGA) for session {session.id}")
            return op(*args)

        call.__name__ = kernel
        return call
