"""A model's outputs -> what each image op reports (classes, boxes, masks, keypoints, depth).

The layouts read here are the common ones: class scores ([1, C]); raw SSD regressions
with anchors (MediaPipe detectors), decoded boxes with scores, or TensorFlow's four
detection outputs; a mask or per-class map ([1, H, W, C] or [1, C, H, W]); flat landmark
vectors ([1, K*D], MediaPipe) or heatmaps; a depth map. Coordinates come back in the
original image's pixels. A layout that cannot be read is a BadArgumentError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from vaccel.errors import BadArgumentError

from .anchors import decode_ssd, nms, ssd_anchors, strides_for
from .config import ModelConfig
from .preprocess import InputPlan, Transform

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Ranked:
    """One class and its probability."""

    index: int
    label: str
    score: float


@dataclass
class Detection:
    """One box in original image pixels (x1, y1, x2, y2), with its keypoints."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    keypoints: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Keypoints:
    """Landmarks in original image pixels (x, y, score) and the model's overall score."""

    points: list[tuple[float, float, float]]
    score: float | None


@dataclass
class Map:
    """A per-pixel result at the original image's size."""

    values: Array
    classes: Array | None = None


def _shapes(outputs: list[Array]) -> str:
    return ", ".join(str(list(o.shape)) for o in outputs)


def _unreadable(op: str, model: str, outputs: list[Array], want: str) -> BadArgumentError:
    return BadArgumentError(
        message=f"{op}: cannot read the outputs of model {model!r} ({_shapes(outputs)}); "
        f"{op} reads {want}"
    )


def probabilities(x: Array) -> Array:
    """Scores as probabilities: kept when already in [0, 1], else passed through a sigmoid."""
    x = x.astype(np.float64)
    if x.size and x.min() >= 0.0 and x.max() <= 1.0:
        return x
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -100.0, 100.0))))


def softmax(x: Array, axis: int = -1) -> Array:
    """A softmax, unless the scores already are a distribution."""
    x = x.astype(np.float64)
    if x.size and x.min() >= 0.0 and np.allclose(x.sum(axis=axis), 1.0, atol=1e-3):
        return x
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def label_of(labels: list[str] | None, index: int) -> str:
    """A class's label, or `class N` without a labels file."""
    if labels is not None and 0 <= index < len(labels):
        return labels[index]
    return f"class {index}"


# ---------------------------------------------------------------------- classify


def classify(
    outputs: list[Array], labels: list[str] | None, model: str, top: int = 5
) -> list[Ranked]:
    """The `top` best classes of the first output, best first."""
    first = outputs[0] if outputs else np.zeros(0)
    if first.size < 2 or first.dtype.kind not in "fiu" or sum(d > 1 for d in first.shape) != 1:
        raise _unreadable("classify", model, outputs, "class scores ([1, C], C > 1)")
    scores = softmax(outputs[0].reshape(-1))
    if labels is not None and len(labels) != scores.size:
        raise BadArgumentError(
            message=f"classify: the labels file has {len(labels)} labels; model {model!r} "
            f"scores {scores.size} classes"
        )
    order = np.argsort(-scores, kind="stable")[:top]
    return [Ranked(int(i), label_of(labels, int(i)), float(scores[i])) for i in order]


# ---------------------------------------------------------------------- spatial outputs


def spatial(x: Array) -> Array | None:
    """An output as (H, W, C) when it is a map ([H, W], [1, H, W], NHWC or NCHW), else None."""
    shape = x.shape
    found: Array | None = None
    if x.ndim == 2 and min(shape) >= 8:
        found = x[:, :, None]
    elif x.ndim == 3 and shape[0] == 1 and min(shape[1:]) >= 8:
        found = x[0][:, :, None]
    elif x.ndim == 4 and shape[0] == 1:
        if shape[3] <= shape[1] and min(shape[1:3]) >= 8:
            found = x[0]  # NHWC
        elif min(shape[2:4]) >= 8:
            found = x[0].transpose(1, 2, 0)  # NCHW -> HWC
    return found


def to_original(values: Array, transform: Transform) -> Array:
    """A map over the model's input (any resolution) resampled onto the original image."""
    height, width = values.shape
    a = width / transform.sx
    e = height / transform.sy
    image = Image.fromarray(np.ascontiguousarray(values, np.float32))  # mode F
    moved = image.transform(
        (transform.width, transform.height),
        Image.Transform.AFFINE,
        (a, 0.0, -transform.ox * a, 0.0, e, -transform.oy * e),
        Image.Resampling.BILINEAR,
    )
    return np.asarray(moved, np.float32)


def segment(outputs: list[Array], transform: Transform, model: str) -> Map:
    """Foreground probability (and classes for per-class maps) at the original size."""
    found = next((m for m in map(spatial, outputs) if m is not None), None)
    if found is None:
        raise _unreadable("segment", model, outputs, "a mask ([1, H, W, C] or [1, C, H, W])")
    if found.shape[2] == 1:
        return Map(to_original(probabilities(found[:, :, 0]), transform))
    scores = softmax(found, axis=2)
    classes = np.argmax(scores, axis=2).astype(np.float32)
    foreground = to_original(1.0 - scores[:, :, 0], transform)
    moved = to_original(classes, transform)
    return Map(foreground, np.rint(moved).astype(np.int32))


def depth(outputs: list[Array], transform: Transform, model: str) -> Map:
    """The first output read as a depth (or disparity) map, at the original size."""
    found = next((m for m in map(spatial, outputs) if m is not None), None)
    if found is None:
        raise _unreadable("depth", model, outputs, "a depth map ([1, H, W] or [1, H, W, 1])")
    return Map(to_original(found[:, :, 0].astype(np.float32), transform))


# ---------------------------------------------------------------------- detect


def _to_pixels(points: Array, transform: Transform) -> Array:
    out = np.empty_like(points, dtype=np.float64)
    out[..., 0] = transform.ox + transform.sx * points[..., 0]
    out[..., 1] = transform.oy + transform.sy * points[..., 1]
    return out


def _class_scores(scores: Array, labels: list[str] | None) -> tuple[Array, Array]:
    if scores.ndim == 1 or scores.shape[1] == 1:
        return probabilities(scores.reshape(-1)), np.zeros(scores.shape[0], np.int64)
    p = probabilities(scores) if scores.min() >= 0 else softmax(scores, axis=1)
    return p.max(axis=1), p.argmax(axis=1)


def _tf_detections(outputs: list[Array]) -> tuple[Array, Array, Array] | None:
    """TensorFlow's post-processed outputs: boxes (y1 x1 y2 x2), classes, scores, count."""
    if len(outputs) != 4 or outputs[0].ndim != 3 or outputs[0].shape[-1] != 4:
        return None
    count = int(outputs[3].reshape(-1)[0]) if outputs[3].size == 1 else outputs[0].shape[1]
    boxes = outputs[0][0, :count][:, [1, 0, 3, 2]]
    return boxes, outputs[2].reshape(-1)[:count], outputs[1].reshape(-1)[:count].astype(np.int64)


def _boxes_and_scores(
    outputs: list[Array], plan: InputPlan, config: ModelConfig, model: str
) -> tuple[Array, Array, Array, Array]:
    """Normalised boxes (N, 4), scores, classes and keypoints (N, K, 2) of a detector."""
    tf = _tf_detections(outputs)
    if tf is not None:
        boxes, scores, classes = tf
        return boxes, scores.astype(np.float64), classes, np.zeros((len(boxes), 0, 2))
    flat = [o.reshape(-1, o.shape[-1]) if o.ndim == 3 else o for o in outputs]
    want = "boxes [1, N, 4 + 2K] with scores [1, N, C]"
    box_i = next((i for i, o in enumerate(flat) if o.ndim == 2 and o.shape[1] >= 4), None)
    if box_i is None:
        raise _unreadable("detect", model, outputs, want)
    raw = flat[box_i].astype(np.float32)
    score_i = next(
        (i for i, o in enumerate(flat) if i != box_i and o.shape[0] == raw.shape[0]), None
    )
    if score_i is None:
        raise _unreadable("detect", model, outputs, want)
    scores, classes = _class_scores(flat[score_i], None)
    strides = config.strides or strides_for(plan.height, plan.width, raw.shape[0])
    if strides is not None:
        anchors = ssd_anchors(plan.height, plan.width, strides)
        if len(anchors) != raw.shape[0]:
            raise BadArgumentError(
                message=f"detect: anchors with strides {list(strides)} make {len(anchors)} "
                f"boxes; model {model!r} outputs {raw.shape[0]}"
            )
        boxes, points = decode_ssd(raw, anchors, plan.height, plan.width)
        return boxes, scores, classes, points
    if raw.shape[1] != 4:
        raise BadArgumentError(
            message=f"detect: model {model!r} outputs raw regressions {list(outputs[box_i].shape)}"
            ' of unknown anchors; give them in preprocess.json ("anchors": {"strides": [...]})'
        )
    boxes = raw[:, [1, 0, 3, 2]] if config.box_format == "yxyx" else raw
    if np.abs(boxes).max(initial=0.0) > 1.5:
        boxes = boxes / np.array([plan.width, plan.height] * 2, np.float32)
    return boxes, scores, classes, np.zeros((len(boxes), 0, 2))


def detect(
    outputs: list[Array],
    plan: InputPlan,
    config: ModelConfig,
    transform: Transform,
    labels: list[str] | None,
    model: str,
) -> list[Detection]:
    """The boxes scoring at least the threshold, after non-maximum suppression, best first."""
    boxes, scores, classes, points = _boxes_and_scores(outputs, plan, config, model)
    keep = np.flatnonzero(scores >= config.threshold)
    chosen = nms(boxes[keep], scores[keep], config.iou, config.max_detections)
    found = []
    for i in keep[chosen]:
        corners = _to_pixels(boxes[i].reshape(2, 2), transform)
        x1, y1 = np.clip(corners.min(axis=0), 0, [transform.width, transform.height])
        x2, y2 = np.clip(corners.max(axis=0), 0, [transform.width, transform.height])
        kps = [(float(x), float(y)) for x, y in _to_pixels(points[i], transform)]
        box = (float(x1), float(y1), float(x2), float(y2))
        found.append(Detection(box, float(scores[i]), label_of(labels, int(classes[i])), kps))
    return found


# ---------------------------------------------------------------------- pose

#: BlazePose outputs 33 body landmarks and 6 auxiliary ones (39 x 5 values).
BLAZEPOSE = (39, 5, 33)


def _per_keypoint(length: int, config: ModelConfig) -> int:
    if config.values_per_keypoint is not None:
        if length % config.values_per_keypoint:
            raise BadArgumentError(
                message=f"pose: values_per_keypoint {config.values_per_keypoint} does not "
                f"divide the landmark output's {length} values"
            )
        return config.values_per_keypoint
    return next((d for d in (5, 3, 2) if length % d == 0), 0)


def _heatmap_points(outputs: list[Array]) -> Array | None:
    for out in outputs:
        maps = spatial(out)
        if maps is not None and maps.shape[2] >= 5:
            h, w, k = maps.shape
            flat = maps.reshape(-1, k)
            best = flat.argmax(axis=0)
            ys, xs = np.divmod(best, w)
            scores = probabilities(flat.max(axis=0))
            return np.stack([(xs + 0.5) / w, (ys + 0.5) / h, scores], axis=1)
    return None


def _flat_points(outputs: list[Array], plan: InputPlan, config: ModelConfig) -> Array | None:
    for out in outputs:
        if out.ndim not in (2, 3) or out.shape[0] != 1 or out.size < 4 or spatial(out) is not None:
            continue
        per = out.shape[-1] if out.ndim == 3 else _per_keypoint(out.size, config)
        if per < 2:
            continue
        values = out.reshape(-1, per).astype(np.float64)
        if (values.shape[0], per) == BLAZEPOSE[:2]:
            values = values[: BLAZEPOSE[2]]
        xy = values[:, :2]
        if np.abs(xy).max() > 1.5:
            xy = xy / np.array([plan.width, plan.height])
        scores = probabilities(values[:, 3]) if per >= 4 else np.ones(len(values))
        return np.concatenate([xy, scores[:, None]], axis=1)
    return None


def pose(
    outputs: list[Array], plan: InputPlan, config: ModelConfig, transform: Transform, model: str
) -> Keypoints:
    """Keypoints from a flat landmark output (or heatmaps), and the presence score if any."""
    points = _flat_points(outputs, plan, config)
    if points is None:
        points = _heatmap_points(outputs)
    if points is None:
        raise _unreadable(
            "pose", model, outputs, "landmarks ([1, K*D] or [1, K, D]) or heatmaps ([1, H, W, K])"
        )
    presence = next((o for o in outputs if o.size == 1), None)
    score = float(probabilities(presence.reshape(-1))[0]) if presence is not None else None
    pixels = _to_pixels(points[:, :2], transform)
    out = [(float(x), float(y), float(s)) for (x, y), s in zip(pixels, points[:, 2], strict=True)]
    return Keypoints(out, score)
