"""Opening the board: the real one through `pynq`, or the register-level model.

A board gives the plugin `overlay` (ip_dict and the IPs), `allocate`, `cma_free()`
(contiguous memory free, or None if unknown), `reload()` (program the bitstream again)
and `close()`. Every way opening can fail says which and how to fix it; the plugin never
falls back to the CPU on its own.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from vaccel.errors import PluginError


def meminfo_cma_free(path: str = "/proc/meminfo") -> int | None:
    """CmaFree from /proc/meminfo in bytes (None where the kernel has no CMA)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("CmaFree:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class PynqBoard:
    """A board with the overlay loaded through pynq."""

    def __init__(self, overlay: Any, allocate: Any, name: str) -> None:
        self.overlay = overlay
        self.allocate = allocate
        self.name = name

    def cma_free(self) -> int | None:
        """The contiguous memory the kernel reports free."""
        return meminfo_cma_free()

    def reload(self) -> None:
        """Program the bitstream again (resets every core, a hung one included)."""
        self.overlay.download()

    def close(self) -> None:
        """Release the overlay (pynq 3: Overlay.free)."""
        free = getattr(self.overlay, "free", None)
        if free is not None:
            free()


def open_real_board(settings: Mapping[str, str]) -> PynqBoard:
    """Load VACCEL_PYNQ_BITSTREAM with pynq.Overlay on the board's FPGA."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import pynq  # warns (ResourceWarning) on CPUs it does not support
    except ImportError as exc:
        raise PluginError(
            message="the pynq plugin needs the pynq package, which is not installed "
            f"({exc}); on a PYNQ board it lives in the pynq venv: run as root after "
            "'source /etc/profile.d/pynq_venv.sh' (README: the pynq plugin). From another "
            "host, use VACCEL_PLUGINS=rpc and run the agent on the board"
        ) from None
    bitstream = settings.get("VACCEL_PYNQ_BITSTREAM", "")
    if not bitstream:
        raise PluginError(
            message="the pynq plugin needs VACCEL_PYNQ_BITSTREAM: the path of the overlay's "
            ".bit file, with its .hwh beside it (see hls/README.md to build one)"
        )
    if not os.path.isfile(bitstream):
        raise PluginError(message=f"VACCEL_PYNQ_BITSTREAM: {bitstream!r} does not exist")
    hwh = os.path.splitext(bitstream)[0] + ".hwh"
    if not os.path.isfile(hwh):
        raise PluginError(
            message=f"VACCEL_PYNQ_BITSTREAM: {hwh!r} is missing; pynq needs the .hwh "
            "hardware handoff file beside the .bit"
        )
    with warnings.catch_warnings(record=True) as more:
        warnings.simplefilter("always")  # pynq warns "No devices found"; we report it below
        try:
            devices = list(pynq.Device.devices)
        except Exception as exc:
            raise PluginError(message=f"pynq could not look for FPGA devices: {exc}") from None
    if not devices:
        said = "; ".join(dict.fromkeys(str(w.message) for w in [*caught, *more]))
        raise PluginError(
            message="pynq found no FPGA device on this machine: the pynq plugin runs on the "
            "board itself (PYNQ-Z1 or another board pynq supports); from another host use "
            "VACCEL_PLUGINS=rpc with an agent running on the board"
            + (f" (pynq said: {said})" if said else "")
        )
    try:
        overlay = pynq.Overlay(bitstream)
    except Exception as exc:
        raise PluginError(
            message=f"pynq could not load {bitstream!r}: {type(exc).__name__}: {exc}"
        ) from None
    return PynqBoard(overlay, pynq.allocate, f"{devices[0].name}: {bitstream}")


def open_board(settings: Mapping[str, str]) -> Any:
    """The board VACCEL_PYNQ_BOARD names: `pynq` (default) or `sim` (the model)."""
    kind = settings.get("VACCEL_PYNQ_BOARD", "pynq")
    if kind == "pynq":
        return open_real_board(settings)
    if kind == "sim":
        from .sim import board_from_settings

        try:
            return board_from_settings(settings)
        except ValueError as exc:
            raise PluginError(message=f"VACCEL_PYNQ_SIM_*: {exc}") from None
    raise PluginError(
        message=f"VACCEL_PYNQ_BOARD={kind!r}; expected 'pynq' (a real board) or 'sim' "
        "(the register-level model)"
    )
