"""The pynq plugin: vector add, array copy, matrix multiply and parallel add/multiply on
HLS cores in the FPGA fabric, driven through the `pynq` package.

Settings (environment): VACCEL_PYNQ_BITSTREAM (the overlay's .bit, .hwh beside it),
VACCEL_PYNQ_CORES (`op=ip` pairs overriding the IP names `vadd_0`, `arraycopy_0`,
`mmult_0`, `parallel_0`; an empty ip leaves that op out), VACCEL_PYNQ_TIMEOUT (seconds
a run may take, default 5), VACCEL_PYNQ_CHUNK (elements per run of the element-wise
cores), VACCEL_PYNQ_BOARD (`pynq`, or `sim` for the register-level model).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from vaccel import log
from vaccel.config import positive_setting
from vaccel.enums import OpType, PluginType
from vaccel.errors import PluginError
from vaccel.plugin import Impl, Plugin
from vaccel.session import SessionBase

from .board import open_board
from .driver import BufferCache, HlsCore, mmult, stream_op
from .registers import CORES, CoreSpec

OPS = {
    "vadd": OpType.FPGA_VECTORADD,
    "arraycopy": OpType.FPGA_ARRAYCOPY,
    "mmult": OpType.FPGA_MMULT,
    "parallel": OpType.FPGA_PARALLEL,
}
TITLES = {
    "vadd": "Vector Add",
    "arraycopy": "Array copy",
    "mmult": "Matrix multiplication",
    "parallel": "Parallel acceleration",
}


def core_names(settings: dict[str, str]) -> dict[str, str | None]:
    """Which IP serves each op: defaults, overridden by VACCEL_PYNQ_CORES."""
    names: dict[str, str | None] = {k: spec.default_ip for k, spec in CORES.items()}
    for item in filter(None, (p.strip() for p in settings.get("VACCEL_PYNQ_CORES", "").split(","))):
        kernel, sep, ip = item.partition("=")
        if not sep or kernel not in CORES:
            raise PluginError(
                message=f"VACCEL_PYNQ_CORES: {item!r} should be op=ip with op one of "
                f"{', '.join(CORES)}"
            )
        names[kernel] = ip or None
    return names


class PynqPlugin(Plugin):
    name = "pynq"
    type = PluginType.FPGA | PluginType.HARDWARE

    def init(self) -> None:
        settings = self.config.env
        timeout = positive_setting(settings, "VACCEL_PYNQ_TIMEOUT", float, PluginError) or 5.0
        chunk = int(positive_setting(settings, "VACCEL_PYNQ_CHUNK", int, PluginError) or 0)
        names = core_names(settings)
        self.board = open_board(settings)
        overlay = self.board.overlay
        found = dict(overlay.ip_dict)
        self.cores: dict[str, HlsCore] = {}
        for kernel, ip in names.items():
            if ip is None:
                continue
            spec: CoreSpec = CORES[kernel]
            if ip not in found:
                self.board.close()
                raise PluginError(
                    message=f"pynq: the overlay has no IP core {ip!r} for {kernel} (it has: "
                    f"{', '.join(sorted(found)) or 'none'}); build it in (hls/README.md) or "
                    f"map or drop the op with VACCEL_PYNQ_CORES={kernel}=NAME"
                )
            vlnv = str(found[ip].get("type", ""))
            if f":hls:{kernel}:" not in vlnv:
                self.board.close()
                raise PluginError(
                    message=f"pynq: IP {ip!r} is {vlnv or 'of unknown type'}, not the HLS "
                    f"{kernel} core this plugin drives"
                )
            if chunk and kernel != "mmult":
                spec = dataclasses.replace(spec, max_len=min(chunk, spec.max_len))
            self.cores[kernel] = HlsCore(getattr(overlay, ip), ip, spec, timeout)
        if not self.cores:
            self.board.close()
            raise PluginError(message="pynq: VACCEL_PYNQ_CORES leaves no core to use")
        self.cache = BufferCache(self.board.allocate)
        self.locks = {kernel: threading.Lock() for kernel in self.cores}
        log.debug(
            f"[pynq] overlay loaded on {self.board.name}: "
            f"{', '.join(c.name for c in self.cores.values())}"
        )

    def fini(self) -> None:
        self.cache.close()
        self.board.close()

    def _say(self, kernel: str, session: SessionBase) -> None:
        if log.enabled(log.DEBUG):
            log.debug(f"[pynq] Calling {TITLES[kernel]} function (FPGA) for session {session.id}")

    def vadd(self, session: SessionBase, a: Any, b: Any) -> Any:
        self._say("vadd", session)
        with self.locks["vadd"]:
            return stream_op(self.cores["vadd"], self.cache, {"a": a, "b": b}, ["c"])["c"]

    def arraycopy(self, session: SessionBase, a: Any) -> Any:
        self._say("arraycopy", session)
        with self.locks["arraycopy"]:
            return stream_op(self.cores["arraycopy"], self.cache, {"in": a}, ["out"])["out"]

    def parallel(self, session: SessionBase, a: Any, b: Any) -> tuple[Any, Any]:
        self._say("parallel", session)
        with self.locks["parallel"]:
            out = stream_op(self.cores["parallel"], self.cache, {"a": a, "b": b}, ["add", "mult"])
        return out["add"], out["mult"]

    def mmult(self, session: SessionBase, a: Any, b: Any) -> Any:
        self._say("mmult", session)
        with self.locks["mmult"]:
            return mmult(self.cores["mmult"], self.cache, np.asarray(a), np.asarray(b))

    def operations(self) -> dict[OpType, Impl]:
        table: dict[str, Callable[..., Any]] = {
            "arraycopy": self.arraycopy,
            "vadd": self.vadd,
            "parallel": self.parallel,
            "mmult": self.mmult,
        }
        return {OPS[k]: Impl(fn, blocking=True) for k, fn in table.items() if k in self.cores}
