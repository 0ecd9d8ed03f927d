"""One way to connect and one way to listen for each address scheme.

TCP and unix sockets use the loop's own transports (uvloop's where it runs). AF_VSOCK
uses `SocketTransport` on the same loop, since uvloop cannot adopt vsock sockets. The
blocking client gets a plain connected socket from `open_blocking`. TLS wraps TCP
(`tls://`) with an `ssl.SSLContext` on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import stat
from collections.abc import Callable
from typing import Any

from vaccel.protocol.address import Address

from .fdtransport import SocketServer, SocketTransport

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is a uvloop loop."""
    return type(loop).__module__.startswith("uvloop")


def vsock_available() -> bool:
    """Whether this kernel offers AF_VSOCK sockets at all."""
    if not hasattr(socket, "AF_VSOCK"):
        return False
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def _vsock() -> socket.socket:
    if not hasattr(socket, "AF_VSOCK"):
        raise OSError("AF_VSOCK is not supported by this Python or platform")
    return socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)


def _tune(sock: socket.socket, address: Address) -> None:
    """Low latency for small calls: no Nagle delay on TCP."""
    if address.scheme in ("tcp", "tls"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ---------------------------------------------------------------------- connecting


def open_blocking(
    address: Address,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    source: str | None = None,
) -> socket.socket:
    """A connected blocking socket (TLS-wrapped for tls://); OSError says why not."""
    if address.scheme in ("tcp", "tls"):
        sock = socket.create_connection(
            (address.host, address.port),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
    else:
        sock = _vsock() if address.scheme == "vsock" else socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        try:
            sock.connect((address.cid, address.port) if address.scheme == "vsock" else address.path)
        except BaseException:
            sock.close()
            raise
    _tune(sock, address)
    if address.scheme == "tls":
        assert ssl_context is not None, "tls:// needs an SSL context"
        try:
            sock = ssl_context.wrap_socket(sock, server_hostname=address.host)
        except BaseException:
            sock.close()
            raise
    return sock


async def open_connection(
    address: Address,
    factory: ProtocolFactory,
    ssl_context: ssl.SSLContext | None = None,
    source: str | None = None,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """Connect to `address` on the running loop; returns (transport, protocol)."""
    loop = asyncio.get_running_loop()
    local = (source, 0) if source else None
    if address.scheme == "tcp":
        return await loop.create_connection(factory, address.host, address.port, local_addr=local)
    if address.scheme == "tls":
        return await loop.create_connection(
            factory,
            address.host,
            address.port,
            ssl=ssl_context,
            server_hostname=address.host,
            local_addr=local,
        )
    if address.scheme == "unix":
        return await loop.create_unix_connection(factory, address.path)
    sock = _vsock()
    sock.setblocking(False)
    try:
        await _connect(loop, sock, (address.cid, address.port))
    except BaseException:
        sock.close()
        raise
    protocol = factory()
    transport = SocketTransport(loop, sock, protocol)
    await asyncio.sleep(0)  # let connection_made run, as create_connection does
    return transport, protocol


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, where: Any) -> None:
    """A non-blocking connect through the loop's writer callback (uvloop's `sock_connect`
    takes only host/port addresses, not AF_VSOCK's (CID, port))."""
    code = sock.connect_ex(where)
    if code == 0:
        return
    if code not in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
        raise OSError(code, os.strerror(code))
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


# ---------------------------------------------------------------------- listening


def remove_stale_unix_socket(path: str) -> None:
    """Clear `path` for a new listener: remove a socket file nobody serves; refuse a file
    that is not a socket, or one another process still serves."""
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


def vsock_listener(address: Address) -> socket.socket:
    """A non-blocking AF_VSOCK socket listening on `address` (port 0: any free port)."""
    sock = _vsock()
    try:
        # Port 0 asks for any free port, as with TCP (VMADDR_PORT_ANY is -1 for vsock).
        sock.bind((address.cid, address.port or 0xFFFFFFFF))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def listen(
    address: Address,
    factory: ProtocolFactory,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Any, Address]:
    """Serve `address` on the running loop; returns the server and the address bound."""
    loop = asyncio.get_running_loop()
    if address.scheme in ("tcp", "tls"):
        server = await loop.create_server(
            factory,
            address.host,
            address.port,
            reuse_address=True,
            backlog=1024,
            ssl=ssl_context if address.scheme == "tls" else None,
        )
        port = server.sockets[0].getsockname()[1]
        return server, Address(address.scheme, host=address.host, port=port)
    if address.scheme == "unix":
        remove_stale_unix_socket(address.path)
        server = await loop.create_unix_server(factory, address.path, backlog=1024)
        return server, address
    sock = vsock_listener(address)
    port = sock.getsockname()[1]
    return SocketServer(loop, sock, factory), Address("vsock", cid=address.cid, port=port)
