"""`vaccel health ADDR [--timeout S]`: a readiness and liveness probe for an agent.

Calls the agent's `health.check` and prints its state on one line: SERVING, or
NOT_SERVING (plugins loading, or draining after SIGTERM), or UNREACHABLE. The exit
status is 0 only while the agent serves; otherwise 1, with a one-line reason on
stderr. Kubernetes probes, the container's HEALTHCHECK and scripts use the status.
"""

from __future__ import annotations

import sys
import time

from vaccel.client.credentials import tool_client
from vaccel.config import Config
from vaccel.errors import VaccelError

SERVING, NOT_SERVING, UNREACHABLE = "SERVING", "NOT_SERVING", "UNREACHABLE"


def check(address: str, timeout: float) -> tuple[str, str]:
    """The agent's state and, when it is not serving, why."""
    deadline = time.monotonic() + timeout
    try:
        client = tool_client(address, timeout, public=True)
    except VaccelError as exc:
        return UNREACHABLE, exc.message
    try:
        left = max(0.001, deadline - time.monotonic())
        answer = client.call("health.check", [], timeout=left)
    except VaccelError as exc:
        return UNREACHABLE, f"{address} did not answer health.check: {exc.message}"
    finally:
        client.close()
    status = answer.get("status") if isinstance(answer, dict) else None
    if status == SERVING:
        return SERVING, ""
    reason = answer.get("reason") if isinstance(answer, dict) else None
    return NOT_SERVING, f"{address} is not serving: {reason or f'it answered {answer!r}'}"


def health(address: str | None, timeout: float) -> int:
    """Print the state of the agent at `address`; 0 only when it serves."""
    where = address or Config.from_env().rpc_address.split(",")[0].strip()
    state, reason = check(where, max(0.001, timeout))
    print(state, flush=True)
    if state != SERVING:
        print(f"vaccel health: {reason}", file=sys.stderr, flush=True)
        return 1
    return 0
