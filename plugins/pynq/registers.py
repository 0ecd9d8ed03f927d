"""The driver's register maps of the four HLS cores (Vitis HLS, s_axilite, m_axi data).

Every core has the `ap_ctrl_hs` control register at 0x00 and its arguments from 0x10.
Vitis HLS gives each 64-bit m_axi pointer three words (low, high, reserved) and each
scalar two (value, reserved); hls/build_hls.tcl pins the 64-bit addresses. At load the
plugin checks these maps against the overlay's .hwh (`regcheck`). hls/REGISTERS.md
documents them for people; the register-level model derives its own from the C
signatures (`simlayout`), so that tests catch an offset wrong here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ap_ctrl_hs control register (offset 0x00)
CTRL = 0x00
AP_START = 1 << 0  # write 1 to start; cleared by the core when it accepts the inputs
AP_DONE = 1 << 1  # set when the run finished; clear-on-read
AP_IDLE = 1 << 2  # set while the core is not running
AP_READY = 1 << 3  # set when the core can take new inputs; clear-on-read
GIE = 0x04  # global interrupt enable
IER = 0x08  # interrupt enable (bit0 done, bit1 ready)
ISR = 0x0C  # interrupt status (toggle-on-write)


@dataclass(frozen=True)
class CoreSpec:
    """One core: its HLS name, its pointer and scalar arguments, and its limits."""

    kernel: str  # the HLS top function, and the IP name prefix (vadd -> vadd_0)
    pointers: dict[str, int]  # argument -> register offset of its low word
    scalars: dict[str, int]  # argument -> register offset
    dtype: np.dtype[np.generic]
    #: The most elements (or, for mmult, the largest n) one run may process.
    max_len: int

    @property
    def default_ip(self) -> str:
        return f"{self.kernel}_0"


VADD = CoreSpec(
    "vadd", {"a": 0x10, "b": 0x1C, "c": 0x28}, {"len": 0x34}, np.dtype(np.float32), 1 << 22
)
ARRAYCOPY = CoreSpec(
    "arraycopy", {"in": 0x10, "out": 0x1C}, {"len": 0x28}, np.dtype(np.int32), 1 << 22
)
PARALLEL = CoreSpec(
    "parallel",
    {"a": 0x10, "b": 0x1C, "add": 0x28, "mult": 0x34},
    {"len": 0x40},
    np.dtype(np.float32),
    1 << 22,
)
#: mmult computes one n x n tile product (n <= 64) into on-chip memory, optionally
#: adding the result already in C: larger matrices are multiplied tile by tile.
MMULT = CoreSpec(
    "mmult",
    {"a": 0x10, "b": 0x1C, "c": 0x28},
    {"n": 0x34, "accumulate": 0x3C},
    np.dtype(np.float32),
    64,
)

CORES: dict[str, CoreSpec] = {c.kernel: c for c in (VADD, ARRAYCOPY, PARALLEL, MMULT)}
