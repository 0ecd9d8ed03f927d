"""The onnx plugin against onnxruntime called directly, here and through an agent.

classify names the right digit with a classifier trained here; the light reference
models the onnx package ships give their expected outputs through tf_model_run;
detect, segment, pose and depth find a red square with `redspot.onnx`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")
pytest.importorskip("PIL")

from agent_proc import AgentProcess
from inference_data import (
    DIGITS,
    REDSPOT_SIZE,
    astronaut,
    decoded,
    digit_png,
    digits,
    digits_resource,
    light_models,
    model_resource,
    onnxruntime_direct,
    pixels_in,
    ramp,
    red_square,
    redspot,
    redspot_resource,
    runtimes,
)
from inference_fixtures import agent as agent  # the fixture
from inference_fixtures import runtime_fixture

from vaccel import Runtime, Session
from vaccel.ops.tf import Node, Tensor
from vaccel.plugins.imaging.results import read_findings

#: Light models small enough to run in a test.
LIGHT = ["light_squeezenet", "light_bvlc_alexnet", "light_inception_v1", "light_resnet50"]
SQUARE = (40, 30, 80, 70)
SQUARE_IMAGE = (96, 128)


runtime = runtime_fixture("onnx")


def valid_png(path: str, size: tuple[int, int]) -> dict[str, Any]:
    """The findings of a result image that exists, decodes and has the input's size."""
    image = decoded(Path(path).read_bytes())
    assert image.size == size
    return read_findings(path)


def test_the_trained_classifier_is_a_good_one() -> None:
    assert digits()["acc"] > 0.9


def test_classify_names_the_right_digit(runtime: Runtime) -> None:
    data = digits()
    direct = onnxruntime_direct(data["model"])
    chosen = data["right"][::29]
    with Session(runtime=runtime) as s:
        s.register_resource(digits_resource())
        for index in chosen:
            image = digit_png(index)
            tag, path = s.classify(image)
            answer = DIGITS[data["targets"][index]]
            assert tag.startswith(f"{answer} ("), (index, tag)
            grey = pixels_in(image, 8, 8).mean(axis=2)
            expected = direct.run(None, {"image": grey[None, None].astype(np.float32)})[0][0]
            top = valid_png(path, (8, 8))["top"]
            assert top[0]["label"] == answer
            assert top[0]["score"] == pytest.approx(float(expected.max()), abs=1e-5)
            assert [t["index"] for t in top] == list(np.argsort(-expected, kind="stable")[:5])
            assert tag == f"{answer} ({expected.max():.2f})"


def test_classify_without_labels_names_the_class_number(runtime: Runtime) -> None:
    index = digits()["right"][0]
    with Session(runtime=runtime) as s:
        s.register_resource(digits_resource(labels=False))
        tag, _ = s.classify(digit_png(index))
    assert tag.startswith(f"class {digits()['targets'][index]} (")


@pytest.mark.parametrize("name", LIGHT)
def test_light_models_give_their_expected_outputs_through_tf_model_run(
    runtime: Runtime, name: str
) -> None:
    import onnx
    from onnx import numpy_helper

    folder = light_models()
    model = (folder / f"{name}.onnx").read_bytes()
    expected = numpy_helper.to_array(onnx.load_tensor(str(folder / f"{name}_output_0.pb")))
    direct = onnxruntime_direct(model)
    (inp,), (out,) = direct.get_inputs(), direct.get_outputs()
    feed = ramp(tuple(inp.shape))
    resource = model_resource({f"{name}.onnx": model})
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        assert s.tf_model_load(resource).code == 0
        outs, status = s.tf_model_run(
            resource, [Node(inp.name, 0)], [Tensor.from_numpy(feed)], [Node(out.name, 0)]
        )
        assert status.code == 0
        assert s.tf_model_unload(resource).code == 0
    got = outs[0].as_numpy()
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(got, direct.run(None, {inp.name: feed})[0])


def test_classify_with_a_light_model_matches_onnxruntime(runtime: Runtime) -> None:
    model = (light_models() / "light_squeezenet.onnx").read_bytes()
    direct = onnxruntime_direct(model)
    feed = pixels_in(astronaut(), 224, 224).transpose(2, 0, 1)[None]
    expected = direct.run(None, {direct.get_inputs()[0].name: feed})[0].reshape(-1)
    with Session(runtime=runtime) as s:
        s.register_resource(model_resource({"squeezenet.onnx": model}))
        tag, path = s.classify(astronaut())
        top = valid_png(path, (512, 512))["top"]
    assert [t["score"] for t in top] == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-6)
    assert tag == f"class {top[0]['index']} ({top[0]['score']:.2f})"


def _redspot_expected() -> list[np.ndarray[Any, Any]]:
    direct = onnxruntime_direct(redspot())
    feed = pixels_in(red_square(SQUARE, SQUARE_IMAGE), REDSPOT_SIZE, REDSPOT_SIZE)
    outputs: list[np.ndarray[Any, Any]] = direct.run(None, {"image": feed.transpose(2, 0, 1)[None]})
    return outputs


def test_detect_segment_pose_depth_find_the_red_square(runtime: Runtime) -> None:
    corners, boxes, scores, mask = _redspot_expected()
    height, width = SQUARE_IMAGE
    scale = np.array([width, height, width, height], np.float64)
    image = red_square(SQUARE, SQUARE_IMAGE)
    with Session(runtime=runtime) as s:
        s.register_resource(redspot_resource())
        detected = valid_png(s.detect(image), (width, height))
        segmented = valid_png(s.segment(image), (width, height))
        posed = valid_png(s.pose(image), (width, height))
        deep = valid_png(s.depth(image), (width, height))
    (found,) = detected["detections"]
    assert found["label"] == "red square" and found["score"] == pytest.approx(float(scores[0, 0]))
    np.testing.assert_allclose(found["box"], boxes.reshape(4) * scale, atol=1e-3)
    np.testing.assert_allclose(found["box"], SQUARE, atol=2.5)
    assert segmented["foreground"] == pytest.approx(40 * 40 / (height * width), abs=0.02)
    np.testing.assert_allclose(segmented["box"], SQUARE, atol=2.5)
    points = np.array(posed["keypoints"])[:, :2]
    np.testing.assert_allclose(points, corners.reshape(2, 2) * scale[:2], atol=1e-3)
    assert posed["score"] == pytest.approx(float(scores[0, 0]))
    assert deep["min"] == pytest.approx(float(mask.min()), abs=1e-3)
    assert deep["max"] == pytest.approx(float(mask.max()), abs=1e-3)


def test_a_result_image_shows_what_was_found(runtime: Runtime) -> None:
    image = red_square(SQUARE, SQUARE_IMAGE)
    with Session(runtime=runtime) as s:
        s.register_resource(redspot_resource())
        boxed = np.asarray(decoded(Path(s.detect(image)).read_bytes()))
        tinted = np.asarray(decoded(Path(s.segment(image)).read_bytes()))
    x1, y1, x2, y2 = SQUARE
    assert tuple(boxed[(y1 + y2) // 2, x2 - 1]) == (255, 40, 40)  # the box's right edge
    assert tuple(tinted[0, 0]) == (90, 90, 90)  # background untouched
    assert tuple(tinted[(y1 + y2) // 2, (x1 + x2) // 2]) != (230, 20, 20)  # square tinted


def test_remote_result_images_come_back_into_the_clients_session(agent: AgentProcess) -> None:
    runtime = next(runtimes("remote", "onnx", agent))
    try:
        with Session(runtime=runtime) as s:
            s.register_resource(redspot_resource())
            path = s.detect(red_square(SQUARE, SQUARE_IMAGE))
            named = s.segment(red_square(SQUARE, SQUARE_IMAGE))
            assert path.startswith(s.rundir) and named.startswith(s.rundir)
            valid_png(path, (SQUARE_IMAGE[1], SQUARE_IMAGE[0]))
    finally:
        runtime.close()


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_boxes_and_masks_map_back_however_the_image_was_resized(
    runtime: Runtime, resize: str
) -> None:
    image = red_square(SQUARE, SQUARE_IMAGE)
    config = f'{{"resize": "{resize}"}}'.encode()
    resource = model_resource({"redspot.onnx": redspot(), "preprocess.json": config})
    with Session(runtime=runtime) as s:
        s.register_resource(resource)
        detected = valid_png(s.detect(image), (SQUARE_IMAGE[1], SQUARE_IMAGE[0]))
        segmented = valid_png(s.segment(image), (SQUARE_IMAGE[1], SQUARE_IMAGE[0]))
    (found,) = detected["detections"]
    np.testing.assert_allclose(found["box"], SQUARE, atol=3.5)
    np.testing.assert_allclose(segmented["box"], SQUARE, atol=3.5)
