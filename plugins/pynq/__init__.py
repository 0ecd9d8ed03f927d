"""The pynq plugin (placeholder until implemented)."""
