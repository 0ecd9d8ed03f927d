"""Logging in vAccel's line format.

`2023.01.21-02:46:23.09 - <debug> Registered plugin noop`: levels 1 error, 2 warning,
3 info, 4 debug, chosen by VACCEL_LOG_LEVEL (old name VACCEL_DEBUG_LEVEL), written to
stderr or to VACCEL_LOG_FILE. Plugins may also write raw lines (`[noop] ...`) that appear
only at debug level, as vAccel's plugins print them without a prefix.

A log file that cannot be opened or written (a missing directory, no permission, a full
disk) does not fail the program and does not lose lines: the log goes to stderr
instead, after one warning line on stderr that names the file and the reason.
"""

from __future__ import annotations

import contextlib
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
            if path != self.path:
                if self._file is not None:
                    self._file.close()
                    self._file = None
                self.path = path
                if path:  # found out now, not at the first line logged
                    self._open()

    def _open(self) -> TextIO | None:
        """The log file, opened on first use; None (and a warning) when it cannot be."""
        if self._file is None and self.path:
            try:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                self._give_up(exc)
        return self._file

    def _give_up(self, exc: OSError) -> None:
        """Log to stderr from now on, after saying why the file cannot be used."""
        reason = exc.strerror or str(exc)
        print(
            f"vaccel: warning: cannot write the log file {self.path} (VACCEL_LOG_FILE): "
            f"{reason}; logging to stderr",
            file=sys.stderr,
            flush=True,
        )
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self.path = None

    def write(self, line: str) -> None:
        with self._lock:
            stream = self._open() or sys.stderr
            try:
                stream.write(line + "\n")
                stream.flush()
            except OSError as exc:
                if stream is sys.stderr:
                    return  # nowhere left to say it
                self._give_up(exc)
                sys.stderr.write(line + "\n")
                sys.stderr.flush()


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
    """Log an error (shown from level 1 up)."""
    _log(ERROR, message)


def warning(message: str) -> None:
    """Log a warning (shown from level 2 up)."""
    _log(WARNING, message)


def info(message: str) -> None:
    """Log an informational line (shown from level 3 up)."""
    _log(INFO, message)


def debug(message: str) -> None:
    """Log a debug line (shown from level 4 up)."""
    _log(DEBUG, message)


def plain(message: str) -> None:
    """A raw plugin line (no prefix), written at debug level."""
    if _sink.level >= DEBUG:
        _sink.write(message)
