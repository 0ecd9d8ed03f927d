"""SSD anchors (MediaPipe's SsdAnchorsCalculator, fixed anchor size) and box decoding.

MediaPipe's detectors (BlazeFace, the pose detector, the palm detector) output raw
regressions against a grid of anchors: per anchor, the box centre offset and size, then
keypoint offsets, all in input pixels. `decode_ssd` turns them into normalised boxes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: (input size, anchor count) -> strides, for the MediaPipe detectors known to ship.
KNOWN = {
    (128, 896): (8, 16, 16, 16),  # face detection (short range)
    (224, 2254): (8, 16, 32, 32, 32),  # pose detection
    (192, 2016): (8, 16, 16, 16),  # palm detection
}


def ssd_anchors(height: int, width: int, strides: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Anchor centres, (N, 2) as (x, y) in [0, 1]: two per cell for each layer of a stride."""
    centres: list[np.ndarray[Any, Any]] = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        rows, cols = math.ceil(height / strides[layer]), math.ceil(width / strides[layer])
        ys, xs = np.meshgrid(
            (np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij"
        )
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def strides_for(height: int, width: int, count: int) -> tuple[int, ...] | None:
    """The strides of a known MediaPipe detector with this input and anchor count."""
    if height != width:
        return None
    return KNOWN.get((height, count))


def decode_ssd(
    raw: np.ndarray[Any, Any], anchors: np.ndarray[Any, Any], height: int, width: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Raw (N, 4 + 2K) regressions -> boxes (N, 4) as x1, y1, x2, y2 and keypoints (N, K, 2),
    normalised to the input."""
    scale = np.array([width, height], np.float32)
    centre = raw[:, 0:2] / scale + anchors
    size = raw[:, 2:4] / scale
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    count = (raw.shape[1] - 4) // 2
    points = raw[:, 4 : 4 + 2 * count].reshape(-1, count, 2) / scale + anchors[:, None, :]
    return boxes, points


def iou(box: np.ndarray[Any, Any], others: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Intersection over union of one box with each of `others` (x1, y1, x2, y2)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(
    boxes: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], threshold: float, limit: int
) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order and len(kept) < limit:
        best = int(order.pop(0))
        kept.append(best)
        if order:
            rest = np.asarray(order)
            overlap = iou(boxes[best], boxes[rest])
            order = [int(i) for i, o in zip(rest, overlap, strict=True) if o <= threshold]
    return kept
