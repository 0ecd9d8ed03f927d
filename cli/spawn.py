"""Start a `vaccel-agent` process and learn the addresses it bound (port 0 resolved).

Used by `make demo`, `vaccel bench` and the end-to-end tests, so every one of them runs
the real agent the way an operator does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

_BANNER = re.compile(r"pyvaccel agent started\. address: (\S+)")


def agent_command() -> str:
    """The vaccel-agent script beside this interpreter (the venv's), or on PATH."""
    here = Path(sys.executable).parent / "vaccel-agent"
    return str(here) if here.exists() else (shutil.which("vaccel-agent") or "vaccel-agent")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without VACCEL_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACCEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class SpawnedAgent:
    """A running agent process; `stop` sends SIGTERM and returns its exit status."""

    def __init__(
        self,
        addresses: list[str],
        env: Mapping[str, str],
        echo: bool = False,
        extra_args: list[str] | None = None,
    ) -> None:
        args = [agent_command(), *(extra_args or [])]
        for address in addresses:
            args += ["-a", address]
        #: Everything the agent wrote to stderr (its log), kept for when something fails.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._final = ""
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=dict(env)
        )
        self.addresses: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if echo:
                print(line, end="", flush=True)
            m = _BANNER.match(line)
            if m:
                self.addresses.append(m.group(1))
            if line.startswith("Server is running"):
                return
        self.proc.wait(5)
        self.proc.stdout.close()
        self._final = self.stderr_text()
        self._stderr.close()
        raise RuntimeError(
            f"vaccel-agent exited with status {self.proc.returncode} before serving; "
            f"its stderr:\n{self.stderr_text()}"
        )

    @property
    def pid(self) -> int:
        """The agent's process id."""
        return self.proc.pid

    def stderr_text(self) -> str:
        """What the agent wrote to stderr so far."""
        if self._stderr.closed:
            return self._final
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def peak_rss(self) -> int:
        """The agent's peak resident memory so far, in bytes (Linux)."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self, timeout: float = 15.0) -> int:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._final = self.stderr_text()
            self._stderr.close()
