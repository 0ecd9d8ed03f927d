"""vaccel-python's error module: `FFIError` and friends.

Every pyvaccel error (`vaccel.errors.VaccelError` and its subclasses) is an `FFIError`,
so code written against vaccel-python catches pyvaccel's richer errors unchanged.
"""

from __future__ import annotations

import errno
from typing import TypeVar

T = TypeVar("T")


class FFIError(RuntimeError):
    """An error with an errno-style `code` and a `message`: `[errno N] ENAME: message`."""

    def __init__(self, error_code: int, message: str = "") -> None:
        super().__init__(error_code, message)
        self.code = int(error_code)
        self.message = message

    def __str__(self) -> str:
        name = errno.errorcode.get(self.code, "UNKNOWN")
        return f"[errno {self.code}] {name}: {self.message}"


class NullPointerError(FFIError):
    """A pointer that should not be NULL was (kept for vaccel-python compatibility)."""

    def __init__(self, name: str = "pointer") -> None:
        super().__init__(errno.EINVAL, f"{name} is NULL")


def ptr_or_raise(ptr: T | None, name: str = "pointer") -> T:
    """`ptr` itself, or NullPointerError when it is None."""
    if ptr is None:
        raise NullPointerError(name)
    return ptr


__all__ = ["FFIError", "NullPointerError", "ptr_or_raise"]
