"""The agent: listeners, connections, sessions and dispatch."""
