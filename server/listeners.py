"""Listening sockets for each address kind: TCP, unix and AF_VSOCK."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable

from vaccel.protocol.address import Address

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def vsock_available() -> bool:
    """Whether this kernel offers AF_VSOCK sockets at all."""
    if not hasattr(socket, "AF_VSOCK"):
        return False
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def vsock_socket(address: Address) -> socket.socket:
    """A bound, listening, non-blocking AF_VSOCK socket."""
    if not hasattr(socket, "AF_VSOCK"):
        raise OSError("AF_VSOCK is not supported by this Python or platform")
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        # Port 0 asks for any free port, as with TCP (VMADDR_PORT_ANY is -1 for vsock).
        sock.bind((address.cid, address.port or 0xFFFFFFFF))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover from an agent that died
    else:
        raise OSError(f"another process is already serving {path}")
    finally:
        probe.close()


async def listen(
    loop: asyncio.AbstractEventLoop, address: Address, factory: ProtocolFactory
) -> tuple[asyncio.Server, Address]:
    """Start serving `address` on `loop`; returns the server and the address actually bound."""
    if address.scheme == "tcp":
        server = await loop.create_server(
            factory, address.host, address.port, reuse_address=True, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        return server, Address("tcp", host=address.host, port=port)
    if address.scheme == "unix":
        _remove_stale_unix_socket(address.path)
        server = await loop.create_unix_server(factory, address.path, backlog=1024)
        return server, address
    sock = vsock_socket(address)
    server = await loop.create_server(factory, sock=sock)
    port = sock.getsockname()[1]
    return server, Address("vsock", cid=address.cid, port=port)
