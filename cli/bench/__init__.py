"""`vaccel bench` / `make bench`: the remote path measured against same-run baselines."""

from .measure import main

__all__ = ["main"]
