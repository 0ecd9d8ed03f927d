"""An image -> a model's input tensor, with the defaults read off the model's input.

A model takes an image when its input is four-dimensional with one or three channels,
NCHW or NHWC (`plan_input` tells which, or says why the input is not an image). Float
inputs get RGB values in [0, 1], then `(x - mean) / std` when preprocess.json says so;
integer inputs get the raw pixels. `Transform` maps the model's normalised coordinates
back to the original image's pixels, however it was resized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from vaccel.errors import BadArgumentError

from .backend import TensorSpec
from .config import ModelConfig

FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64))
INT_TYPES = (np.dtype(np.uint8), np.dtype(np.int8))


@dataclass(frozen=True)
class InputPlan:
    """How to turn an image into one model's input."""

    height: int
    width: int
    layout: str
    channels: str
    dtype: np.dtype[Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str


@dataclass(frozen=True)
class Transform:
    """Model coordinates (0..1 across the model's input) -> original image pixels."""

    ox: float
    oy: float
    sx: float
    sy: float
    width: int
    height: int

    def point(self, u: float, v: float) -> tuple[float, float]:
        """A normalised model point in the original image's pixels."""
        return self.ox + self.sx * u, self.oy + self.sy * v


def _not_image(spec: TensorSpec, model: str, why: str) -> BadArgumentError:
    return BadArgumentError(
        message=f"model {model!r} does not take an image: its input {spec.describe()} {why} "
        "(an image input is [1, 3, H, W], [1, H, W, 3] or one-channel, float or uint8)"
    )


def _layout(spec: TensorSpec, config: ModelConfig, model: str) -> str:
    if config.layout is not None:
        return config.layout
    shape = spec.shape
    nchw, nhwc = shape[1] in (1, 3), shape[3] in (1, 3)
    if nhwc and not nchw:
        return "NHWC"
    if nchw and not nhwc:
        return "NCHW"
    if nchw and nhwc:
        return "NCHW" if shape[3] > 3 or shape[2] > 3 else "NHWC"
    raise _not_image(spec, model, "has no dimension of 1 or 3 channels")


def _per_channel(
    values: tuple[float, ...] | None, count: int, default: float, key: str
) -> tuple[float, ...]:
    if values is None:
        return (default,) * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise BadArgumentError(
            message=f"preprocess.json: {key} has {len(values)} values for {count} channels"
        )
    return values


def plan_input(inputs: list[TensorSpec], config: ModelConfig, model: str) -> InputPlan:
    """How to feed images to a model with these inputs; BadArgumentError if it takes none."""
    if len(inputs) != 1:
        names = ", ".join(s.describe() for s in inputs)
        raise BadArgumentError(
            message=f"model {model!r} has {len(inputs)} inputs ({names}); image ops feed "
            "models that take one image"
        )
    spec = inputs[0]
    if len(spec.shape) != 4:
        raise _not_image(spec, model, f"has {len(spec.shape)} dimensions, not 4")
    if spec.dtype not in FLOAT_TYPES + INT_TYPES:
        raise _not_image(spec, model, "is not a float or 8-bit tensor")
    if spec.shape[0] not in (1, -1):
        raise _not_image(spec, model, f"takes a batch of {spec.shape[0]}")
    layout = _layout(spec, config, model)
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
    count = spec.shape[c_axis]
    if count not in (1, 3):
        raise _not_image(spec, model, f"has {count} channels in {layout} layout")
    channels = config.channels or ("L" if count == 1 else "RGB")
    if (channels == "L") != (count == 1):
        raise BadArgumentError(
            message=f"preprocess.json: channels {channels} for a model input of {count} channels"
        )
    height, width = spec.shape[h_axis], spec.shape[w_axis]
    if config.size is not None:
        if (height > 0 and height != config.size[0]) or (width > 0 and width != config.size[1]):
            raise BadArgumentError(
                message=f"preprocess.json: size {list(config.size)} but model {model!r} takes "
                f"{height}x{width} images"
            )
        height, width = config.size
    if height <= 0 or width <= 0:
        raise BadArgumentError(
            message=f"model {model!r} takes images of any size ({spec.describe()}); say which "
            'in preprocess.json ("size": [height, width])'
        )
    return InputPlan(
        height,
        width,
        layout,
        channels,
        spec.dtype,
        _per_channel(config.mean, count, 0.0, "mean"),
        _per_channel(config.std, count, 1.0, "std"),
        config.resize,
    )


def _fit(image: Image.Image, plan: InputPlan) -> tuple[Image.Image, Transform]:
    w0, h0 = image.size
    w, h = plan.width, plan.height
    if plan.resize == "letterbox":
        scale = min(w / w0, h / h0)
        nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
        left, top = (w - nw) // 2, (h - nh) // 2
        canvas = Image.new(image.mode, (w, h))
        canvas.paste(image.resize((nw, nh), Image.Resampling.BILINEAR), (left, top))
        sx, sy = w0 / nw * w, h0 / nh * h
        return canvas, Transform(-left * w0 / nw, -top * h0 / nh, sx, sy, w0, h0)
    if plan.resize == "crop":
        crop_w = min(float(w0), h0 * w / h)
        crop_h = crop_w * h / w
        cut_x, cut_y = (w0 - crop_w) / 2, (h0 - crop_h) / 2
        box = (cut_x, cut_y, cut_x + crop_w, cut_y + crop_h)
        fitted = image.resize((w, h), Image.Resampling.BILINEAR, box=box)
        return fitted, Transform(cut_x, cut_y, crop_w, crop_h, w0, h0)
    return image.resize((w, h), Image.Resampling.BILINEAR), Transform(0.0, 0.0, w0, h0, w0, h0)


def to_tensor(image: Image.Image, plan: InputPlan) -> tuple[np.ndarray[Any, Any], Transform]:
    """The model input for `image` (a batch of one), and how to map results back."""
    fitted, transform = _fit(image, plan)
    if plan.channels == "L":
        fitted = fitted.convert("L")
    pixels = np.asarray(fitted)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if plan.channels == "BGR":
        pixels = pixels[:, :, ::-1]
    if plan.dtype in FLOAT_TYPES:
        values = pixels.astype(np.float32) / np.float32(255.0)
        mean = np.asarray(plan.mean, np.float32)
        std = np.asarray(plan.std, np.float32)
        values = ((values - mean) / std).astype(plan.dtype)
    elif plan.dtype == np.dtype(np.int8):
        values = (pixels.astype(np.int16) - 128).astype(np.int8)
    else:
        values = pixels.astype(np.uint8)
    if plan.layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values[None]), transform
