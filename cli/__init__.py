"""The commands: `vaccel` (info, example, ping, health, top, bench, demo) and the tools
they share (the agent spawner used by tests, the benchmark and the demo)."""
