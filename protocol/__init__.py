"""The wire protocol, sans-IO: frames, codec, messages, status codes and limits."""
