"""Result images into the session's run directory: a PNG per call, with its findings.

Each PNG carries the call's findings as JSON in a `vaccel` text chunk (op, model,
summary, and the boxes, keypoints, classes or statistics), so a program, or a test,
can read exact numbers back from the image wherever it was copied.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

#: The PNG text chunk that holds a result's findings.
CHUNK = "vaccel"


def save_result(image: Image.Image, directory: str, op: str, findings: dict[str, Any]) -> str:
    """Write `image` as a new PNG in `directory` (findings attached); its path."""
    info = PngInfo()
    info.add_text(CHUNK, json.dumps(findings, separators=(",", ":")))
    fd, path = tempfile.mkstemp(prefix=f"{op}-", suffix=".png", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, format="PNG", pnginfo=info)
    except BaseException:
        os.unlink(path)
        raise
    return path


def read_findings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The findings a result image carries (KeyError if it has none)."""
    with Image.open(path) as image:
        image.load()
        text = image.info[CHUNK]
    findings: dict[str, Any] = json.loads(text)
    return findings
