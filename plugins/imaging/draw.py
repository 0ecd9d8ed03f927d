"""Result images: boxes, masks, keypoints, depth maps and labels drawn with Pillow."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .heads import Detection, Keypoints, Map

BOX = (255, 40, 40)
POINT = (40, 255, 40)
MASK = np.array([0, 200, 255], np.float32)
TEXT_BG = (0, 0, 0)
TEXT = (255, 255, 255)

#: BlazePose's body skeleton (the 33 landmarks' connections).
BLAZEPOSE_EDGES = [
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 29), (29, 31), (27, 31), (28, 30),
    (30, 32), (28, 32), (15, 17), (15, 19), (15, 21), (16, 18), (16, 20), (16, 22),
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
]  # fmt: skip
#: Depth colours from near to far (a perceptual ramp in the spirit of magma).
RAMP = np.array(
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]],
    np.float32,
)


def _line(image: Image.Image) -> int:
    return max(2, round(max(image.size) / 200))


def caption(image: Image.Image, text: str, at: tuple[float, float] = (0, 0)) -> None:
    """Write `text` on a dark band at `at` (in place)."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox(at, text)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=TEXT_BG)
    draw.text(at, text, fill=TEXT)


def boxes(image: Image.Image, found: list[Detection]) -> Image.Image:
    """The image with each detection's box, label, score and keypoints."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = _line(out)
    for det in found:
        draw.rectangle(det.box, outline=BOX, width=width)
        for x, y in det.keypoints:
            draw.ellipse((x - width, y - width, x + width, y + width), fill=POINT)
    for det in found:
        caption(out, f"{det.label} {det.score:.2f}", (det.box[0] + width, det.box[1] + width))
    return out


def mask(image: Image.Image, result: Map, threshold: float) -> Image.Image:
    """The image with its foreground tinted."""
    pixels = np.asarray(image, np.float32)
    alpha = (result.values >= threshold)[:, :, None] * 0.55
    blended = pixels * (1 - alpha) + MASK * alpha
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def keypoints(image: Image.Image, found: Keypoints, threshold: float) -> Image.Image:
    """The image with the keypoints (and BlazePose's skeleton) that score at least `threshold`."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = _line(out)
    points = found.points
    if len(points) == 33:
        for a, b in BLAZEPOSE_EDGES:
            if points[a][2] >= threshold and points[b][2] >= threshold:
                draw.line((points[a][:2], points[b][:2]), fill=BOX, width=width)
    r = width + 1
    for x, y, score in points:
        if score >= threshold:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=POINT)
    return out


def colour_map(values: np.ndarray[Any, Any]) -> Image.Image:
    """A depth map as colours (its range stretched over the ramp)."""
    finite = np.nan_to_num(values.astype(np.float64))
    lo, hi = float(finite.min()), float(finite.max())
    scaled = (finite - lo) / (hi - lo) if hi > lo else np.zeros_like(finite)
    position = scaled * (len(RAMP) - 1)
    low = np.floor(position).astype(np.int64).clip(0, len(RAMP) - 2)
    frac = (position - low)[..., None]
    rgb = RAMP[low] * (1 - frac) + RAMP[low + 1] * frac
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def labelled(image: Image.Image, text: str) -> Image.Image:
    """The image with a classification tag in its corner."""
    out = image.copy()
    caption(out, text, (4, 4))
    return out
