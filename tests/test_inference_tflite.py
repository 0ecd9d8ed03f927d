"""The tflite plugin against LiteRT called directly, here and through an agent.

MediaPipe's pretrained models (read from its wheel) find the face and the person in
scikit-image's astronaut photograph; tflite_model_run gives LiteRT's own outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("skimage")
pytest.importorskip("PIL")

from inference_data import (
    ASTRONAUT_FACE,
    FACE,
    POSE,
    SELFIE,
    astronaut,
    decoded,
    face_resource,
    litert_run,
    mediapipe_model,
    model_resource,
    pixels_in,
)
from inference_fixtures import agent as agent  # the fixture
from inference_fixtures import runtime_fixture

from vaccel import PluginType, Runtime, Session
from vaccel.ops.tf.lite import Tensor, TensorType
from vaccel.plugins.imaging.results import read_findings

#: MediaPipe's face detector (letterboxed; the astronaut is square, so stretched) in [-1, 1].
FACE_FEED = pixels_in(astronaut(), 128, 128, 2.0)[None] - np.float32(1.0)


runtime = runtime_fixture("tflite")


def session(runtime: Runtime) -> Session:
    """A session that prefers the tflite plugin (the agent also serves onnx)."""
    return Session(PluginType.TENSORFLOW, runtime=runtime)


def findings(path: str) -> dict[str, Any]:
    """A result image's findings, after checking it is a valid image of the photo's size."""
    assert decoded(Path(path).read_bytes()).size == (512, 512)
    return read_findings(path)


def inside(point: Any, box: Any) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def test_tflite_model_run_gives_litert_outputs(runtime: Runtime) -> None:
    model = mediapipe_model(FACE)
    expected = litert_run(model, FACE_FEED)
    resource = model_resource({"face.tflite": model})
    with session(runtime) as s:
        s.register_resource(resource)
        assert s.tflite_model_load(resource) is None
        outs, status = s.tflite_model_run(resource, [Tensor.from_numpy(FACE_FEED)], 2)
        first, _ = s.tflite_model_run(resource, [Tensor.from_numpy(FACE_FEED)])
        assert s.tflite_model_unload(resource) is None
    assert status == 0 and len(outs) == 2 and len(first) == 1
    for got, want in zip(outs, expected, strict=True):
        assert got.data_type == TensorType.FLOAT32 and got.dims == list(want.shape)
        np.testing.assert_array_equal(got.as_numpy(), want)
    np.testing.assert_array_equal(first[0].as_numpy(), expected[0])


def test_detect_finds_the_astronauts_face(runtime: Runtime) -> None:
    regressors, scores = litert_run(mediapipe_model(FACE), FACE_FEED)
    best = 1 / (1 + np.exp(-scores.reshape(-1).astype(np.float64)))
    with session(runtime) as s:
        s.register_resource(face_resource())
        path = s.detect(astronaut())
        found = findings(path)
        drawn = np.asarray(decoded(Path(path).read_bytes()))
    (face,) = found["detections"]
    assert face["label"] == "face" and face["score"] == pytest.approx(best.max(), abs=1e-6)
    x1, y1, x2, y2 = face["box"]
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE
    assert fx1 <= x1 < x2 <= fx2 and fy1 <= y1 < y2 <= fy2 and (x2 - x1) > 60
    right_eye, left_eye = face["keypoints"][:2]
    assert inside(right_eye, face["box"]) and inside(left_eye, face["box"])
    assert right_eye[0] < left_eye[0] and abs(right_eye[1] - left_eye[1]) < 20
    assert tuple(drawn[int((y1 + y2) / 2), int(x1) + 1]) == (255, 40, 40)  # the box


def test_segment_finds_the_astronaut(runtime: Runtime) -> None:
    (mask,) = litert_run(mediapipe_model(SELFIE), pixels_in(astronaut(), 256, 256)[None])
    original = np.asarray(decoded(astronaut()))
    with session(runtime) as s:
        s.register_resource(model_resource({"selfie.tflite": mediapipe_model(SELFIE)}))
        path = s.segment(astronaut())
        found = findings(path)
        tinted = np.asarray(decoded(Path(path).read_bytes()))
    assert found["foreground"] == pytest.approx(float((mask > 0.5).mean()), abs=0.01)
    assert 0.3 < found["foreground"] < 0.8
    x1, y1, x2, y2 = found["box"]
    face = ASTRONAUT_FACE
    assert x1 <= face[0] and y1 <= face[1] and x2 >= face[2] and y2 == 512
    centre = ((face[1] + face[3]) // 2, (face[0] + face[2]) // 2)
    assert tuple(tinted[centre]) != tuple(original[centre])  # the face is foreground
    assert tuple(tinted[60, 480]) == tuple(original[60, 480])  # the sky behind is not


def test_pose_finds_the_astronauts_body(runtime: Runtime) -> None:
    landmarks, presence, *_ = litert_run(
        mediapipe_model(POSE), pixels_in(astronaut(), 256, 256)[None]
    )
    expected = landmarks.reshape(39, 5)[:33, :2] * 2.0  # 256 -> 512 pixels
    with session(runtime) as s:
        s.register_resource(model_resource({"pose.tflite": mediapipe_model(POSE)}))
        found = findings(s.pose(astronaut()))
    points = np.array(found["keypoints"])
    assert points.shape == (33, 3)
    np.testing.assert_allclose(points[:, :2], expected, atol=1e-3)
    assert found["score"] == pytest.approx(float(presence.reshape(-1)[0]))  # a probability
    assert found["score"] > 0.5
    nose, left_shoulder, right_shoulder = points[0], points[11], points[12]
    assert inside(nose, ASTRONAUT_FACE) and nose[2] > 0.9
    assert min(left_shoulder[1], right_shoulder[1]) > ASTRONAUT_FACE[3] - 20
    assert abs(left_shoulder[0] - right_shoulder[0]) > 80


def test_classify_and_depth_read_litert_outputs(runtime: Runtime) -> None:
    """No TFLite classifier or depth model ships offline: this checks the TFLite path's
    numbers (the heads are the onnx plugin's, checked there on a trained classifier)."""
    pose = mediapipe_model(POSE)
    landmarks, *_ = litert_run(pose, pixels_in(astronaut(), 256, 256)[None])
    (mask,) = litert_run(mediapipe_model(SELFIE), pixels_in(astronaut(), 256, 256)[None])
    with session(runtime) as s:
        pose_model = model_resource({"pose.tflite": pose})
        s.register_resource(pose_model)
        tag, path = s.classify(astronaut())
        top = findings(path)["top"]
        s.unregister_resource(pose_model)
        s.register_resource(model_resource({"selfie.tflite": mediapipe_model(SELFIE)}))
        depth = findings(s.depth(astronaut()))
    assert top[0]["index"] == int(np.argmax(landmarks)) and tag.startswith(top[0]["label"])
    assert depth["max"] == pytest.approx(float(mask.max()), abs=0.02)
    assert depth["min"] == pytest.approx(float(mask.min()), abs=0.02)


def test_a_session_uses_its_latest_model(runtime: Runtime) -> None:
    with session(runtime) as s:
        s.register_resource(model_resource({"selfie.tflite": mediapipe_model(SELFIE)}))
        s.register_resource(face_resource())
        assert findings(s.detect(astronaut()))["model"] == "face_detection_short_range.tflite"
