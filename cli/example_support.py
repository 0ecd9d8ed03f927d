"""What the example programs share: their error, the shipped image, the session they
announce, float printing, argument types, and refusing sizes this machine cannot hold."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

import numpy as np

from vaccel.errors import BadArgumentError
from vaccel.session import Session


class LocalError(BadArgumentError):
    """A mistake in an example's own arguments, found here before any plugin or agent."""


def example_image() -> Path:
    """The small JPEG pyvaccel ships for the classify example."""
    return Path(str(resources.files("vaccel.cli") / "data" / "example.jpg"))


def open_session(flags: int = 0) -> Session:
    """A session, announced as vAccel's examples do."""
    session = Session(flags)
    print(f"Initialized session with id: {session.id}")
    return session


def print_floats(values: np.ndarray | list[float]) -> None:
    """Each value as a float32 printed with %f, as the C examples print them."""
    for v in values:
        print(f"{float(np.float32(v)):f}")


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def image_bytes(path: Path) -> bytes:
    """An image file's bytes (LocalError naming it when it cannot be read)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LocalError(message=f"cannot read image {str(path)!r}: {exc.strerror}") from None


# ---------------------------------------------------------------------- memory


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable); None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n:.0f} bytes"


def must_fit(nbytes: int, what: str) -> None:
    """Refuse, before allocating anything, a size this machine's free memory cannot hold."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise LocalError(
            message=f"{what} needs {_size(nbytes)} of memory; this machine has "
            f"{_size(free)} available: choose a smaller size"
        )
