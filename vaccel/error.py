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
    """A value that should be there was not (vaccel-python: a NULL C pointer).

    `NullPointerError(context)`; its message is vaccel-python's, "Unexpected NULL pointer
    encountered in CONTEXT". It is a RuntimeError as there, and an FFIError (EINVAL).
    """

    def __init__(self, context: str) -> None:
        super().__init__(errno.EINVAL, f"Unexpected NULL pointer encountered in {context}")

    def __str__(self) -> str:
        return self.message


def ptr_or_raise(ptr: T | None, context: str = "pointer") -> T:
    """`ptr` itself, or NullPointerError naming `context` when it is None."""
    if ptr is None:
        raise NullPointerError(context)
    return ptr


__all__ = ["FFIError", "NullPointerError", "ptr_or_raise"]
