"""Start a real `vaccel-agent` process for end-to-end tests (see vaccel.cli.spawn)."""

from __future__ import annotations

from vaccel.cli.spawn import SpawnedAgent, clean_env

__all__ = ["AgentProcess", "SpawnedAgent", "clean_env", "start_agent"]

AgentProcess = SpawnedAgent


def start_agent(*addresses: str, plugins: str = "numpy", **env: str) -> SpawnedAgent:
    """Run vaccel-agent on `addresses` (port 0 allowed) and wait until it serves."""
    return SpawnedAgent(list(addresses), clean_env(VACCEL_PLUGINS=plugins, **env))
