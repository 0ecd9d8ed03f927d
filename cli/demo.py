"""`make demo`: the remote vector add of the vAccel on PYNQ-Z1 blog post, on this machine.

Starts an agent with the numpy plugin on a loopback port, runs `pynq_vector_add_generic`
through the rpc plugin (VACCEL_PLUGINS=vsock, as the blog post does), prints what it
prints, and stops the agent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .spawn import SpawnedAgent, clean_env


def main() -> int:
    """Run the demo; its exit status is the example's."""
    print("$ VACCEL_PLUGINS=numpy vaccel-agent -a tcp://127.0.0.1:0", flush=True)
    agent = SpawnedAgent(["tcp://127.0.0.1:0"], clean_env(VACCEL_PLUGINS="numpy"), echo=True)
    address = agent.addresses[0]
    vaccel = Path(sys.executable).parent / "vaccel"
    try:
        print(
            f"$ VACCEL_PLUGINS=vsock VACCEL_VSOCK={address} VACCEL_DEBUG_LEVEL=4 "
            "vaccel example pynq_vector_add_generic",
            flush=True,
        )
        env = clean_env(VACCEL_PLUGINS="vsock", VACCEL_VSOCK=address, VACCEL_DEBUG_LEVEL="4")
        command = str(vaccel) if vaccel.exists() else (shutil.which("vaccel") or "vaccel")
        return subprocess.run(
            [command, "example", "pynq_vector_add_generic"], env=env, check=False
        ).returncode
    finally:
        status = agent.stop()
        print(f"agent stopped (exit status {status})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
