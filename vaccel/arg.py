"""`Arg`: one argument of exec/genop, a buffer with a type, as in vaccel-python."""

from __future__ import annotations

from typing import Any

from .enums import ArgType


class Arg:
    """An argument value (bytes, int, float, str, NumPy array) and how to read it."""

    def __init__(self, buf: Any, argtype: ArgType | int = ArgType.RAW) -> None:
        self.buf = buf
        self.argtype = ArgType(argtype)

    @property
    def size(self) -> int:
        nbytes = getattr(self.buf, "nbytes", None)
        if nbytes is not None:
            return int(nbytes)
        if isinstance(self.buf, (bytes, bytearray, str)):
            return len(self.buf)
        return 8

    def __repr__(self) -> str:
        return f"<Arg {self.argtype.name} size={self.size}>"
