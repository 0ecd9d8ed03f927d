"""Who may talk to the agent: TLS (and mutual TLS) settings, unix socket permissions.

TLS listeners (`tls://`) use `--tls-cert`/`--tls-key`; with `--tls-client-ca` every
client must present a certificate signed by that CA (mutual TLS), and its subject names
the client's tenant. Unix sockets get `--socket-mode` and `--socket-group`.
"""

from __future__ import annotations

import grp
import os
import ssl

from .config import AgentConfig


def server_ssl_context(config: AgentConfig) -> ssl.SSLContext:
    """The context of tls:// listeners; ValueError says which setting is missing or bad."""
    if not config.tls_cert:
        raise ValueError("a tls:// address needs --tls-cert (and --tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
        if config.tls_client_ca:
            context.load_verify_locations(config.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS settings: {exc}") from None
    return context


def unix_socket_permissions(path: str, config: AgentConfig) -> None:
    """Apply --socket-mode and --socket-group to a unix socket file."""
    if config.socket_group:
        try:
            gid = grp.getgrnam(config.socket_group).gr_gid
        except KeyError:
            gid = int(config.socket_group) if config.socket_group.isdigit() else -1
            if gid < 0:
                raise ValueError(f"--socket-group {config.socket_group!r}: no such group") from None
        os.chown(path, -1, gid)
    if config.socket_mode:
        try:
            mode = int(config.socket_mode, 8)
        except ValueError:
            raise ValueError(f"--socket-mode {config.socket_mode!r} is not an octal mode") from None
        os.chmod(path, mode)
