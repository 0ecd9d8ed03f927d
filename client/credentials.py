"""What a client proves to its agents: a token, and TLS settings for tls:// addresses.

VACCEL_RPC_TOKEN (`tenant:token`) or VACCEL_RPC_TOKEN_FILE (a file holding it) for
agents that want a token (HMAC challenge-response: the token is never sent).
VACCEL_RPC_TLS_CA (the CA that signed the agent's certificate; default: the system's),
VACCEL_RPC_TLS_CERT and VACCEL_RPC_TLS_KEY (a client certificate, for agents that
require one). Hostnames are verified; TLS 1.2 at the least.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from vaccel.config import Config
from vaccel.errors import BadArgumentError
from vaccel.protocol.address import Address, AddressError, parse_address

from .blocking import BlockingClient
from .common import token_from


def tls_client_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A client context: verify the agent (hostname included), offer a certificate if given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise BadArgumentError(
            message=f"cannot load the TLS settings (VACCEL_RPC_TLS_CA={ca!r}, "
            f"VACCEL_RPC_TLS_CERT={cert!r}, VACCEL_RPC_TLS_KEY={key!r}): {exc}"
        ) from None
    return context


@dataclass
class Credentials:
    """Per-address connection settings."""

    ssl_context: ssl.SSLContext | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def for_address(self, address: Address) -> dict[str, Any]:
        """Keyword arguments for a client connecting to `address`."""
        kwargs = dict(self.extra)
        if address.scheme == "tls":
            kwargs["ssl_context"] = self.ssl_context
        return kwargs


def client_credentials(config: Config, addresses: list[Address]) -> Credentials:
    """The credentials the VACCEL_RPC_* settings describe, for these agents."""
    env = config.env
    context = None
    if any(a.scheme == "tls" for a in addresses):
        context = tls_client_context(
            env.get("VACCEL_RPC_TLS_CA") or None,
            env.get("VACCEL_RPC_TLS_CERT") or None,
            env.get("VACCEL_RPC_TLS_KEY") or None,
        )
    return Credentials(context, {"token": token_from(env)})


def tool_client(
    address: str, timeout: float, *, public: bool = False, keepalive: float = 0.0
) -> BlockingClient:
    """A blocking client for the commands (info, top, health), with the VACCEL_RPC_TOKEN
    and VACCEL_RPC_TLS_* settings of the environment; `public`: no token needed."""
    try:
        parsed = parse_address(address)
    except AddressError as exc:
        raise BadArgumentError(message=str(exc)) from None
    kwargs = client_credentials(Config.from_env(), [parsed]).for_address(parsed)
    return BlockingClient(parsed, timeout, keepalive=keepalive, public=public, **kwargs)
