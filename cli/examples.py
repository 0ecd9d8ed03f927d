"""vAccel's example programs (`vaccel example NAME`), with vAccel's output.

Each prints what vAccel's C example of the same name prints, so a transcript taken with
pyvaccel lines up with one taken with vAccel (the blog post "Remote FPGA acceleration:
vAccel on PYNQ-Z1", 2023, shows them): `Initialized session with id: N`, then the
results. Every example declares its arguments (`vaccel example NAME --help`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaccel.arg import Arg
from vaccel.enums import ArgType, PluginType

from .example_support import (
    count,
    must_fit,
    open_session,
    print_floats,
)
from .model_examples import (
    _classify_arguments,
    _image_arguments,
    _image_op,
    _tensor_model_arguments,
    classify,
    tflite_model,
    torch_model,
)

VADD_A = [5.0, 1.0, 2.1, 1.2, 5.2]
VADD_B = [-2.2, 1.1, 6.4, 2.3, 6.1]


def vector_add(ns: argparse.Namespace) -> int:
    """Add two five-element float32 vectors (vAccel's PYNQ example); print the sums."""
    with open_session() as session:
        print_floats(session.fpga_vadd(np.array(VADD_A, np.float32), np.array(VADD_B, np.float32)))
    return 0


def array_copy(ns: argparse.Namespace) -> int:
    """Copy an int array (1 to 10) through the accelerator; print the copy."""
    a = list(range(1, 11))
    with open_session() as session:
        for v in session.fpga_arraycopy(a):
            print(v)
    return 0


def mmult(ns: argparse.Namespace) -> int:
    """Multiply two 2x2 float matrices; print the product."""
    a = [1.0, 2.0, 3.0, 4.0]
    b = [5.0, 6.0, 7.0, 8.0]
    with open_session() as session:
        print_floats(session.fpga_mmult(a, b))
    return 0


def parallel(ns: argparse.Namespace) -> int:
    """Add and multiply two vectors in one call; print both results."""
    with open_session() as session:
        add, mult = session.fpga_parallel(VADD_A, VADD_B)
        print("add:")
        print_floats(add)
        print("mult:")
        print_floats(mult)
    return 0


def minmax(ns: argparse.Namespace) -> int:
    """Clip N doubles (a ramp from -100 to 10000) to [10, 5000]; print their min and max."""
    n: int = ns.n
    must_fit(3 * 8 * n, f"minmax {n}")
    data = np.linspace(-100.0, 10000.0, n)
    with open_session() as session:
        _out, lo, hi = session.minmax(data.tobytes(), n, 10, 5000)
        print(f"min: {lo:f} max: {hi:f}")
    return 0


def sgemm(ns: argparse.Namespace) -> int:
    """Multiply two random N x N float32 matrices (SGEMM); print C[0] and C's sum."""
    n: int = ns.n
    # A, B and C here, and the plugin's copies: refuse before allocating what cannot fit
    must_fit(3 * 4 * n * n, f"sgemm {n} (three {n} x {n} float32 matrices)")
    rng = np.random.default_rng(1)
    a = rng.random(n * n, dtype=np.float32)
    b = rng.random(n * n, dtype=np.float32)
    with open_session() as session:
        c = session.sgemm(n, n, n, 1.0, a, n, b, n, 0.0, n)
        print(f"C[0]: {float(c[0]):f} sum: {float(np.sum(c)):f}")
    return 0


def noop(ns: argparse.Namespace) -> int:
    """Run the empty op (checks that a plugin answers)."""
    with open_session(PluginType.DEBUG) as session:
        session.noop()
    return 0


def exec_(ns: argparse.Namespace) -> int:
    """Call SYMBOL of LIBRARY N times on one int32 argument (10); print its output.

    With the numpy plugin LIBRARY is a Python module and SYMBOL one of its functions,
    allowed by VACCEL_EXEC_ALLOW=module:function where the plugin runs (on the agent,
    for remote calls): `VACCEL_EXEC_ALLOW=math:factorial vaccel example exec math
    factorial`. exec is code execution.
    """
    with open_session(PluginType.DEBUG) as session:
        for _ in range(ns.n):
            out = session.exec(
                ns.library, ns.symbol, [Arg(10, ArgType.INT32)], [Arg(0, ArgType.INT32)]
            )
            print(f"output: {out[0]}")
    return 0


def _exec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "library",
        metavar="LIBRARY",
        nargs="?",
        default="libmytestlib.so",
        help="the library (a Python module for the numpy plugin)",
    )
    parser.add_argument(
        "symbol", metavar="SYMBOL", nargs="?", default="mytestfunc", help="the function to call"
    )
    parser.add_argument("n", metavar="N", nargs="?", type=count, default=1, help="iterations")


def _n_argument(default: int, help_text: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "n", metavar="N", nargs="?", type=count, default=default, help=help_text
        )

    return add


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Example:
    """One example program: what it runs and the arguments it takes."""

    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    #: Extra lines for `--help` (what the example needs).
    note: str = ""

    @property
    def summary(self) -> str:
        """The first line of the example's description."""
        return (self.run.__doc__ or "").strip().splitlines()[0]

    @property
    def description(self) -> str:
        """The example's description, for its --help."""
        text = (self.run.__doc__ or "").strip()
        lines = [line.strip() for line in text.splitlines()]
        return "\n".join(lines) + (f"\n\n{self.note}" if self.note else "")


_IMAGE_NOTE = (
    "Needs an inference plugin (onnx, tflite) with --model, or the noop plugin for a dummy result."
)

EXAMPLES: dict[str, Example] = {
    "classify": Example(
        classify,
        _classify_arguments,
        "With --model, an inference plugin (onnx, tflite) runs that model; without it the "
        "noop plugin gives vAccel's dummy tag.",
    ),
    "pynq_vector_add_generic": Example(vector_add),
    "pynq_vector_add": Example(vector_add),
    "pynq_array_copy": Example(array_copy),
    "pynq_mmult": Example(mmult),
    "pynq_parallel": Example(parallel),
    "minmax": Example(minmax, _n_argument(2048, "how many doubles")),
    "sgemm": Example(sgemm, _n_argument(64, "the matrices' size (N x N)")),
    "noop": Example(noop),
    "exec": Example(exec_, _exec_arguments),
    "detect": Example(_image_op("detect", "detection"), _image_arguments, _IMAGE_NOTE),
    "segment": Example(_image_op("segment", "segmentation"), _image_arguments, _IMAGE_NOTE),
    "pose": Example(_image_op("pose", "pose"), _image_arguments, _IMAGE_NOTE),
    "depth": Example(_image_op("depth", "depth"), _image_arguments, _IMAGE_NOTE),
    "torch": Example(
        torch_model, _tensor_model_arguments, "Needs the torch plugin (VACCEL_PLUGINS=torch)."
    ),
    "tflite": Example(
        tflite_model, _tensor_model_arguments, "Needs the tflite plugin (VACCEL_PLUGINS=tflite)."
    ),
}


def add_parsers(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """One subcommand per example under `vaccel example`, with its arguments."""
    for name, example in EXAMPLES.items():
        parser = sub.add_parser(
            name,
            help=example.summary,
            description=example.description,
            formatter_class=formatter,
        )
        example.arguments(parser)
        parser.set_defaults(example=name)


def run(name: str, ns: argparse.Namespace) -> int:
    """Run the example `name` with its parsed arguments."""
    return EXAMPLES[name].run(ns)
