"""Op results that are files: the images the image ops write, carried by value to clients.

An image op returns the path of an image it wrote into the session's run directory.
Through an agent that path means nothing to the client, so the agent `pack`s each such
result into `{"file": NAME, "data": BYTES}` and the rpc plugin `unpack`s it into the
client's own session run directory, returning that local path. Only files inside the
session's run directory are ever read (a plugin cannot be made to send other files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _inside(path: str, rundir: str) -> bool:
    try:
        real, base = os.path.realpath(path), os.path.realpath(rundir)
    except (OSError, ValueError):
        return False
    return real.startswith(base + os.sep) and os.path.isfile(real)


def _map(result: Any, positions: tuple[int, ...], fn: Callable[[Any], Any]) -> Any:
    if not positions:
        return fn(result)
    items = list(result)
    for i in positions:
        items[i] = fn(items[i])
    return type(result)(items) if isinstance(result, tuple) else items


def pack(result: Any, positions: tuple[int, ...], rundir: str) -> Any:
    """The result with each file path (in `rundir`) replaced by the file's name and bytes."""

    def one(value: Any) -> Any:
        if isinstance(value, str) and _inside(value, rundir):
            return {"file": os.path.basename(value), "data": Path(value).read_bytes()}
        return value

    return _map(result, positions, one)


def unpack(result: Any, positions: tuple[int, ...], rundir: str) -> Any:
    """The result with each packed file written into `rundir` and replaced by its path."""

    def one(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("data"), bytes):
            name = os.path.basename(str(value.get("file") or "result")) or "result"
            target = Path(rundir) / name
            stem, suffix, n = target.stem, target.suffix, 1
            while target.exists():
                target = Path(rundir) / f"{stem}.{n}{suffix}"
                n += 1
            target.write_bytes(value["data"])
            return str(target)
        return value

    return _map(result, positions, one)
