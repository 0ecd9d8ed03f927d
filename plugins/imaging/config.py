"""`preprocess.json`: how to feed a model images and read its outputs (all keys optional).

Input side (defaults come from the model's own input shape):
- `size`: [height, width] (needed only when the model's input size is not fixed)
- `layout`: "NCHW" or "NHWC"
- `channels`: "RGB", "BGR" or "L" (grey; the default for a one-channel input)
- `mean`, `std`: per channel, applied to values in [0, 1]: (x / 255 - mean) / std
  (defaults 0 and 1: float inputs get [0, 1]); integer inputs take the raw pixels
- `resize`: "stretch" (default), "letterbox" (keep the aspect ratio, pad) or "crop"
  (keep the aspect ratio, cut the centre)

Output side:
- `labels`: the labels file's name in the resource (default: its one `*.txt` file)
- `threshold`: the score a detection, mask pixel or keypoint needs (default 0.5)
- `iou`: the overlap above which non-maximum suppression drops a box (default 0.3)
- `max_detections`: at most this many boxes (default 100)
- `anchors`: SSD anchors for raw detector outputs, `{"strides": [8, 16, 16, 16]}`
  (MediaPipe detectors' known layouts are recognised without it)
- `box_format`: "xyxy" (default) or "yxyx", for detectors that output decoded boxes
- `values_per_keypoint`: values per keypoint in a flat landmark output (default: 5, 3 or
  2, the first that divides its length)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from vaccel.errors import BadArgumentError

CONFIG_NAME = "preprocess.json"
LAYOUTS = ("NCHW", "NHWC")
CHANNELS = ("RGB", "BGR", "L")
RESIZE = ("stretch", "letterbox", "crop")
BOX_FORMATS = ("xyxy", "yxyx")


@dataclass(frozen=True)
class ModelConfig:
    """A model's preprocess.json, checked (None: take the default)."""

    size: tuple[int, int] | None = None
    layout: str | None = None
    channels: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "stretch"
    labels: str | None = None
    threshold: float = 0.5
    iou: float = 0.3
    max_detections: int = 100
    strides: tuple[int, ...] | None = None
    box_format: str = "xyxy"
    values_per_keypoint: int | None = None


def _fail(what: str) -> BadArgumentError:
    return BadArgumentError(message=f"{CONFIG_NAME}: {what}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{key} must be a number; got {value!r}")
    return float(value)


def _int(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(f"{key} must be an integer >= {minimum}; got {value!r}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _numbers(value: Any, key: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (_number(value, key),)
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        raise _fail(f"{key} must be a number or a list of 1 to 4 numbers; got {value!r}")
    return tuple(_number(v, key) for v in value)


def _unit(value: Any, key: str) -> float:
    number = _number(value, key)
    if not 0.0 <= number <= 1.0:
        raise _fail(f"{key} must be between 0 and 1; got {number}")
    return number


def _size(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(f"size must be [height, width]; got {value!r}")
    return _int(value[0], "size[0]"), _int(value[1], "size[1]")


def _strides(value: Any) -> tuple[int, ...]:
    strides = value.get("strides") if isinstance(value, dict) else None
    if not isinstance(strides, list) or not strides:
        raise _fail(f'anchors must be {{"strides": [8, 16, ...]}}; got {value!r}')
    return tuple(_int(s, "anchors.strides") for s in strides)


def _std(value: Any) -> tuple[float, ...]:
    std = _numbers(value, "std")
    if any(s == 0 for s in std):
        raise _fail("std must not be 0")
    return std


def _labels(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"labels must be a file name; got {value!r}")
    return value


_KEYS: dict[str, Any] = {
    "size": _size,
    "layout": lambda v: _choice(v, "layout", LAYOUTS),
    "channels": lambda v: _choice(v, "channels", CHANNELS),
    "mean": lambda v: _numbers(v, "mean"),
    "std": _std,
    "resize": lambda v: _choice(v, "resize", RESIZE),
    "labels": _labels,
    "threshold": lambda v: _unit(v, "threshold"),
    "iou": lambda v: _unit(v, "iou"),
    "max_detections": lambda v: _int(v, "max_detections"),
    "anchors": _strides,
    "box_format": lambda v: _choice(v, "box_format", BOX_FORMATS),
    "values_per_keypoint": lambda v: _int(v, "values_per_keypoint", 2),
}
_FIELD = {"anchors": "strides"}


def parse_config(data: bytes) -> ModelConfig:
    """A preprocess.json's bytes, checked; BadArgumentError naming the first fault."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _fail(f"must hold a JSON object; got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise _fail(f"unknown keys {unknown}; known keys: {', '.join(_KEYS)}")
    fields: dict[str, Any] = {
        _FIELD.get(str(key), str(key)): _KEYS[key](value) for key, value in raw.items()
    }
    return ModelConfig(**fields)
