"""The pynq plugin's settings, read once from the environment at load.

* VACCEL_PYNQ_BITSTREAM: the overlay's .bit (its .hwh beside it).
* VACCEL_PYNQ_CORES: `op=ip` pairs overriding the IP names (`vadd=vadd_0`, ...); an
  empty ip leaves the op out.
* VACCEL_PYNQ_TIMEOUT: seconds one run of a core may take (default 5).
* VACCEL_PYNQ_CHUNK: at most this many elements per run of the element-wise cores.
* VACCEL_PYNQ_CMA_BYTES: contiguous memory the plugin may hold (default: what the board
  reports free, less a margin).
* VACCEL_PYNQ_RELOAD_ON_FAULT: `1` reloads the overlay when a core times out; otherwise
  the core is marked unusable.
* VACCEL_PYNQ_BOARD: `pynq` (default), or `sim` for the register-level model
  (configured by VACCEL_PYNQ_SIM_*, see `sim.board_from_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vaccel.config import positive_setting
from vaccel.errors import PluginError

from .registers import CORES

MiB = 1 << 20
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class PynqSettings:
    """Everything the plugin reads from VACCEL_PYNQ_*."""

    timeout: float
    chunk: int | None
    cma_bytes: int | None
    reload_on_fault: bool
    cores: dict[str, str | None]


def core_names(settings: Mapping[str, str]) -> dict[str, str | None]:
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


def read_settings(env: Mapping[str, str]) -> PynqSettings:
    """Parse and check the settings; PluginError names any bad one."""
    timeout = positive_setting(env, "VACCEL_PYNQ_TIMEOUT", float, PluginError) or 5.0
    chunk = positive_setting(env, "VACCEL_PYNQ_CHUNK", int, PluginError)
    cma = positive_setting(env, "VACCEL_PYNQ_CMA_BYTES", int, PluginError)
    reload = env.get("VACCEL_PYNQ_RELOAD_ON_FAULT", "").strip().lower()
    if reload not in TRUE + FALSE:
        raise PluginError(
            message=f"VACCEL_PYNQ_RELOAD_ON_FAULT={reload!r}; expected 1 (reload the overlay "
            "when a core times out) or 0"
        )
    return PynqSettings(
        timeout=float(timeout),
        chunk=int(chunk) if chunk else None,
        cma_bytes=int(cma) if cma else None,
        reload_on_fault=reload in TRUE,
        cores=core_names(env),
    )


def default_budget(reported: int | None) -> int:
    """The CMA budget when VACCEL_PYNQ_CMA_BYTES is unset: the board's free CMA less a margin
    (8 MiB, or a quarter when it has less than 32 MiB) for other users; 64 MiB if unknown."""
    if reported is None:
        return 64 * MiB
    return reported - min(8 * MiB, reported // 4)
