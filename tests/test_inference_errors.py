"""Bad input to the inference plugins gets a VaccelError that names what is wrong,
here and through an agent: corrupt models, models that take no image, labels files
that are missing or do not fit, images that are not images, tensors of the wrong type
or shape, model ops on resources of the wrong kind, preprocess.json mistakes."""

from __future__ import annotations

import importlib.util
import io
import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

from inference_data import (
    AGENT_PLUGINS,
    DIGITS,
    FACE,
    astronaut,
    digit_png,
    digits,
    digits_resource,
    face_resource,
    mediapipe_model,
    model_resource,
    onnx_bytes,
)
from inference_fixtures import agent as agent  # the fixture
from inference_fixtures import runtime_fixture

from vaccel import Config, PluginType, Resource, ResourceType, Runtime, Session
from vaccel.errors import BadArgumentError, PluginError
from vaccel.ops import torch as torch_ops
from vaccel.ops.tf import Node
from vaccel.ops.tf import Tensor as TFTensor
from vaccel.ops.tf.lite import Tensor as LiteTensor

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+`:DeprecationWarning")

GARBAGE = bytes(range(256)) * 8


runtime = runtime_fixture(AGENT_PLUGINS)


def vector_model(dims: list[Any]) -> bytes:
    """An ONNX model whose input is not an image: [1, 10] -> softmax."""
    from onnx import TensorProto, helper

    return onnx_bytes(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [],
    )


def pooled_model() -> bytes:
    """An ONNX classifier of images of any size: global average pool -> softmax."""
    from onnx import TensorProto, helper

    return onnx_bytes(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Softmax", ["flat"], ["p"], axis=1),
        ],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3])],
        [],
    )


def torchscript() -> bytes:
    """A TorchScript Linear(4, 3)."""
    import torch

    out = io.BytesIO()
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 3).eval(), torch.zeros((1, 4))), out)
    return out.getvalue()


def test_a_corrupt_model_is_named(runtime: Runtime) -> None:
    with Session(runtime=runtime) as s:
        onnx_model = model_resource({"broken.onnx": GARBAGE})
        s.register_resource(onnx_model)
        with pytest.raises(
            BadArgumentError, match=r"'broken.onnx' \(resource \d+\) is not an ONNX"
        ):
            s.classify(digit_png(0))
        lite = model_resource({"broken.tflite": GARBAGE})
        s.register_resource(lite)
        with pytest.raises(BadArgumentError, match=r"'broken.tflite' .* not a TFLite model"):
            s.tflite_model_load(lite)
        script = model_resource({"broken.pt": b"PK" + GARBAGE})
        s.register_resource(script)
        with pytest.raises(BadArgumentError, match=r"'broken.pt' .* not a TorchScript model"):
            s.torch_model_load(script)


def test_a_model_that_takes_no_image(runtime: Runtime) -> None:
    with Session(runtime=runtime) as s:
        s.register_resource(model_resource({"vector.onnx": vector_model([1, 10])}))
        with pytest.raises(BadArgumentError, match=r"'vector.onnx' does not take an image: .*'x'"):
            s.detect(astronaut())


def test_a_model_of_any_image_size_needs_its_size(runtime: Runtime) -> None:
    with Session(runtime=runtime) as s:
        model = model_resource({"pooled.onnx": pooled_model()})
        s.register_resource(model)
        with pytest.raises(BadArgumentError, match=r'takes images of any size.*"size"'):
            s.classify(astronaut())
        s.unregister_resource(model)
        sized = {"pooled.onnx": pooled_model(), "preprocess.json": b'{"size": [32, 48]}'}
        s.register_resource(model_resource(sized))
        tag, _ = s.classify(astronaut())
    assert tag.startswith("class ")


def test_labels_that_are_missing_or_do_not_fit(runtime: Runtime) -> None:
    model = digits()["model"]
    with Session(runtime=runtime) as s:
        named = model_resource(
            {"digits.onnx": model, "preprocess.json": json.dumps({"labels": "synset.txt"}).encode()}
        )
        s.register_resource(named)
        with pytest.raises(BadArgumentError, match=r"labels file 'synset.txt', which the model"):
            s.classify(digit_png(0))
        s.unregister_resource(named)
        short = model_resource({"digits.onnx": model, "three.txt": b"a\nb\nc\n"})
        s.register_resource(short)
        with pytest.raises(BadArgumentError, match=r"3 labels; model 'digits.onnx' scores 10"):
            s.classify(digit_png(0))
        s.unregister_resource(short)
        two = model_resource({"digits.onnx": model, "a.txt": b"x\n", "b.txt": b"y\n"})
        s.register_resource(two)
        with pytest.raises(BadArgumentError, match=r"several .txt files \(a.txt, b.txt\)"):
            s.classify(digit_png(0))


def test_a_missing_labels_file_on_the_command_line(tmp_path: Any) -> None:
    from vaccel.cli import model_examples

    (tmp_path / "digits.onnx").write_bytes(digits()["model"])
    (tmp_path / "digit.png").write_bytes(digit_png(0))
    args = ["--model", str(tmp_path / "digits.onnx"), "--labels", str(tmp_path / "nope.txt")]
    with pytest.raises(BadArgumentError, match=r"no such file: .*nope.txt"):
        model_examples._resource(
            model_examples._model_options([*args, str(tmp_path / "digit.png")])[0]
        )


def test_an_image_that_is_not_an_image(runtime: Runtime) -> None:
    truncated = digit_png(0)[:40]
    with Session(runtime=runtime) as s:
        s.register_resource(digits_resource())
        with pytest.raises(BadArgumentError, match=r"not an image Pillow can decode"):
            s.classify(b"certainly not a picture")
        with pytest.raises(BadArgumentError, match=r"image: 40 bytes"):
            s.segment(truncated)


def test_an_image_op_without_a_model_it_can_run(runtime: Runtime) -> None:
    with Session(runtime=runtime) as s:
        with pytest.raises(BadArgumentError, match=r"no model is registered with session"):
            s.classify(digit_png(0))
        s.register_resource(face_resource())
        with pytest.raises(BadArgumentError, match=r"onnx plugin runs ONNX models.*\.tflite"):
            s.classify(digit_png(0))  # onnx serves image ops first; the hint picks tflite:
    with Session(PluginType.TENSORFLOW, runtime=runtime) as s:
        s.register_resource(face_resource())
        with pytest.raises(BadArgumentError, match=r"classify: cannot read .*\[1, 896, 16\]"):
            s.classify(astronaut())  # ... which runs the model: a detector gives no classes


def test_tensors_of_the_wrong_type_or_shape(runtime: Runtime) -> None:
    face = model_resource({"face.tflite": mediapipe_model(FACE)})
    with Session(runtime=runtime) as s:
        s.register_resource(face)
        ints = LiteTensor.from_numpy(np.zeros((1, 128, 128, 3), np.int32))
        with pytest.raises(BadArgumentError, match=r"in_tensors\[0\] is INT32; .* takes FLOAT32"):
            s.tflite_model_run(face, [ints])
        small = LiteTensor.from_numpy(np.zeros((1, 64, 64, 3), np.float32))
        with pytest.raises(BadArgumentError, match=r"in_tensors\[0\] has dims \[1, 64, 64, 3\]"):
            s.tflite_model_run(face, [small])
        with pytest.raises(BadArgumentError, match=r"takes 1 input tensors .*; got 2"):
            s.tflite_model_run(face, [small, small])
        right = LiteTensor.from_numpy(np.zeros((1, 128, 128, 3), np.float32))
        with pytest.raises(BadArgumentError, match=r"nr_out_tensors is 3; .* has 2 outputs"):
            s.tflite_model_run(face, [right], 3)


def test_tf_model_run_tensors_and_nodes_on_onnx(runtime: Runtime) -> None:
    resource = digits_resource()
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        out = [Node("probabilities", 0)]
        doubles = TFTensor.from_numpy(np.zeros((1, 1, 8, 8), np.float64))
        with pytest.raises(BadArgumentError, match=r"in_tensors\[0\] is DOUBLE; .* takes FLOAT"):
            s.tf_model_run(resource, [Node("image", 0)], [doubles], out)
        flat = TFTensor.from_numpy(np.zeros((1, 64), np.float32))
        with pytest.raises(BadArgumentError, match=r"has dims \[1, 64\]"):
            s.tf_model_run(resource, [Node("image", 0)], [flat], out)
        with pytest.raises(BadArgumentError, match=r"in_nodes\[0\] is \('pixels', 0\)"):
            s.tf_model_run(resource, [Node("pixels", 0)], [flat], out)
        right = TFTensor.from_numpy(np.zeros((1, 1, 8, 8), np.float32))
        with pytest.raises(BadArgumentError, match=r"out_nodes\[0\] is \('probabilities', 1\)"):
            s.tf_model_run(resource, [Node("image", 0)], [right], [Node("probabilities", 1)])
        outs, status = s.tf_model_run(resource, [Node("image", 0)], [right], out)
    assert status.code == 0 and outs[0].dims == [1, len(DIGITS)]


def test_torch_tensors_the_model_refuses(runtime: Runtime) -> None:
    resource = model_resource({"linear.pt": torchscript()})
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        ints = torch_ops.Tensor.from_numpy(np.zeros((2, 4), np.int32))
        with pytest.raises(BadArgumentError, match=r"refused in_tensors \(INT \[2, 4\]\)"):
            s.torch_model_run(resource, [ints])
        wide = torch_ops.Tensor.from_numpy(np.zeros((2, 5), np.float32))
        with pytest.raises(BadArgumentError, match=r"refused in_tensors \(FLOAT \[2, 5\]\): .+"):
            s.torch_model_run(resource, [wide])
        right = torch_ops.Tensor.from_numpy(np.zeros((2, 4), np.float32))
        with pytest.raises(BadArgumentError, match=r"nr_out_tensors is 2; .* returned 1"):
            s.torch_model_run(resource, [right], 2)


def test_model_ops_on_resources_of_the_wrong_kind(runtime: Runtime) -> None:
    data = Resource.from_numpy(np.zeros(4, np.float32))
    onnx_model = digits_resource()
    lite = face_resource()
    with Session(runtime=runtime) as s:
        for resource in (data, onnx_model, lite):
            s.register_resource(resource)
        with pytest.raises(BadArgumentError, match=r"needs a MODEL resource; .* is DATA"):
            s.tflite_model_load(data)
        with pytest.raises(BadArgumentError, match=r"holds no TFLite model \(it holds: digits"):
            s.tflite_model_load(onnx_model)
        with pytest.raises(BadArgumentError, match=r"holds no TorchScript model .*\.tflite"):
            s.torch_model_load(lite)
        with pytest.raises(BadArgumentError, match=r"holds no ONNX model .*\.tflite"):
            s.tf_model_load(lite)
        with pytest.raises(BadArgumentError, match=r"resource \d+ is not loaded in session"):
            s.tflite_model_unload(lite)


def test_preprocess_json_mistakes_are_named(runtime: Runtime) -> None:
    cases = {
        b'{"sise": [8, 8]}': r"unknown keys \['sise'\]",
        b'{"mean": "grey"}': r"mean must be a number or a list",
        b'{"size": [16, 16]}': r"size \[16, 16\] but model 'digits.onnx' takes 8x8",
        b"{not json": r"not valid JSON",
        b'{"std": [1, 1, 1]}': r"std has 3 values for 1 channels",
    }
    with Session(runtime=runtime) as s:
        for text, message in cases.items():
            resource = model_resource({"digits.onnx": digits()["model"], "preprocess.json": text})
            s.register_resource(resource)
            with pytest.raises(BadArgumentError, match=r"preprocess.json: " + message):
                s.classify(digit_png(0))
            s.unregister_resource(resource)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TF is here")
def test_the_tf_plugin_refuses_to_load_without_tensorflow() -> None:
    with pytest.raises(PluginError, match=r"needs TensorFlow.*pip install '\.\[tf\]' in the"):
        Runtime(Config(plugins="tf", log_level=0))
    Resource(None, ResourceType.MODEL, blobs=[b"x"], names=["x"])  # nothing else broke
