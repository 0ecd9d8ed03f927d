"""Logging in vAccel's line format.

`2023.01.21-02:46:23.09 - <debug> Registered plugin noop`: levels 1 error, 2 warning,
3 info, 4 debug, chosen by VACCEL_LOG_LEVEL (old name VACCEL_DEBUG_LEVEL), written to
stderr or to VACCEL_LOG_FILE. Plugins may also write raw lines (`[noop] ...`) that appear
only at debug level, as vAccel's plugins print them without a prefix.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

ERROR, WARNING, INFO, DEBUG = 1, 2, 3, 4
_LEVEL_NAMES = {ERROR: "error", WARNING: "warn", INFO: "info", DEBUG: "debug"}


class _Sink:
    """Where log lines go, and the level that lets them through."""

    def __init__(self) -> None:
        self.level = ERROR
        self.path: str | None = None
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def configure(self, level: int, path: str | None) -> None:
        with self._lock:
            self.level = max(0, min(level, DEBUG))
            if path != self.path and self._file is not None:
                self._file.close()
                self._file = None
            self.path = path

    def write(self, line: str) -> None:
        with self._lock:
            if self.path:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                stream: TextIO = self._file
            else:
                stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()


_sink = _Sink()


def configure(level: int, path: str | None = None) -> None:
    """Set the level (1-4) and the destination (None: stderr)."""
    _sink.configure(level, path)


def level() -> int:
    """The level in force."""
    return _sink.level


def enabled(lvl: int) -> bool:
    """Whether a line at `lvl` would be written; cheap, for hot paths."""
    return _sink.level >= lvl


def timestamp(now: float | None = None) -> str:
    """vAccel's timestamp: `2023.01.21-02:46:23.09` (hundredths of a second)."""
    now = time.time() if now is None else now
    hundredths = int((now % 1) * 100)
    return time.strftime("%Y.%m.%d-%H:%M:%S", time.localtime(now)) + f".{hundredths:02d}"


def _log(lvl: int, message: str) -> None:
    if _sink.level >= lvl:
        _sink.write(f"{timestamp()} - <{_LEVEL_NAMES[lvl]}> {message}")


def error(message: str) -> None:
    _log(ERROR, message)


def warning(message: str) -> None:
    _log(WARNING, message)


def info(message: str) -> None:
    _log(INFO, message)


def debug(message: str) -> None:
    _log(DEBUG, message)


def plain(message: str) -> None:
    """A raw plugin line (no prefix), written at debug level."""
    if _sink.level >= DEBUG:
        _sink.write(message)
