"""classify, detect, segment, pose and depth, written once over any `Backend`.

Each op decodes the image (Pillow), builds the model's input from its input shape and
preprocess.json, runs the model, reads the outputs (`heads`), draws the result image
into the session's run directory and logs a one-line summary. classify returns
(tag, path of the labelled image); the others return the result image's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from vaccel import log
from vaccel.cancel import checkpoint
from vaccel.enums import OpType
from vaccel.plugin import Impl, SessionLike

from . import draw, heads
from .base import InferencePlugin, Loaded
from .decode import decode_image
from .preprocess import InputPlan, Transform, plan_input, to_tensor
from .results import save_result


@dataclass
class Run:
    """One image through one model."""

    loaded: Loaded
    image: Image.Image
    plan: InputPlan
    transform: Transform
    outputs: list[np.ndarray[Any, Any]]


def _run(plugin: InferencePlugin, session: SessionLike, op: str, data: bytes) -> Run:
    loaded = plugin.image_model(session, op)
    plan = plan_input(loaded.backend.inputs, loaded.files.config, loaded.files.name)
    image = decode_image(data)
    tensor, transform = to_tensor(image, plan)
    checkpoint()
    outputs = loaded.backend.run([tensor])
    checkpoint()
    return Run(loaded, image, plan, transform, outputs)


def _finish(
    plugin: InferencePlugin,
    session: SessionLike,
    run: Run,
    op: str,
    picture: Image.Image,
    summary: str,
    findings: dict[str, Any],
) -> str:
    model = run.loaded.files.name
    record = {"op": op, "model": model, "summary": summary, **findings}
    path = save_result(picture, session.rundir, op, record)
    width, height = run.image.size
    log.info(f"[{plugin.display_name}] {op}: {summary} ({model}, {width}x{height} image -> {path})")
    return path


def classify(plugin: InferencePlugin, session: SessionLike, data: bytes) -> tuple[str, str]:
    """(tag, path): the tag is `label (probability)` of the best class."""
    run = _run(plugin, session, "classify", data)
    ranked = heads.classify(run.outputs, run.loaded.files.labels, run.loaded.files.name)
    tag = f"{ranked[0].label} ({ranked[0].score:.2f})"
    top = [{"index": r.index, "label": r.label, "score": r.score} for r in ranked]
    picture = draw.labelled(run.image, tag)
    return tag, _finish(plugin, session, run, "classify", picture, tag, {"top": top})


def detect(plugin: InferencePlugin, session: SessionLike, data: bytes) -> str:
    """The path of the image with the boxes drawn."""
    run = _run(plugin, session, "detect", data)
    config = run.loaded.files.config
    found = heads.detect(
        run.outputs, run.plan, config, run.transform, run.loaded.files.labels, run.loaded.files.name
    )
    listed = ", ".join(
        f"{d.label} {d.score:.2f} at [{', '.join(f'{v:.0f}' for v in d.box)}]" for d in found[:3]
    )
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    summary = f"{len(found)} found" + (f": {listed}{more}" if found else "")
    records = [
        {"box": list(d.box), "score": d.score, "label": d.label, "keypoints": d.keypoints}
        for d in found
    ]
    picture = draw.boxes(run.image, found)
    return _finish(plugin, session, run, "detect", picture, summary, {"detections": records})


def _bbox(mask: np.ndarray[Any, Any]) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def segment(plugin: InferencePlugin, session: SessionLike, data: bytes) -> str:
    """The path of the image with its foreground tinted."""
    run = _run(plugin, session, "segment", data)
    result = heads.segment(run.outputs, run.transform, run.loaded.files.name)
    threshold = run.loaded.files.config.threshold
    mask = result.values >= threshold
    share = float(mask.mean())
    findings: dict[str, Any] = {"foreground": share, "box": _bbox(mask)}
    if result.classes is not None:
        labels = run.loaded.files.labels
        present, counts = np.unique(result.classes, return_counts=True)
        findings["classes"] = {
            heads.label_of(labels, int(c)): float(n) / result.classes.size
            for c, n in zip(present, counts, strict=True)
        }
    summary = f"{share * 100:.1f}% of the image is foreground"
    picture = draw.mask(run.image, result, threshold)
    return _finish(plugin, session, run, "segment", picture, summary, findings)


def pose(plugin: InferencePlugin, session: SessionLike, data: bytes) -> str:
    """The path of the image with the keypoints (and skeleton) drawn."""
    run = _run(plugin, session, "pose", data)
    config = run.loaded.files.config
    found = heads.pose(run.outputs, run.plan, config, run.transform, run.loaded.files.name)
    seen = sum(1 for p in found.points if p[2] >= config.threshold)
    score = "" if found.score is None else f", score {found.score:.2f}"
    summary = f"{seen} of {len(found.points)} keypoints visible{score}"
    findings = {"keypoints": [list(p) for p in found.points], "score": found.score}
    picture = draw.keypoints(run.image, found, config.threshold)
    return _finish(plugin, session, run, "pose", picture, summary, findings)


def depth(plugin: InferencePlugin, session: SessionLike, data: bytes) -> str:
    """The path of the depth map, in colour."""
    run = _run(plugin, session, "depth", data)
    result = heads.depth(run.outputs, run.transform, run.loaded.files.name)
    lo, hi = float(result.values.min()), float(result.values.max())
    summary = f"depth from {lo:.4g} to {hi:.4g}"
    findings = {"min": lo, "max": hi, "mean": float(result.values.mean())}
    picture = draw.colour_map(result.values)
    return _finish(plugin, session, run, "depth", picture, summary, findings)


def image_ops(plugin: InferencePlugin) -> dict[OpType, Impl]:
    """The five image ops, bound to a plugin."""
    return {
        OpType.IMAGE_CLASSIFY: Impl(partial(classify, plugin)),
        OpType.IMAGE_DETECT: Impl(partial(detect, plugin)),
        OpType.IMAGE_SEGMENT: Impl(partial(segment, plugin)),
        OpType.IMAGE_POSE: Impl(partial(pose, plugin)),
        OpType.IMAGE_DEPTH: Impl(partial(depth, plugin)),
    }
