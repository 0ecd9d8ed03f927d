"""`make demo`: the seed's remote vector add on this machine, end to end.

Starts an agent with the numpy plugin on a loopback port, runs `pynq_vector_add_generic`
through the rpc plugin (VACCEL_PLUGINS=vsock, as the seed), prints what it prints, and
stops the agent.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACCEL_")}
    agent_env = {**env, "VACCEL_PLUGINS": "numpy"}
    print("$ VACCEL_PLUGINS=numpy vaccel-agent -a tcp://127.0.0.1:0", flush=True)
    agent = subprocess.Popen(
        [_tool("vaccel-agent"), "-a", "tcp://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env=agent_env,
    )
    assert agent.stdout is not None
    address = None
    for line in agent.stdout:
        print(line, end="", flush=True)
        m = re.match(r"vaccel ttRPC server started\. address: (\S+)", line)
        if m:
            address = m.group(1)
        if line.startswith("Server is running"):
            break
    if address is None:
        agent.wait()
        print("demo: the agent did not start", file=sys.stderr)
        return 1
    try:
        print(
            f"$ VACCEL_PLUGINS=vsock VACCEL_VSOCK={address} VACCEL_DEBUG_LEVEL=4 "
            "vaccel example pynq_vector_add_generic",
            flush=True,
        )
        client_env = {
            **env,
            "VACCEL_PLUGINS": "vsock",
            "VACCEL_VSOCK": address,
            "VACCEL_DEBUG_LEVEL": "4",
        }
        result = subprocess.run(
            [_tool("vaccel"), "example", "pynq_vector_add_generic"], env=client_env, check=False
        )
        return result.returncode
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(15)
        agent.stdout.close()
        print("agent stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
