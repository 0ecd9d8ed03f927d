"""A register-level model of a PYNQ-Z1 with the four HLS cores, for tests and trials.

The plugin's driver runs unchanged against it (`VACCEL_PYNQ_BOARD=sim`). The model is
built to be stricter than the hardware is forgiving, and independent of the driver:

* register maps from the kernels' C signatures by Vitis HLS's layout rule
  (`simlayout`), offered to the plugin as a .hwh register list in `ip_dict`;
* cores that follow the ap_ctrl_hs handshake, check every register access and run the
  C sources' loops on simulated DDR, bad pointers included (`simcore`);
* a 120 MiB CMA pool in 512 MiB of DDR, poisoned frees, guard words and a write-back
  data cache with 32-byte lines and random evictions (`simmemory`).

Whatever would corrupt memory or break the protocol on a board is a violation: it is
recorded in `SimBoard.violations` and raised as `SimViolation`, and every later access
to the board raises too, so a test, or a client of an agent, cannot miss it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from .simcore import ADDR_RANGE, SimCore
from .simlayout import hwh_registers, kernel_layouts
from .simmemory import CMA_HELD, CMA_SIZE, SimBuffer, SimMemory, SimViolation, new_buffer

__all__ = ["SimBoard", "SimBuffer", "SimViolation", "board_from_settings"]

DEFAULT_IPS = ("vadd_0", "arraycopy_0", "parallel_0", "mmult_0")


class SimOverlay:
    """The parts of `pynq.Overlay` the plugin uses: `ip_dict`, IPs as attributes, `download`."""

    def __init__(self, board: SimBoard, cores: dict[str, SimCore]) -> None:
        self._board = board
        self._cores = cores
        self.ip_dict: dict[str, dict[str, Any]] = {
            name: {
                "fullpath": name,
                "type": f"xilinx.com:hls:{core.layout.kernel}:1.0",
                "phys_addr": 0x4000_0000 + 0x1_0000 * i,
                "addr_range": ADDR_RANGE,
                "registers": hwh_registers(core.layout),
                "parameters": {},
            }
            for i, (name, core) in enumerate(cores.items())
        }

    def __getattr__(self, name: str) -> SimCore:
        try:
            return self.__dict__["_cores"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def download(self) -> None:
        """Program the bitstream again: every core is reset (a hung one too)."""
        self._board.reloads += 1
        with self._board.lock:
            for core in self._cores.values():
                core.reset()

    def free(self) -> None:
        """Nothing to release in the model."""


class SimBoard:
    """A simulated board: DDR with a CMA pool, an overlay with the chosen cores.

    `ips` names the cores (default the four `*_0`); `hang` cores never finish a run
    until the overlay is reloaded; `slow` cores finish a run that many seconds after it
    started; `addr32` builds the cores with 32-bit m_axi addresses; `latency` is how
    many control-register reads a run takes.
    """

    def __init__(
        self,
        ips: list[str] | None = None,
        hang: set[str] | None = None,
        slow: Mapping[str, float] | None = None,
        addr32: bool = False,
        latency: int = 3,
        seed: int = 0,
        cma_bytes: int = CMA_SIZE - CMA_HELD,
    ) -> None:
        self.lock = threading.RLock()
        self.violations: list[str] = []
        self.reloads = 0
        self.rng = np.random.default_rng(seed)
        self.memory = SimMemory(self.lock, self._violate, self.rng, cma_bytes)
        self.memory.advance = self.advance
        self.memory.tick = self.tick
        layouts = kernel_layouts(addr64=not addr32)
        cores: dict[str, SimCore] = {}
        for name in ips if ips is not None else DEFAULT_IPS:
            kernel = name.rsplit("_", 1)[0]
            if kernel not in layouts:
                raise ValueError(f"the model has no core {kernel!r} (IP {name!r})")
            cores[name] = SimCore(
                name,
                layouts[kernel],
                self.memory,
                self.lock,
                self.tick,
                latency=latency,
                hang=name in (hang or set()),
                slow=(slow or {}).get(name),
            )
        self.cores = cores
        self.overlay = SimOverlay(self, cores)
        self.name = "register-level model"

    def _violate(self, message: str) -> None:
        self.violations.append(message)
        raise SimViolation(message)

    def check(self) -> None:
        """Raise if the model has seen a violation (they stick: the board is corrupt)."""
        if self.violations:
            raise SimViolation(f"earlier violation: {self.violations[0]}")

    def advance(self) -> None:
        """Move the model's clock: slow runs that are due complete (and may violate)."""
        for core in self.cores.values():
            core.tick_self()

    def tick(self) -> None:
        """Raise if the board is corrupt, else move the clock."""
        self.check()
        self.advance()

    def allocate(self, shape: Any, dtype: Any = np.uint32, **_: Any) -> SimBuffer:
        """`pynq.allocate`: a zeroed contiguous buffer, or RuntimeError when none fits."""
        with self.lock:
            self.tick()
        return new_buffer(self.memory, shape, dtype)

    def cma_free(self) -> int:
        """What the board reports as free contiguous memory."""
        with self.lock:
            return self.memory.cma_free()

    def reload(self) -> None:
        """Load the overlay again (the plugin's answer to a hung core)."""
        self.overlay.download()

    def close(self) -> None:
        """Nothing to release in the model."""


def board_from_settings(settings: Mapping[str, str]) -> SimBoard:
    """A model configured by VACCEL_PYNQ_SIM_* (IPS, HANG, SLOW, ADDR32, SEED, LATENCY)."""
    ips = settings.get("VACCEL_PYNQ_SIM_IPS")
    hang = {h for h in settings.get("VACCEL_PYNQ_SIM_HANG", "").split(",") if h}
    slow: dict[str, float] = {}
    for item in filter(None, settings.get("VACCEL_PYNQ_SIM_SLOW", "").split(",")):
        name, _, seconds = item.partition("=")
        try:
            slow[name] = float(seconds)
        except ValueError:
            raise ValueError(f"VACCEL_PYNQ_SIM_SLOW: {item!r} should be ip=seconds") from None
    try:
        seed = int(settings.get("VACCEL_PYNQ_SIM_SEED", "0"))
        latency = int(settings.get("VACCEL_PYNQ_SIM_LATENCY", "3"))
    except ValueError as exc:
        raise ValueError(f"VACCEL_PYNQ_SIM_SEED/LATENCY: {exc}") from None
    return SimBoard(
        ips=[i for i in ips.split(",") if i] if ips is not None else None,
        hang=hang,
        slow=slow,
        addr32=settings.get("VACCEL_PYNQ_SIM_ADDR32", "") in ("1", "true", "yes"),
        latency=latency,
        seed=seed,
    )
