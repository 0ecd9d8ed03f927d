"""The seed's example programs (`vaccel example NAME`), with vAccel's output.

Each prints what vAccel's C example prints, so a transcript taken with pyvaccel lines up
with the seed's: `Initialized session with id: N`, then the results.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from vaccel.arg import Arg
from vaccel.enums import ArgType, PluginType
from vaccel.errors import BadArgumentError, VaccelError
from vaccel.session import Session

VADD_A = [5.0, 1.0, 2.1, 1.2, 5.2]
VADD_B = [-2.2, 1.1, 6.4, 2.3, 6.1]


def example_image() -> Path:
    """The small JPEG pyvaccel ships for the classify example."""
    return Path(str(resources.files("vaccel.cli") / "data" / "example.jpg"))


def _session(flags: int = 0) -> Session:
    session = Session(flags)
    print(f"Initialized session with id: {session.id}")
    return session


def _floats(values: np.ndarray | list[float]) -> None:
    for v in values:
        print(f"{float(np.float32(v)):f}")


def _count(args: list[str], index: int, default: int, name: str) -> int:
    if len(args) <= index:
        return default
    try:
        value = int(args[index])
    except ValueError:
        raise BadArgumentError(message=f"{name} must be a number; got {args[index]!r}") from None
    if value < 1:
        raise BadArgumentError(message=f"{name} must be at least 1; got {value}")
    return value


def classify(args: list[str]) -> int:
    """`classify IMAGE N`: classify an image N times."""
    path = Path(args[0]) if args else example_image()
    iterations = _count(args, 1, 1, "N")
    try:
        image = path.read_bytes()
    except OSError as exc:
        raise BadArgumentError(message=f"cannot read image {str(path)!r}: {exc.strerror}") from None
    with _session() as session:
        print(f"Image size: {len(image)}B")
        for _ in range(iterations):
            tag, _name = session.classify(image)
            print(f"classification tags: {tag}")
    return 0


def vector_add(args: list[str]) -> int:
    """`pynq_vector_add_generic`: the seed's five-element float32 vector add."""
    with _session() as session:
        _floats(session.fpga_vadd(np.array(VADD_A, np.float32), np.array(VADD_B, np.float32)))
    return 0


def array_copy(args: list[str]) -> int:
    """`pynq_array_copy`: copy an int array through the accelerator."""
    a = list(range(1, 11))
    with _session() as session:
        for v in session.fpga_arraycopy(a):
            print(v)
    return 0


def mmult(args: list[str]) -> int:
    """`pynq_mmult`: multiply two 2x2 float matrices."""
    a = [1.0, 2.0, 3.0, 4.0]
    b = [5.0, 6.0, 7.0, 8.0]
    with _session() as session:
        _floats(session.fpga_mmult(a, b))
    return 0


def parallel(args: list[str]) -> int:
    """`pynq_parallel`: add and multiply two vectors in one call."""
    with _session() as session:
        add, mult = session.fpga_parallel(VADD_A, VADD_B)
        print("add:")
        _floats(add)
        print("mult:")
        _floats(mult)
    return 0


def minmax(args: list[str]) -> int:
    """`minmax [N]`: clip N doubles to [10, 5000] and report their min and max."""
    count = _count(args, 0, 2048, "N")
    data = np.linspace(-100.0, 10000.0, count)
    with _session() as session:
        _out, lo, hi = session.minmax(data.tobytes(), count, 10, 5000)
        print(f"min: {lo:f} max: {hi:f}")
    return 0


def sgemm(args: list[str]) -> int:
    """`sgemm [N]`: an N x N single-precision matrix product; prints C's checksum."""
    n = _count(args, 0, 64, "N")
    rng = np.random.default_rng(1)
    a = rng.random(n * n, dtype=np.float32)
    b = rng.random(n * n, dtype=np.float32)
    with _session() as session:
        c = session.sgemm(n, n, n, 1.0, a, n, b, n, 0.0, n)
        print(f"C[0]: {float(c[0]):f} sum: {float(np.sum(c)):f}")
    return 0


def noop(args: list[str]) -> int:
    """`noop`: the empty op."""
    with _session(PluginType.DEBUG) as session:
        session.noop()
    return 0


def exec_(args: list[str]) -> int:
    """`exec [LIBRARY SYMBOL] [N]`: run a function N times on one int argument."""
    library = args[0] if len(args) > 0 else "libmytestlib.so"
    symbol = args[1] if len(args) > 1 else "mytestfunc"
    iterations = _count(args, 2, 1, "N")
    with _session(PluginType.DEBUG) as session:
        for _ in range(iterations):
            out = session.exec(library, symbol, [Arg(10, ArgType.INT32)], [Arg(0, ArgType.INT32)])
            print(f"output: {out[0]}")
    return 0


EXAMPLES: dict[str, Callable[[list[str]], int]] = {
    "classify": classify,
    "pynq_vector_add_generic": vector_add,
    "pynq_vector_add": vector_add,
    "pynq_array_copy": array_copy,
    "pynq_mmult": mmult,
    "pynq_parallel": parallel,
    "minmax": minmax,
    "sgemm": sgemm,
    "noop": noop,
    "exec": exec_,
}


def run(name: str, args: list[str]) -> int:
    """Run one example; a VaccelError is printed and gives exit status 1."""
    try:
        example = EXAMPLES[name]
    except KeyError:
        print(f"unknown example {name!r}; choose from {', '.join(EXAMPLES)}", file=sys.stderr)
        return 2
    try:
        return example(args)
    except VaccelError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
