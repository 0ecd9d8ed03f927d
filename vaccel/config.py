"""Configuration from vAccel's environment variables (new names first, old names honoured)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import BadArgumentError, VaccelError

DEFAULT_RPC_ADDRESS = "tcp://127.0.0.1:65500"
DEFAULT_AGENT_ENDPOINT = "tcp://127.0.0.1:65500"


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of `names` set (non-empty) in env, with the name that was used."""
    for name in names:
        value = env.get(name)
        if value:
            return name, value
    return None


def _int_var(env: Mapping[str, str], names: tuple[str, ...], default: int, lo: int, hi: int) -> int:
    found = _first(env, *names)
    if found is None:
        return default
    name, raw = found
    try:
        value = int(raw)
    except ValueError:
        raise BadArgumentError(
            message=f"{name}={raw!r} is not a number; expected an integer from {lo} to {hi}"
        ) from None
    if not lo <= value <= hi:
        raise BadArgumentError(message=f"{name}={value} is out of range; expected {lo} to {hi}")
    return value


def positive_setting(
    env: Mapping[str, str],
    name: str,
    cast: type[float] | type[int],
    error: type[VaccelError] = BadArgumentError,
) -> float | None:
    """A positive number from `env[name]` (None when unset); `error` names the variable."""
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = cast(raw)
    except ValueError:
        raise error(message=f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise error(message=f"{name}={raw!r} must be a positive number")
    return value


@dataclass
class Config:
    """Everything pyvaccel reads from its environment, as one value.

    `plugins` is the `:`-separated list of VACCEL_PLUGINS (or a list). `exec_allow` lists the
    `module:function` callables the numpy plugin's exec may run (none by default).
    """

    plugins: list[str] | str = field(default_factory=list)
    log_level: int = 1
    log_file: str | None = None
    rpc_address: str = DEFAULT_RPC_ADDRESS
    agent_endpoint: str = DEFAULT_AGENT_ENDPOINT
    exec_allow: list[str] = field(default_factory=list)
    rpc_timeout: float | None = None
    #: Every VACCEL_* variable: plugins read their own settings here (VACCEL_PYNQ_*).
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.plugins, str):
            self.plugins = [p for p in self.plugins.split(":") if p]
        if not 0 <= int(self.log_level) <= 4:
            raise BadArgumentError(message=f"log_level={self.log_level} is out of range 0-4")

    @property
    def plugin_list(self) -> list[str]:
        assert not isinstance(self.plugins, str)  # normalised in __post_init__
        return self.plugins

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read VACCEL_* variables (os.environ by default)."""
        env = os.environ if env is None else env
        plugins = _first(env, "VACCEL_PLUGINS", "VACCEL_BACKENDS")
        address = _first(env, "VACCEL_RPC_ADDRESS", "VACCEL_VSOCK")
        allow = env.get("VACCEL_EXEC_ALLOW", "")
        return cls(
            plugins=plugins[1] if plugins else [],
            log_level=_int_var(env, ("VACCEL_LOG_LEVEL", "VACCEL_DEBUG_LEVEL"), 1, 0, 4),
            log_file=env.get("VACCEL_LOG_FILE") or None,
            rpc_address=address[1] if address else DEFAULT_RPC_ADDRESS,
            agent_endpoint=env.get("VACCEL_AGENT_ENDPOINT") or DEFAULT_AGENT_ENDPOINT,
            exec_allow=[a for a in allow.replace(",", " ").split() if a],
            rpc_timeout=positive_setting(env, "VACCEL_RPC_TIMEOUT", float),
            env={k: v for k, v in env.items() if k.startswith("VACCEL_")},
        )
