"""The agent's settings: every flag of `vaccel-agent`, and the same keys in a TOML file.

Each setting is declared once (`SETTINGS`): its flag (the TOML key is the flag's long
name without dashes), type, default and help text. `vaccel-agent --config FILE` reads
the TOML file; flags given on the command line win over the file. Per-peer limits
default to a quarter of the agent-wide limit they narrow, so no single peer (a TCP
source address, a vsock CID, a unix uid) can use up what the agent has for everyone.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaccel.buffers import DEFAULT_LIMIT as DEFAULT_POOL
from vaccel.compat import tomllib

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size(text: Any) -> int:
    """A byte count: an integer, or a number with a K, M, G or T suffix (powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    raw = str(text).strip()
    scale = _UNITS.get(raw[-1:].upper(), 1)
    number = raw[:-1] if scale > 1 else raw
    if raw.upper().endswith("B") and scale == 1:
        return size(raw[:-1])
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"{text!r} is not a size like 512M or 4G")
    return int(number) * scale


def size_or_off(text: Any) -> int:
    """A byte count as `size`, or 0 (off)."""
    return 0 if str(text).strip() == "0" else size(text)


def positive_int(text: Any) -> int:
    """A positive integer."""
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive integer")
    return value


def seconds(text: Any) -> float:
    """A non-negative number of seconds (0 turns the timeout off)."""
    value = float(text)
    if value < 0:
        raise ValueError(f"{text!r} must be 0 or more seconds")
    return value


def default_memory() -> int:
    """Half of this machine's memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 4 << 30


@dataclass(frozen=True)
class Setting:
    """One agent setting: flag, TOML key, type, default and what it protects."""

    name: str  # the flag's long name, also the TOML key
    parse: Callable[[Any], Any]
    default: Any
    help: str
    #: For per-peer limits: the agent-wide setting they default to a quarter of.
    quarter_of: str | None = None
    repeat: bool = False
    short: str | None = None

    @property
    def attr(self) -> str:
        """The AgentConfig attribute."""
        return self.name.replace("-", "_")


SETTINGS: list[Setting] = [
    Setting(
        "address",
        str,
        None,
        "where to listen: tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH or vsock://CID:PORT "
        "(repeatable; default $VACCEL_AGENT_ENDPOINT)",
        repeat=True,
        short="-a",
    ),
    Setting("plugins", str, None, "plugins to load, `:`-separated (default $VACCEL_PLUGINS)"),
    Setting(
        "workers",
        positive_int,
        None,
        "threads for blocking plugin work (default: cores + 4, at most 32)",
    ),
    Setting(
        "max-memory",
        size,
        None,
        "bytes everything clients make the agent hold may total: buffers of calls in flight, "
        "results, queued replies, resources (e.g. 4G; default: half of this machine's memory)",
    ),
    Setting("max-peer-memory", size, None, "the same, for one peer", quarter_of="max-memory"),
    Setting(
        "max-connection-memory",
        size,
        None,
        "the same, for one connection (default: the per-peer value)",
    ),
    Setting("max-connections", positive_int, 4096, "client connections at once"),
    Setting(
        "max-peer-connections",
        positive_int,
        None,
        "connections of one peer",
        quarter_of="max-connections",
    ),
    Setting("max-sessions", positive_int, 65536, "sessions kept for all clients together"),
    Setting(
        "max-peer-sessions", positive_int, None, "sessions of one peer", quarter_of="max-sessions"
    ),
    Setting("max-connection-sessions", positive_int, 4096, "sessions of one connection"),
    Setting("max-calls", positive_int, 8192, "calls in flight for all clients together"),
    Setting(
        "max-peer-calls", positive_int, None, "calls in flight of one peer", quarter_of="max-calls"
    ),
    Setting("max-streams", positive_int, 1024, "calls in flight on one connection"),
    Setting("max-resources", positive_int, 65536, "resources kept for all clients together"),
    Setting(
        "buffer-pool",
        size_or_off,
        None,
        "bytes of warm buffers kept for large arrays, set aside from --max-memory "
        "(0 turns it off; default: 256M or an eighth of --max-memory, the smaller)",
    ),
    Setting(
        "resource-cache",
        size_or_off,
        None,
        "bytes of resource files kept after use, so a tenant uploads a model once "
        "(counted in --max-memory; 0 turns it off; default: an eighth of --max-memory)",
    ),
    Setting(
        "max-peer-resources",
        positive_int,
        None,
        "resources of one peer",
        quarter_of="max-resources",
    ),
    Setting("max-message", size, "1G", "bytes of buffers one message may carry"),
    Setting("max-frame", size, "4M", "largest frame payload accepted"),
    Setting("max-header", size, "1M", "largest message body (REQUEST header) accepted"),
    Setting("max-buffers", positive_int, 4096, "out-of-band buffers one message may carry"),
    Setting(
        "max-elements",
        positive_int,
        16384,
        "values (list and map entries) one message body may hold: bounds decoding time",
    ),
    Setting("max-depth", positive_int, 32, "nesting of lists and maps in a message body"),
    Setting(
        "max-queued-replies",
        size,
        "8M",
        "bytes of replies waiting for a slow reader before its connection is no longer read",
    ),
    Setting("handshake-timeout", seconds, 10.0, "seconds a new connection has to send HELLO"),
    Setting(
        "idle-timeout",
        seconds,
        300.0,
        "seconds a connection with no call in flight may stay silent before it is closed",
    ),
    Setting(
        "progress-timeout",
        seconds,
        30.0,
        "seconds a started frame, or a message's data, may go without arriving at the minimum "
        "rate before it is dropped",
    ),
    Setting(
        "min-rate", size, "64K", "bytes per second a message's data must arrive at, at the least"
    ),
    Setting("drain-timeout", seconds, 10.0, "seconds in-flight calls get to finish on SIGTERM"),
    Setting("metrics-address", str, None, "serve Prometheus metrics at tcp://HOST:PORT/metrics"),
    Setting(
        "token-file",
        str,
        None,
        "tenant:token lines; clients must prove a token (re-read on SIGHUP)",
    ),
    Setting("tls-cert", str, None, "certificate chain for tls:// listeners (PEM)"),
    Setting("tls-key", str, None, "private key of --tls-cert (PEM)"),
    Setting(
        "tls-client-ca", str, None, "require client certificates signed by this CA (mutual TLS)"
    ),
    Setting("allow-cid", str, None, "vsock CIDs allowed to connect (comma-separated; default all)"),
    Setting("allow-uid", str, None, "unix uids allowed to connect (comma-separated; default all)"),
    Setting("socket-mode", str, None, "mode of unix socket files, octal (e.g. 660)"),
    Setting("socket-group", str, None, "group of unix socket files"),
    Setting("processes", positive_int, 1, "worker processes sharing the TCP ports (SO_REUSEPORT)"),
]
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass
class AgentConfig:
    """Every agent setting, resolved (defaults filled in, per-peer quarters computed)."""

    address: list[str] = field(default_factory=list)
    plugins: str | None = None
    workers: int | None = None
    max_memory: int = 0
    max_peer_memory: int = 0
    max_connection_memory: int = 0
    max_connections: int = 4096
    max_peer_connections: int = 0
    max_sessions: int = 65536
    max_peer_sessions: int = 0
    max_connection_sessions: int = 4096
    max_calls: int = 8192
    max_peer_calls: int = 0
    max_streams: int = 1024
    max_resources: int = 65536
    max_peer_resources: int = 0
    resource_cache: int | None = None
    buffer_pool: int | None = None
    max_message: int = 1 << 30
    max_frame: int = 4 << 20
    max_header: int = 1 << 20
    max_buffers: int = 4096
    max_elements: int = 16384
    max_depth: int = 32
    max_queued_replies: int = 8 << 20
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    progress_timeout: float = 30.0
    min_rate: int = 64 << 10
    drain_timeout: float = 10.0
    metrics_address: str | None = None
    token_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    allow_cid: str | None = None
    allow_uid: str | None = None
    socket_mode: str | None = None
    socket_group: str | None = None
    processes: int = 1
    #: [tenants.NAME] tables: per-tenant limits (keys as the agent-wide settings).
    tenants: dict[str, dict[str, int]] = field(default_factory=dict)

    def resolve(self) -> AgentConfig:
        """Fill in derived defaults (memory, per-peer quarters, per-connection memory)."""
        if not self.max_memory:
            self.max_memory = default_memory()
        for setting in SETTINGS:
            if setting.quarter_of and not getattr(self, setting.attr):
                whole = getattr(self, BY_NAME[setting.quarter_of].attr)
                setattr(self, setting.attr, max(1, whole // 4))
        if not self.max_connection_memory:
            self.max_connection_memory = self.max_peer_memory
        if self.resource_cache is None:
            self.resource_cache = self.max_memory // 8
        if self.buffer_pool is None:
            self.buffer_pool = min(DEFAULT_POOL, self.max_memory // 8)
        return self

    def pool_share(self) -> int:
        """The bytes of --max-memory set aside for the warm buffer pool."""
        return min(self.buffer_pool or 0, self.max_memory // 2)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], origin: str) -> AgentConfig:
        """Settings from a TOML table (keys are the flags' long names)."""
        config = cls()
        config.update(values, origin)
        return config

    def update(self, values: Mapping[str, Any], origin: str) -> None:
        """Apply settings (from a file or flags), checking each; ValueError names the key."""
        for key, raw in values.items():
            if raw is None:
                continue
            if key == "tenants":
                self.tenants = _tenants(raw, origin)
                continue
            setting = BY_NAME.get(key)
            if setting is None:
                raise ValueError(f"{origin}: unknown setting {key!r}")
            try:
                if setting.repeat:
                    items = raw if isinstance(raw, list) else [raw]
                    value: Any = [setting.parse(v) for v in items]
                else:
                    value = setting.parse(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{origin}: {key} = {raw!r}: {exc}") from None
            setattr(self, setting.attr, value)


_TENANT_KEYS = {
    "max-sessions": positive_int,
    "max-memory": size,
    "max-calls": positive_int,
    "max-resources": positive_int,
    "max-resource-bytes": size,
    "max-connections": positive_int,
}


def _tenants(raw: Any, origin: str) -> dict[str, dict[str, int]]:
    if not isinstance(raw, dict):
        raise ValueError(f"{origin}: tenants must be tables [tenants.NAME]")
    out: dict[str, dict[str, int]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"{origin}: [tenants.{name}] must be a table")
        limits: dict[str, int] = {}
        for key, value in table.items():
            parse = _TENANT_KEYS.get(key)
            if parse is None:
                raise ValueError(
                    f"{origin}: [tenants.{name}] {key!r} is not a tenant limit "
                    f"({', '.join(sorted(_TENANT_KEYS))})"
                )
            try:
                limits[key.replace("-", "_")] = parse(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{origin}: [tenants.{name}] {key} = {value!r}: {exc}") from None
        out[str(name)] = limits
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, with its default shown."""
    parser.add_argument("--config", metavar="FILE", help="a TOML file of these settings")
    for setting in SETTINGS:
        names = [f"--{setting.name}"] + ([setting.short] if setting.short else [])
        shown = setting.default
        if setting.quarter_of:
            shown = f"a quarter of --{setting.quarter_of}"
        if shown is None and "default" not in setting.help:
            shown = "not set"
        help_text = setting.help + (f" (default: {shown})" if shown is not None else "")
        parser.add_argument(
            *names,
            dest=setting.attr,
            action="append" if setting.repeat else "store",
            default=None,
            help=help_text,
        )


def from_arguments(ns: argparse.Namespace) -> AgentConfig:
    """Defaults, then the --config file, then the flags given."""
    config = AgentConfig()
    config.update({s.name: s.default for s in SETTINGS if s.default is not None}, "defaults")
    if ns.config:
        try:
            with open(ns.config, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ValueError(f"--config {ns.config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"--config {ns.config}: not valid TOML: {exc}") from None
        config.update(data, ns.config)
    given = {s.name: getattr(ns, s.attr) for s in SETTINGS if getattr(ns, s.attr) is not None}
    config.update(given, "command line")
    return config.resolve()


def parse_list(raw: str | None, what: str) -> frozenset[int] | None:
    """A comma-separated list of integers (None: no restriction)."""
    if not raw:
        return None
    try:
        return frozenset(int(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{what} takes comma-separated numbers; got {raw!r}") from None


__all__: Sequence[str] = ["SETTINGS", "AgentConfig", "add_arguments", "from_arguments", "size"]
