"""Images in: bytes decoded by Pillow, nothing hand-written."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from vaccel.errors import BadArgumentError

#: Larger images are refused before they are decoded (a 16k x 16k photo is 256 Mpixels).
MAX_PIXELS = 128 * 1024 * 1024


def decode_image(data: bytes) -> Image.Image:
    """The image in `data` as RGB (EXIF orientation applied); BadArgumentError if it is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise BadArgumentError(
                        message=f"image: {width}x{height} pixels is more than the "
                        f"{MAX_PIXELS // (1024 * 1024)} Mpixels an image op accepts"
                    )
                opened.load()
                image = ImageOps.exif_transpose(opened).convert("RGB")
    except BadArgumentError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadArgumentError(
            message=f"image: {len(data)} bytes that are not an image Pillow can decode "
            f"(starting {data[:8]!r}); pass the bytes of a PNG, JPEG, BMP, GIF or similar file"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadArgumentError(
            message=f"image: {len(data)} bytes that Pillow cannot decode: {exc}"
        ) from None
    return image
