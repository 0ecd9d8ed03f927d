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


DEFAULT_PLUGINS = "libvaccel-noop.so"


@dataclass
class Config:
    """Everything pyvaccel reads from its environment, as one value (vaccel-python's Config).

    `Config(plugins="libvaccel-noop.so", log_level=1, log_file=None, *,
    profiling_enabled=False, version_ignore=False)`, plus pyvaccel's own keyword-only
    settings. `plugins` is the `:`-separated VACCEL_PLUGINS string (a list is joined).
    `exec_allow` lists the exact `module:function` callables the numpy plugin's exec
    may run (none by default).

    The five fields of vaccel-python's Config are the arguments (or their defaults);
    the plugins' own settings not given as keywords come from the environment, as
    vAccel's plugins read theirs (`Config("libvaccel-vsock.so")` reaches the agent that
    VACCEL_RPC_ADDRESS names; VACCEL_EXEC_ALLOW, VACCEL_RPC_TIMEOUT, VACCEL_PYNQ_*...).

    Example:
        >>> Config("numpy", 4).plugins
        'numpy'
    """

    plugins: str = DEFAULT_PLUGINS
    log_level: int = 1
    log_file: str | None = None
    profiling_enabled: bool = field(default=False, kw_only=True)
    version_ignore: bool = field(default=False, kw_only=True)
    rpc_address: str = field(default_factory=lambda: _rpc_address(os.environ), kw_only=True)
    agent_endpoint: str = field(default_factory=lambda: _agent_endpoint(os.environ), kw_only=True)
    exec_allow: list[str] = field(default_factory=lambda: _exec_allow(os.environ), kw_only=True)
    rpc_timeout: float | None = field(
        default_factory=lambda: positive_setting(os.environ, "VACCEL_RPC_TIMEOUT", float),
        kw_only=True,
    )
    #: Seconds of silence before the rpc plugin PINGs its agent (0: never).
    rpc_keepalive: float = field(default_factory=lambda: _keepalive(os.environ), kw_only=True)
    #: Every VACCEL_* variable: plugins read their own settings here (VACCEL_PYNQ_*, ...).
    env: dict[str, str] = field(default_factory=lambda: _vaccel_vars(os.environ), kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.plugins, str):
            self.plugins = ":".join(self.plugins)
        if isinstance(self.log_level, bool) or not 0 <= int(self.log_level) <= 4:
            raise BadArgumentError(message=f"log_level={self.log_level} is out of range 0-4")
        self.log_level = int(self.log_level)

    @property
    def plugin_list(self) -> list[str]:
        """The plugins to load, in priority order."""
        return [p for p in self.plugins.split(":") if p]

    def __repr__(self) -> str:
        return (
            f"Config(plugins={self.plugins!r}, log_level={self.log_level}, "
            f"log_file={self.log_file!r}, profiling_enabled={self.profiling_enabled}, "
            f"version_ignore={self.version_ignore})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read VACCEL_* variables (os.environ by default); no VACCEL_PLUGINS loads nothing."""
        env = os.environ if env is None else env
        plugins = _first(env, "VACCEL_PLUGINS", "VACCEL_BACKENDS")
        return cls(
            plugins=plugins[1] if plugins else "",
            log_level=_int_var(env, ("VACCEL_LOG_LEVEL", "VACCEL_DEBUG_LEVEL"), 1, 0, 4),
            log_file=env.get("VACCEL_LOG_FILE") or None,
            profiling_enabled=_flag(env, "VACCEL_PROFILING_ENABLED"),
            version_ignore=_flag(env, "VACCEL_VERSION_IGNORE", "VACCEL_IGNORE_VERSION"),
            rpc_address=_rpc_address(env),
            agent_endpoint=_agent_endpoint(env),
            exec_allow=_exec_allow(env),
            rpc_timeout=positive_setting(env, "VACCEL_RPC_TIMEOUT", float),
            rpc_keepalive=_keepalive(env),
            env=_vaccel_vars(env),
        )


def _rpc_address(env: Mapping[str, str]) -> str:
    address = _first(env, "VACCEL_RPC_ADDRESS", "VACCEL_VSOCK")
    return address[1] if address else DEFAULT_RPC_ADDRESS


def _agent_endpoint(env: Mapping[str, str]) -> str:
    return env.get("VACCEL_AGENT_ENDPOINT") or DEFAULT_AGENT_ENDPOINT


def _exec_allow(env: Mapping[str, str]) -> list[str]:
    allow = env.get("VACCEL_EXEC_ALLOW", "")
    return [a for a in allow.replace(",", " ").split() if a]


def _vaccel_vars(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("VACCEL_")}


def _flag(env: Mapping[str, str], *names: str) -> bool:
    """A boolean variable (the first of `names` set): a non-zero number, as vAccel reads
    it, or true/yes/on (any case)."""
    found = _first(env, *names)
    if found is None:
        return False
    raw = found[1].strip().lower()
    try:
        return int(raw) != 0
    except ValueError:
        return raw in ("true", "yes", "on")


def _keepalive(env: Mapping[str, str]) -> float:
    raw = env.get("VACCEL_RPC_KEEPALIVE")
    if not raw:
        return 5.0
    try:
        value = float(raw)
    except ValueError:
        raise BadArgumentError(
            message=f"VACCEL_RPC_KEEPALIVE={raw!r} is not a number of seconds"
        ) from None
    if value < 0:
        raise BadArgumentError(message=f"VACCEL_RPC_KEEPALIVE={raw!r} must be 0 (off) or more")
    return value
