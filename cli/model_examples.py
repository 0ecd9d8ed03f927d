"""The model flows of `vaccel example`: classify, detect, segment, pose and depth with a
model resource (`--model`, `--labels`, `--preprocess`), and the torch and tflite tensor
examples."""

from __future__ import annotations

import argparse
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vaccel.enums import PluginType, ResourceType
from vaccel.ops import torch as torch_ops
from vaccel.ops.tf import lite
from vaccel.resource import Resource
from vaccel.session import Session

from .example_support import (
    LocalError,
    count,
    example_image,
    image_bytes,
    must_fit,
    open_session,
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


def classify(ns: argparse.Namespace) -> int:
    """Classify an image N times; print each classification tag."""
    path = Path(ns.image) if ns.image else example_image()
    image = image_bytes(path)
    model = _resource(_options(ns))
    with open_session(_hint(ns)) as session:
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
        image = image_bytes(Path(ns.image))
        model = _resource(_options(ns))
        with open_session(_hint(ns)) as session:
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
    with open_session(PluginType.TORCH) as session:
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
    with open_session(PluginType.TENSORFLOW) as session:
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
