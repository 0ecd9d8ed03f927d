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
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(env)
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
        raise RuntimeError(f"vaccel-agent exited with status {self.proc.returncode} before serving")

    @property
    def pid(self) -> int:
        return self.proc.pid

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
