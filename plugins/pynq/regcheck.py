"""At overlay load: the driver's register map against the .hwh's register list.

pynq parses each IP's registers out of the .hwh into `ip_dict[ip]['registers']`
(name -> address_offset, size, ...). The cores are built so that each 64-bit pointer
`p` is two 32-bit registers `p_1` (low word) and `p_2` (high word) and each scalar one
register; Vitis HLS renames arguments that are HDL keywords with `_r` (`in` -> `in_r`).
A single 64-bit register `p` is accepted too. Anything else (a pointer with 32-bit
addresses, an argument moved, renamed, added or missing) refuses the overlay: the driver
would write addresses into the wrong registers and the core would DMA to the wrong place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .registers import CoreSpec

FIX = (
    "rebuild the cores with hls/build_hls.tcl (it pins 64-bit m_axi addresses with "
    "config_interface -m_axi_addr64), or make plugins/pynq/registers.py match the core"
)


def _names(arg: str) -> tuple[str, str]:
    return arg, f"{arg}_r"


def register_problems(spec: CoreSpec, registers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What differs between `spec` and a .hwh register list; empty when they agree."""
    by_offset: dict[int, list[tuple[str, int]]] = {}
    for name, reg in registers.items():
        offset = int(reg.get("address_offset", -1))
        by_offset.setdefault(offset, []).append((name, int(reg.get("size", 32))))
    problems: list[str] = []
    expected: set[int] = set()

    def expect(offset: int, names: tuple[str, ...], size: int, what: str) -> bool:
        found = by_offset.get(offset, [])
        if any(n in names and s == size for n, s in found):
            expected.add(offset)
            return True
        if not found:
            problems.append(f"no register at {offset:#x} for {what}")
        else:
            got = ", ".join(f"{n} ({s} bits)" for n, s in found)
            problems.append(f"{offset:#x} is {got}, expected {names[0]} ({size} bits) for {what}")
        expected.add(offset)
        return False

    expect(0x00, ("CTRL",), 32, "the control register")
    for arg, offset in spec.pointers.items():
        here = by_offset.get(offset, [])
        if any(n in _names(arg) and s == 64 for n, s in here):
            expected.add(offset)  # one 64-bit register
            continue
        if any(n in _names(arg) and s == 32 for n, s in here):
            problems.append(
                f"{arg} at {offset:#x} is a single 32-bit register: the core has 32-bit m_axi "
                "addresses, the driver writes 64-bit ones"
            )
            expected.add(offset)
            continue
        low = tuple(f"{n}_1" for n in _names(arg))
        high = tuple(f"{n}_2" for n in _names(arg))
        if not expect(offset, low, 32, f"{arg}'s address (low word)"):
            continue  # one message per pointer is enough
        if not by_offset.get(offset + 4):
            problems.append(
                f"no register at {offset + 4:#x} for {arg}'s address (high word): the core "
                "has 32-bit m_axi addresses"
            )
            expected.add(offset + 4)
            continue
        expect(offset + 4, high, 32, f"{arg}'s address (high word)")
    for arg, offset in spec.scalars.items():
        expect(offset, _names(arg), 32, arg)
    for offset in sorted(by_offset):
        if offset >= 0x10 and offset not in expected:
            names = ", ".join(n for n, _ in by_offset[offset])
            problems.append(f"{names} at {offset:#x} is not an argument the plugin drives")
    return problems


def check_registers(ip: str, spec: CoreSpec, description: Mapping[str, Any]) -> str | None:
    """None if the IP's .hwh registers match `spec`, else a message saying how they differ."""
    registers = description.get("registers")
    if not registers:
        return (
            f"pynq: the .hwh lists no registers for {ip!r}, so its register map cannot be "
            f"checked; export the overlay's .hwh again (hls/README.md)"
        )
    problems = register_problems(spec, registers)
    if not problems:
        return None
    return (
        f"pynq: the register map of {ip!r} in the .hwh does not match the {spec.kernel} "
        f"core this plugin drives: {'; '.join(problems)}. Refusing to load: the driver would "
        f"write buffer addresses into the wrong registers. {FIX[0].upper()}{FIX[1:]}"
    )
