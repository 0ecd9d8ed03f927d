"""Models, images and fixtures for the inference tests, all made or found offline.

- MediaPipe's pretrained TFLite models, read from the mediapipe wheel that `make install`
  downloads into build/mediapipe (mediapipe itself is never installed or imported).
- scikit-image's bundled photographs (the astronaut has a face and a person).
- A digit classifier trained here on scikit-learn's bundled digits, exported to ONNX
  with onnx.helper: its answers are known.
- `redspot.onnx`, built with onnx.helper: finds a red square (its mask, box, corners).
- The synthetic-weight reference models the onnx package ships with expected outputs.
- TorchScript modules made with torch.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaccel import Config, Resource, ResourceType, Runtime

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "build" / "mediapipe"
MODULES = "mediapipe/modules/"
FACE = "face_detection/face_detection_short_range.tflite"
SELFIE = "selfie_segmentation/selfie_segmentation.tflite"
POSE = "pose_landmark/pose_landmark_full.tflite"
#: MediaPipe's face detector takes [-1, 1] values, letterboxed.
FACE_CONFIG = {"mean": 0.5, "std": 0.5, "resize": "letterbox"}
#: Every plugin an agent under test serves.
AGENT_PLUGINS = "onnx:tflite:torch"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: Where the astronaut's face is (512 x 512 photo), by eye: x1, y1, x2, y2.
ASTRONAUT_FACE = (165, 60, 290, 195)

F32 = np.float32


# ---------------------------------------------------------------------- images


def png(pixels: np.ndarray[Any, Any]) -> bytes:
    """An array (H x W or H x W x 3, uint8) as PNG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def jpeg(pixels: np.ndarray[Any, Any]) -> bytes:
    """An RGB array as JPEG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


@cache
def astronaut() -> bytes:
    """scikit-image's astronaut photograph (512 x 512): a face and a person."""
    import skimage.data

    return png(skimage.data.astronaut())


def decoded(data: bytes) -> Any:
    """An image's bytes as a Pillow RGB image (as the plugins decode it)."""
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def pixels_in(data: bytes, height: int, width: int, scale: float = 1.0) -> np.ndarray[Any, Any]:
    """An image stretched to height x width, as float32 HWC values in [0, 1] * scale."""
    from PIL import Image

    resized = decoded(data).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, F32) / F32(255.0) * F32(scale)


def red_square(box: tuple[int, int, int, int], size: tuple[int, int] = (96, 128)) -> bytes:
    """A grey picture (height, width) with a red square at box (x1, y1, x2, y2)."""
    height, width = size
    pixels = np.full((height, width, 3), 90, np.uint8)
    x1, y1, x2, y2 = box
    pixels[y1:y2, x1:x2] = (230, 20, 20)
    return png(pixels)


# ---------------------------------------------------------------------- MediaPipe


def mediapipe_wheel() -> Path:
    """The mediapipe wheel make install fetched (fails, with the fix, when absent)."""
    found = sorted(WHEELS.glob("mediapipe-*.whl"))
    if not found:
        pytest.fail(f"no mediapipe wheel in {WHEELS}: run make install (it downloads it)")
    return found[-1]


@cache
def mediapipe_model(path: str) -> bytes:
    """A TFLite model file from inside the mediapipe wheel."""
    with zipfile.ZipFile(mediapipe_wheel()) as wheel:
        return wheel.read(MODULES + path)


def model_resource(files: dict[str, bytes]) -> Resource:
    """A MODEL resource holding these files (as it arrives on an agent: bytes and names)."""
    return Resource(None, ResourceType.MODEL, blobs=list(files.values()), names=list(files))


def face_resource() -> Resource:
    """MediaPipe's short-range face detector, its label and its preprocessing."""
    return model_resource(
        {
            "face_detection_short_range.tflite": mediapipe_model(FACE),
            "labels.txt": b"face\n",
            "preprocess.json": json.dumps(FACE_CONFIG).encode(),
        }
    )


# ---------------------------------------------------------------------- ONNX models


def onnx_bytes(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> bytes:
    """A graph as an ONNX model's bytes (opset 13), checked by onnx."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "test", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@cache
def digits() -> dict[str, Any]:
    """A softmax regression trained on sklearn's digits, exported to ONNX.

    The model takes [1, 1, 8, 8] grey values in [0, 1]; the held-out images and their
    true digits come with it, and the images sklearn's own model classifies right.
    """
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    data = load_digits()
    images, targets = data.images / 16.0, data.target  # values in [0, 1], as the model's
    flat = images.reshape(-1, 64)
    train = np.arange(len(images)) % 5 != 0
    with threadpool_limits(1):  # threads only slow a fit this small down
        fit = LogisticRegression(max_iter=1000).fit(flat[train], targets[train])
    held = np.flatnonzero(~train)
    predicted = fit.predict(np.rint(flat[held] * 255.0) / 255.0)  # as a PNG holds them
    right = [int(i) for i, p in zip(held, predicted, strict=True) if p == targets[i]]
    weights = fit.coef_.T.astype(F32)
    nodes = [
        helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    model = onnx_bytes(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
        [
            numpy_helper.from_array(np.array([1, 64], np.int64), "flat_shape"),
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(fit.intercept_.astype(F32), "b"),
        ],
    )
    accuracy = float(np.mean([i in right for i in held]))
    return {"model": model, "images": images, "targets": targets, "right": right, "acc": accuracy}


def digit_png(index: int, scale: int = 1) -> bytes:
    """Held-out digit `index` as a grey PNG, `scale` times its 8 x 8 size."""
    values = digits()["images"][index] * 255.0
    pixels = np.rint(values).astype(np.uint8)
    return png(np.kron(pixels, np.ones((scale, scale), np.uint8)))


def digits_resource(labels: bool = True) -> Resource:
    """The digit classifier (with its labels file)."""
    files = {"digits.onnx": digits()["model"]}
    if labels:
        files["digits.txt"] = "\n".join(DIGITS).encode() + b"\n"
    return model_resource(files)


REDSPOT_SIZE = 64


@cache
def redspot() -> bytes:
    """`redspot.onnx`: [1, 3, 64, 64] in; out: corners [1, 2, 2], box [1, 1, 4], score [1, 1]
    and the red mask [1, 1, 64, 64] (red where R - (G + B) / 2 > 0.25)."""
    from onnx import TensorProto, helper, numpy_helper

    n = REDSPOT_SIZE
    k = 40.0
    h = helper.make_node
    weight = np.array([k, -k / 2, -k / 2], F32).reshape(1, 3, 1, 1)
    nodes = [
        h("Conv", ["image", "w", "bias"], ["redness"]),
        h("Sigmoid", ["redness"], ["mask"]),
        h("ReduceMax", ["mask"], ["score"], axes=[1, 2, 3], keepdims=0),
        h("Reshape", ["score", "one_one"], ["scores"]),
    ]
    ends = []
    for axis, name in ((2, "x"), (3, "y")):  # max over rows gives the column profile
        nodes += [
            h("ReduceMax", ["mask"], [f"{name}_profile"], axes=[1, axis], keepdims=0),
            h("Greater", [f"{name}_profile", "half"], [f"{name}_on"]),
            h("Cast", [f"{name}_on"], [f"{name}_onf"], to=TensorProto.FLOAT),
            h("ArgMax", [f"{name}_onf"], [f"{name}1i"], axis=1, keepdims=1),
            h("ArgMax", [f"{name}_onf"], [f"{name}2l"], axis=1, keepdims=1, select_last_index=1),
            h("Cast", [f"{name}1i"], [f"{name}1f"], to=TensorProto.FLOAT),
            h("Cast", [f"{name}2l"], [f"{name}2f"], to=TensorProto.FLOAT),
            h("Div", [f"{name}1f", "size"], [f"{name}1"]),
            h("Add", [f"{name}2f", "one"], [f"{name}2p"]),
            h("Div", [f"{name}2p", "size"], [f"{name}2"]),
        ]
        ends.append(name)
    nodes += [
        h("Concat", ["x1", "y1", "x2", "y2"], ["box_flat"], axis=1),
        h("Reshape", ["box_flat", "box_shape"], ["boxes"]),
        h("Reshape", ["box_flat", "corner_shape"], ["corners"]),
    ]
    f = TensorProto.FLOAT
    return onnx_bytes(
        nodes,
        [helper.make_tensor_value_info("image", f, [1, 3, n, n])],
        [
            helper.make_tensor_value_info("corners", f, [1, 2, 2]),
            helper.make_tensor_value_info("boxes", f, [1, 1, 4]),
            helper.make_tensor_value_info("scores", f, [1, 1]),
            helper.make_tensor_value_info("mask", f, [1, 1, n, n]),
        ],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.array([-k * 0.25], F32), "bias"),
            numpy_helper.from_array(np.array(0.5, F32), "half"),
            numpy_helper.from_array(np.array(float(n), F32), "size"),
            numpy_helper.from_array(np.array(1.0, F32), "one"),
            numpy_helper.from_array(np.array([1, 1], np.int64), "one_one"),
            numpy_helper.from_array(np.array([1, 1, 4], np.int64), "box_shape"),
            numpy_helper.from_array(np.array([1, 2, 2], np.int64), "corner_shape"),
        ],
    )


def redspot_resource() -> Resource:
    """redspot.onnx and its one label."""
    return model_resource({"redspot.onnx": redspot(), "labels.txt": b"red square\n"})


def light_models() -> Path:
    """The onnx package's synthetic-weight reference models and expected outputs."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def ramp(shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """The input the onnx backend tests feed the light models: arange(n) / n."""
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(F32)


# ---------------------------------------------------------------------- fixtures


def onnxruntime_direct(model: bytes) -> Any:
    """onnxruntime called directly, for the expected answers."""
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def litert_direct(model: bytes) -> Any:
    """A LiteRT interpreter called directly, for the expected answers."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    return interpreter


def litert_run(model: bytes, *feeds: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Every output of a TFLite model for these inputs, straight from LiteRT."""
    interpreter = litert_direct(model)
    for detail, feed in zip(interpreter.get_input_details(), feeds, strict=True):
        interpreter.set_tensor(detail["index"], feed)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def runtimes(where: str, local_plugins: str, agent: Any) -> Iterator[Runtime]:
    """A runtime that runs ops here (`local`) or through the agent (`remote`)."""
    if where == "local":
        runtime = Runtime(Config(plugins=local_plugins, log_level=0))
    else:
        runtime = Runtime(Config(plugins="rpc", rpc_address=agent.addresses[0], log_level=0))
    yield runtime
    runtime.close()
