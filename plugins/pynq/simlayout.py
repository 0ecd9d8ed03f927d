"""The model's register maps, derived from the kernels' C signatures by Vitis HLS's rule.

This module is deliberately independent of the driver's `registers.py`: it starts from
the top-level C prototypes in `hls/*.cpp` (copied here; a test checks that they still
match the sources) and applies the layout rule of the Vivado IP flow with `ap_ctrl_hs`
on an `s_axilite` bundle:

* 0x00 CTRL, 0x04 GIER, 0x08 IP_IER, 0x0C IP_ISR; arguments from 0x10, in order;
* a pointer (`m_axi`, `offset=slave`) takes its address words (two with 64-bit m_axi
  addresses, `-m_axi_addr64`; one without) and one reserved word;
* a 32-bit scalar takes one data word and one reserved word;
* an argument named like an HDL keyword (`in`, `out`, ...) is renamed with `_r`.

From a layout the model builds what pynq reads out of a `.hwh`: the register list of
`ip_dict[ip]['registers']`, with a 64-bit pointer `p` as registers `p_1` and `p_2`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The top-level functions of hls/*.cpp, exactly as written there.
KERNEL_SIGNATURES: dict[str, str] = {
    "vadd": 'extern "C" void vadd(const float *a, const float *b, float *c, int len)',
    "arraycopy": 'extern "C" void arraycopy(const int32_t *in, int32_t *out, int len)',
    "parallel": (
        'extern "C" void parallel(const float *a, const float *b, float *add, float *mult, int len)'
    ),
    "mmult": (
        'extern "C" void mmult(const float *a, const float *b, float *c, int n, int accumulate)'
    ),
}

#: VHDL and Verilog reserved words that Vitis HLS renames with a `_r` suffix.
HDL_KEYWORDS = frozenset(
    [
        "abs",
        "access",
        "after",
        "alias",
        "all",
        "always",
        "and",
        "architecture",
        "array",
        "assert",
        "assign",
        "attribute",
        "begin",
        "block",
        "body",
        "buffer",
        "bus",
        "case",
        "component",
        "configuration",
        "constant",
        "default",
        "disable",
        "downto",
        "else",
        "elsif",
        "end",
        "entity",
        "event",
        "exit",
        "file",
        "for",
        "force",
        "function",
        "generate",
        "generic",
        "group",
        "guarded",
        "if",
        "impure",
        "in",
        "inertial",
        "initial",
        "inout",
        "input",
        "integer",
        "is",
        "join",
        "label",
        "library",
        "linkage",
        "literal",
        "loop",
        "map",
        "mod",
        "module",
        "nand",
        "negedge",
        "new",
        "next",
        "nor",
        "not",
        "null",
        "of",
        "on",
        "open",
        "or",
        "others",
        "out",
        "output",
        "package",
        "parameter",
        "port",
        "posedge",
        "postponed",
        "procedure",
        "process",
        "pure",
        "range",
        "real",
        "record",
        "reg",
        "register",
        "reject",
        "release",
        "rem",
        "repeat",
        "report",
        "return",
        "rol",
        "ror",
        "select",
        "severity",
        "shared",
        "signal",
        "sla",
        "sll",
        "sra",
        "srl",
        "subtype",
        "table",
        "task",
        "then",
        "time",
        "to",
        "transport",
        "tri",
        "type",
        "unaffected",
        "units",
        "until",
        "use",
        "variable",
        "wait",
        "wand",
        "when",
        "while",
        "wire",
        "with",
        "wor",
        "xnor",
        "xor",
    ]
)

C_TYPES = {"float": "float32", "int32_t": "int32", "int": "int32"}

CTRL_REGISTERS = (("CTRL", 0x00), ("GIER", 0x04), ("IP_IER", 0x08), ("IP_ISR", 0x0C))
ARGS_BASE = 0x10


@dataclass(frozen=True)
class Arg:
    """One argument: its C name, its HDL name, whether a pointer, its element type."""

    name: str
    hdl_name: str
    pointer: bool
    ctype: str

    @property
    def dtype(self) -> str:
        """The NumPy dtype name of the pointed-to elements (or of the scalar)."""
        return C_TYPES[self.ctype]


@dataclass(frozen=True)
class ArgRegisters:
    """Where one argument lives: the offsets of its data words (low first)."""

    arg: Arg
    words: tuple[int, ...]
    reserved: int


@dataclass(frozen=True)
class KernelLayout:
    """A kernel's s_axilite register map, as Vitis HLS lays it out."""

    kernel: str
    addr64: bool
    args: tuple[ArgRegisters, ...]

    def arg(self, name: str) -> ArgRegisters:
        """The registers of the argument `name` (its C name)."""
        for regs in self.args:
            if regs.arg.name == name:
                return regs
        raise KeyError(name)

    @property
    def end(self) -> int:
        """The first offset past the map."""
        return self.args[-1].reserved + 4 if self.args else ARGS_BASE

    def writable(self) -> frozenset[int]:
        """Offsets software may write: the control words and every data word."""
        offsets = {off for _, off in CTRL_REGISTERS}
        for regs in self.args:
            offsets.update(regs.words)
        return frozenset(offsets)


_SIGNATURE = re.compile(r'extern\s+"C"\s+void\s+(\w+)\s*\(([^)]*)\)')
_PARAM = re.compile(r"^(?:const\s+)?(\w+)\s*(\*?)\s*(\w+)$")


def parse_signature(text: str) -> tuple[str, tuple[Arg, ...]]:
    """The function name and arguments of an `extern "C" void name(...)` prototype."""
    m = _SIGNATURE.search(text)
    if m is None:
        raise ValueError(f'not an extern "C" void prototype: {text!r}')
    args = []
    for raw in m.group(2).split(","):
        p = _PARAM.match(" ".join(raw.split()))
        if p is None or p.group(1) not in C_TYPES:
            raise ValueError(f"{m.group(1)}: cannot lay out parameter {raw.strip()!r}")
        ctype, star, name = p.groups()
        hdl = f"{name}_r" if name in HDL_KEYWORDS else name
        args.append(Arg(name, hdl, bool(star), ctype))
    return m.group(1), tuple(args)


def lay_out(signature: str, addr64: bool = True) -> KernelLayout:
    """Apply Vitis HLS's s_axilite layout rule to one kernel prototype."""
    kernel, args = parse_signature(signature)
    offset = ARGS_BASE
    placed = []
    for arg in args:
        nwords = 2 if arg.pointer and addr64 else 1
        words = tuple(offset + 4 * i for i in range(nwords))
        placed.append(ArgRegisters(arg, words, offset + 4 * nwords))
        offset += 4 * (nwords + 1)
    return KernelLayout(kernel, addr64, tuple(placed))


def kernel_layouts(addr64: bool = True) -> dict[str, KernelLayout]:
    """The layout of every kernel in KERNEL_SIGNATURES."""
    return {k: lay_out(sig, addr64) for k, sig in KERNEL_SIGNATURES.items()}


def hwh_registers(layout: KernelLayout) -> dict[str, dict[str, Any]]:
    """The register list pynq's .hwh parser gives for this layout (`ip_dict[..]['registers']`)."""
    regs: dict[str, dict[str, Any]] = {}

    def add(name: str, offset: int, access: str, description: str) -> None:
        regs[name] = {
            "address_offset": offset,
            "size": 32,
            "access": access,
            "description": description,
            "fields": {},
        }

    add("CTRL", 0x00, "read-write", "Control signals")
    add("GIER", 0x04, "read-write", "Global Interrupt Enable Register")
    add("IP_IER", 0x08, "read-write", "IP Interrupt Enable Register")
    add("IP_ISR", 0x0C, "read-write", "IP Interrupt Status Register")
    for placed in layout.args:
        hdl = placed.arg.hdl_name
        if len(placed.words) == 1:
            add(hdl, placed.words[0], "write-only", f"Data signal of {hdl}")
        else:
            for i, offset in enumerate(placed.words, start=1):
                add(f"{hdl}_{i}", offset, "write-only", f"Data signal of {hdl}")
    return regs
