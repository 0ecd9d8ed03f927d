"""The async client of the agent and its sync bridge."""
