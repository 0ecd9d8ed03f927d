"""The seed's example programs (`vaccel example NAME`), with vAccel's output.

Each prints what vAccel's C example prints, so a transcript taken with pyvaccel lines up
with the seed's: `Initialized session with id: N`, then the results.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vaccel.arg import Arg
from vaccel.enums import ArgType, PluginType, ResourceType
from vaccel.errors import BadArgumentError, VaccelError
from vaccel.ops import torch as torch_ops
from vaccel.ops.tf import lite
from vaccel.resource import Resource
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


def _image_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadArgumentError(message=f"cannot read image {str(path)!r}: {exc.strerror}") from None


def classify(args: list[str]) -> int:
    """`classify [--model FILE [--labels FILE] [--preprocess FILE]] IMAGE N`: classify an
    image N times (with a model: that model, as a MODEL resource of the session)."""
    options, args = _model_options(args)
    path = Path(args[0]) if args else example_image()
    iterations = _count(args, 1, 1, "N")
    image = _image_bytes(path)
    model = _resource(options)
    with _session() as session:
        _register(session, model)
        print(f"Image size: {len(image)}B")
        for _ in range(iterations):
            tag, _name = session.classify(image)
            print(f"classification tags: {tag}")
    return 0


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
    """`--model FILE` and friends out of an example's arguments; the rest."""
    options: dict[str, str] = {}
    rest: list[str] = []
    items = iter(args)
    for item in items:
        key, _, inline = item.partition("=")
        if key in MODEL_OPTIONS:
            value = inline or next(items, "")
            if not value:
                raise BadArgumentError(message=f"{key} needs a value")
            options[key] = value
        else:
            rest.append(item)
    return options, rest


def _resource(options: dict[str, str]) -> Resource | None:
    """The MODEL resource the options name (None without --model)."""
    if "--model" not in options:
        if "--labels" in options or "--preprocess" in options:
            raise BadArgumentError(message="--labels and --preprocess go with --model FILE")
        return None
    files = [options[k] for k in ("--model", "--labels", "--preprocess") if k in options]
    for name in files:
        if not Path(name).is_file():
            raise BadArgumentError(message=f"no such file: {name!r}")
    preprocess = options.get("--preprocess")
    if preprocess is not None and Path(preprocess).name != "preprocess.json":
        raise BadArgumentError(message=f"--preprocess {preprocess!r}: name it preprocess.json")
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
        raise BadArgumentError(message=f"--out {out!r}: {exc.strerror}") from None
    return out


def _image_op(method: str, what: str) -> Callable[[list[str]], int]:
    def example(args: list[str]) -> int:
        options, rest = _model_options(args)
        if not rest:
            raise BadArgumentError(message=f"{method}: give --model FILE and an IMAGE")
        image = _image_bytes(Path(rest[0]))
        iterations = _count(rest, 1, 1, "N")
        model = _resource(options)
        with _session() as session:
            _register(session, model)
            print(f"Image size: {len(image)}B")
            for _ in range(iterations):
                path = _keep(getattr(session, method)(image), options.get("--out"))
                print(f"{what} image: {path}")
        return 0

    example.__doc__ = (
        f"`{method} --model FILE [--labels FILE] [--preprocess FILE] [--out FILE] IMAGE N`: "
        f"the {what} image's path, N times (copied to --out: the run directory goes at exit)."
    )
    return example


def _shape(options: dict[str, str], default: str) -> list[int]:
    text = options.get("--shape", default)
    try:
        dims = [int(d) for d in text.split(",")]
    except ValueError:
        raise BadArgumentError(message=f"--shape: dims such as 1,3,224,224; not {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise BadArgumentError(message=f"--shape dims must be positive; got {text!r}")
    return dims


def _ramp(dims: list[int]) -> np.ndarray:
    count = int(np.prod(dims))
    return np.linspace(0.0, 1.0, count, dtype=np.float32).reshape(dims)


def _print_tensors(tensors: list[Any]) -> None:
    for i, tensor in enumerate(tensors):
        values = np.asarray(tensor.as_numpy()).reshape(-1)[:4]
        shown = " ".join(f"{float(v):f}" for v in values)
        print(f"output {i}: dims {tensor.dims} values: {shown}{' ...' if tensor.size > 16 else ''}")


def torch_model(args: list[str]) -> int:
    """`torch --model FILE [--shape DIMS] [N]`: run a TorchScript model on a float32 ramp."""
    options, rest = _model_options(args)
    resource = _resource(options)
    if resource is None:
        raise BadArgumentError(message="torch: give --model FILE (a TorchScript file)")
    dims = _shape(options, "1,4")
    with _session(PluginType.TORCH) as session:
        session.register_resource(resource)
        session.torch_model_load(resource)
        for _ in range(_count(rest, 0, 1, "N")):
            tensor: Any = torch_ops.Tensor.from_numpy(_ramp(dims))
            outputs = session.torch_model_run(resource, [tensor])
            _print_tensors(outputs)
    return 0


def tflite_model(args: list[str]) -> int:
    """`tflite --model FILE [--shape DIMS] [N]`: run a TFLite model on a float32 ramp."""
    options, rest = _model_options(args)
    resource = _resource(options)
    if resource is None:
        raise BadArgumentError(message="tflite: give --model FILE (a .tflite file)")
    dims = _shape(options, "1,4")
    with _session(PluginType.TENSORFLOW) as session:
        session.register_resource(resource)
        session.tflite_model_load(resource)
        for _ in range(_count(rest, 0, 1, "N")):
            tensor: Any = lite.Tensor.from_numpy(_ramp(dims))
            outputs, status = session.tflite_model_run(resource, [tensor], 1)
            _print_tensors(outputs)
            print(f"status: {status}")
        session.tflite_model_unload(resource)
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
    "detect": _image_op("detect", "detection"),
    "segment": _image_op("segment", "segmentation"),
    "pose": _image_op("pose", "pose"),
    "depth": _image_op("depth", "depth"),
    "torch": torch_model,
    "tflite": tflite_model,
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
