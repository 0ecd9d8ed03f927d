"""Start a real `vaccel-agent` process for end-to-end tests, and stop it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass

from conftest import VENV_BIN, tool_env


@dataclass
class AgentProcess:
    proc: subprocess.Popen[str]
    addresses: list[str]

    def stop(self, timeout: float = 15.0) -> int:
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


def start_agent(*addresses: str, plugins: str = "numpy", **env: str) -> AgentProcess:
    """Run vaccel-agent on `addresses` (port 0 allowed) and wait until it serves."""
    args = [str(VENV_BIN / "vaccel-agent")]
    for a in addresses:
        args += ["-a", a]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=tool_env(VACCEL_PLUGINS=plugins, **env),
    )
    bound: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"vaccel ttRPC server started\. address: (\S+)", line)
        if m:
            bound.append(m.group(1))
        if line.startswith("Server is running"):
            return AgentProcess(proc, bound)
    proc.wait(5)
    proc.stdout.close()
    raise RuntimeError(f"agent exited with {proc.returncode} before serving")
