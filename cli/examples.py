"""vAccel's example programs (`vaccel example NAME`), with vAccel's output.

Each prints what vAccel's C example of the same name prints, so a transcript taken with
pyvaccel lines up with one taken with vAccel (the blog post "Remote FPGA acceleration:
vAccel on PYNQ-Z1", 2023, shows them): `Initialized session with id: N`, then the
results. Every example declares its arguments (`vaccel example NAME --help`).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vaccel.arg import Arg
from vaccel.enums import ArgType, PluginType, ResourceType
from vaccel.errors import BadArgumentError
from vaccel.ops import torch as torch_ops
from vaccel.ops.tf import lite
from vaccel.resource import Resource
from vaccel.session import Session

VADD_A = [5.0, 1.0, 2.1, 1.2, 5.2]
VADD_B = [-2.2, 1.1, 6.4, 2.3, 6.1]


class LocalError(BadArgumentError):
    """A mistake in an example's own arguments, found here before any plugin or agent."""


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


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _image_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LocalError(message=f"cannot read image {str(path)!r}: {exc.strerror}") from None


# ---------------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable); None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n:.0f} bytes"


def must_fit(nbytes: int, what: str) -> None:
    """Refuse, before allocating anything, a size this machine's free memory cannot hold."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise LocalError(
            message=f"{what} needs {_size(nbytes)} of memory; this machine has "
            f"{_size(free)} available: choose a smaller size"
        )


# ---------------------------------------------------------------------- model flows

#: The options of the model examples, and whether each one is a file of the resource.
MODEL_OPTIONS = {
    "--model": True,
    "--labels": True,
    "--preprocess": True,
    "--shape": False,
    "--out": False,
}


def _model_options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--model FILE` and friends out of a list of arguments; the rest."""
    options: dict[str, str] = {}
    rest: list[str] = []
    items = iter(args)
    for item in items:
        key, _, inline = item.partition("=")
        if key in MODEL_OPTIONS:
            value = inline or next(items, "")
            if not value:
                raise LocalError(message=f"{key} needs a value")
            options[key] = value
        else:
            rest.append(item)
    return options, rest


def _options(ns: argparse.Namespace) -> dict[str, str]:
    """The model options given on the command line, keyed by their flags."""
    return {
        key: getattr(ns, key[2:]) for key in MODEL_OPTIONS if getattr(ns, key[2:], None) is not None
    }


def _resource(options: dict[str, str]) -> Resource | None:
    """The MODEL resource the options name (None without --model)."""
    if "--model" not in options:
        if "--labels" in options or "--preprocess" in options:
            raise LocalError(message="--labels and --preprocess go with --model FILE")
        return None
    files = [options[k] for k in ("--model", "--labels", "--preprocess") if k in options]
    for name in files:
        if not Path(name).is_file():
            raise LocalError(message=f"no such file: {name!r}")
    preprocess = options.get("--preprocess")
    if preprocess is not None and Path(preprocess).name != "preprocess.json":
        raise LocalError(message=f"--preprocess {preprocess!r}: name it preprocess.json")
    return Resource(files, ResourceType.MODEL)


def _register(session: Session, resource: Resource | None) -> None:
    if resource is not None:
        session.register_resource(resource)


def _keep(path: str, out: str | None) -> str:
    """An image op's result: copied to --out when given (the run directory goes at exit)."""
    if out is None:
        return path
    try:
        shutil.copyfile(path, out)
    except OSError as exc:
        raise LocalError(message=f"--out {out!r}: {exc.strerror}") from None
    return out


#: The session hint a model file's kind asks for, so that the plugin for its runtime
#: serves the image ops even where another inference plugin is listed first (locally or
#: on the agent), as the Python API does with Session(PluginType.TENSORFLOW).
MODEL_HINTS = {".tflite": PluginType.TENSORFLOW, ".pt": PluginType.TORCH, ".pth": PluginType.TORCH}


def _hint(ns: argparse.Namespace) -> int:
    model = getattr(ns, "model", None)
    return int(MODEL_HINTS.get(Path(model).suffix.lower(), 0)) if model else 0


def _model_arguments(parser: argparse.ArgumentParser, labels: bool = True) -> None:
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="the model file, registered as a MODEL resource (*.tflite runs on a TENSORFLOW "
        "plugin, *.pt on a TORCH one: the session asks for that plugin type)",
    )
    if labels:
        parser.add_argument(
            "--labels", metavar="FILE", help="labels, one per line (*.txt), with --model"
        )
        parser.add_argument(
            "--preprocess",
            metavar="FILE",
            help="a preprocess.json (input size, layout, mean/std, resize, thresholds), "
            "with --model",
        )


# ---------------------------------------------------------------------- the examples


def classify(ns: argparse.Namespace) -> int:
    """Classify an image N times; print each classification tag."""
    path = Path(ns.image) if ns.image else example_image()
    image = _image_bytes(path)
    model = _resource(_options(ns))
    with _session(_hint(ns)) as session:
        _register(session, model)
        print(f"Image size: {len(image)}B")
        for _ in range(ns.n):
            tag, _name = session.classify(image)
            print(f"classification tags: {tag}")
    return 0


def _classify_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument(
        "image",
        metavar="IMAGE",
        nargs="?",
        help="the image to classify (JPEG, PNG, ...; default: the example image shipped "
        "with pyvaccel)",
    )
    parser.add_argument("n", metavar="N", nargs="?", type=count, default=1, help="iterations")


def _image_op(method: str, what: str) -> Callable[[argparse.Namespace], int]:
    def example(ns: argparse.Namespace) -> int:
        image = _image_bytes(Path(ns.image))
        model = _resource(_options(ns))
        with _session(_hint(ns)) as session:
            _register(session, model)
            print(f"Image size: {len(image)}B")
            for _ in range(ns.n):
                path = _keep(getattr(session, method)(image), ns.out)
                print(f"{what} image: {path}")
        return 0

    example.__doc__ = (
        f"Run {method} on an image N times; print the path of the {what} image.\n\n"
        "The image is written in the session's run directory, which goes at exit: --out "
        "keeps a copy."
    )
    return example


def _image_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument(
        "--out", metavar="FILE", help="copy the result image here (the run directory goes at exit)"
    )
    parser.add_argument("image", metavar="IMAGE", help="the input image (JPEG, PNG, ...)")
    parser.add_argument("n", metavar="N", nargs="?", type=count, default=1, help="iterations")


def _shape(text: str) -> list[int]:
    try:
        dims = [int(d) for d in text.split(",")]
    except ValueError:
        raise LocalError(message=f"--shape: dims such as 1,3,224,224; not {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise LocalError(message=f"--shape dims must be positive; got {text!r}")
    return dims


def _ramp(dims: list[int]) -> np.ndarray:
    nbytes = math.prod(dims) * 4
    must_fit(2 * nbytes, f"a float32 tensor of shape {','.join(map(str, dims))}")
    count = math.prod(dims)
    return np.linspace(0.0, 1.0, count, dtype=np.float32).reshape(dims)


def _print_tensors(tensors: list[Any]) -> None:
    for i, tensor in enumerate(tensors):
        values = np.asarray(tensor.as_numpy()).reshape(-1)[:4]
        shown = " ".join(f"{float(v):f}" for v in values)
        print(f"output {i}: dims {tensor.dims} values: {shown}{' ...' if tensor.size > 16 else ''}")


def _model_resource(ns: argparse.Namespace, what: str) -> Resource:
    resource = _resource(_options(ns))
    if resource is None:
        raise LocalError(message=f"give --model FILE ({what})")
    return resource


def torch_model(ns: argparse.Namespace) -> int:
    """Run a TorchScript model N times on a float32 ramp; print its outputs."""
    resource = _model_resource(ns, "a TorchScript file")
    dims = _shape(ns.shape)
    with _session(PluginType.TORCH) as session:
        session.register_resource(resource)
        session.torch_model_load(resource)
        for _ in range(ns.n):
            tensor: Any = torch_ops.Tensor.from_numpy(_ramp(dims))
            outputs = session.torch_model_run(resource, [tensor])
            _print_tensors(outputs)
    return 0


def tflite_model(ns: argparse.Namespace) -> int:
    """Run a TFLite model N times on a float32 ramp; print its outputs and status."""
    resource = _model_resource(ns, "a .tflite file")
    dims = _shape(ns.shape)
    with _session(PluginType.TENSORFLOW) as session:
        session.register_resource(resource)
        session.tflite_model_load(resource)
        for _ in range(ns.n):
            tensor: Any = lite.Tensor.from_numpy(_ramp(dims))
            outputs, status = session.tflite_model_run(resource, [tensor], 1)
            _print_tensors(outputs)
            print(f"status: {status}")
        session.tflite_model_unload(resource)
    return 0


def _tensor_model_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser, labels=False)
    parser.add_argument(
        "--shape",
        metavar="DIMS",
        default="1,4",
        help="the input tensor's dims, comma-separated (e.g. 1,3,224,224)",
    )
    parser.add_argument("n", metavar="N", nargs="?", type=count, default=1, help="iterations")


def vector_add(ns: argparse.Namespace) -> int:
    """Add two five-element float32 vectors (vAccel's PYNQ example); print the sums."""
    with _session() as session:
        _floats(session.fpga_vadd(np.array(VADD_A, np.float32), np.array(VADD_B, np.float32)))
    return 0


def array_copy(ns: argparse.Namespace) -> int:
    """Copy an int array (1 to 10) through the accelerator; print the copy."""
    a = list(range(1, 11))
    with _session() as session:
        for v in session.fpga_arraycopy(a):
            print(v)
    return 0


def mmult(ns: argparse.Namespace) -> int:
    """Multiply two 2x2 float matrices; print the product."""
    a = [1.0, 2.0, 3.0, 4.0]
    b = [5.0, 6.0, 7.0, 8.0]
    with _session() as session:
        _floats(session.fpga_mmult(a, b))
    return 0


def parallel(ns: argparse.Namespace) -> int:
    """Add and multiply two vectors in one call; print both results."""
    with _session() as session:
        add, mult = session.fpga_parallel(VADD_A, VADD_B)
        print("add:")
        _floats(add)
        print("mult:")
        _floats(mult)
    return 0


def minmax(ns: argparse.Namespace) -> int:
    """Clip N doubles (a ramp from -100 to 10000) to [10, 5000]; print their min and max."""
    n: int = ns.n
    must_fit(3 * 8 * n, f"minmax {n}")
    data = np.linspace(-100.0, 10000.0, n)
    with _session() as session:
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
    with _session() as session:
        c = session.sgemm(n, n, n, 1.0, a, n, b, n, 0.0, n)
        print(f"C[0]: {float(c[0]):f} sum: {float(np.sum(c)):f}")
    return 0


def noop(ns: argparse.Namespace) -> int:
    """Run the empty op (checks that a plugin answers)."""
    with _session(PluginType.DEBUG) as session:
        session.noop()
    return 0


def exec_(ns: argparse.Namespace) -> int:
    """Call SYMBOL of LIBRARY N times on one int32 argument (10); print its output.

    With the numpy plugin LIBRARY is a Python module and SYMBOL one of its functions,
    allowed by VACCEL_EXEC_ALLOW=module:function where the plugin runs (on the agent,
    for remote calls): `VACCEL_EXEC_ALLOW=math:factorial vaccel example exec math
    factorial`. exec is code execution.
    """
    with _session(PluginType.DEBUG) as session:
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
