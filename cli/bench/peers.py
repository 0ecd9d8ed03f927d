"""The benchmark's baselines: servers that do the same transport work as the agent, and
nothing else. Run as `python -m vaccel.cli.bench.peers ADDR...`; prints `ready ADDR` per address.

* echo (tcp/unix, uvloop): writes back every byte it reads, for the ping-pong baseline.
* bulk (tcp, blocking sockets): reads a 16-byte header (bytes in, bytes out), receives
  that many bytes with recv_into, then sends the reply with sendall: the raw cost of
  moving a vadd's payload over the same loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import sys
import threading

BULK_HEADER = struct.Struct(">QQ")


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def _recv_exact(conn: socket.socket, view: memoryview) -> bool:
    while view.nbytes:
        n = conn.recv_into(view)
        if not n:
            return False
        view = view[n:]
    return True


def _bulk_client(conn: socket.socket) -> None:
    header = bytearray(BULK_HEADER.size)
    inbuf = bytearray()
    outbuf = bytearray()
    with conn:
        while _recv_exact(conn, memoryview(header)):
            n_in, n_out = BULK_HEADER.unpack(header)
            if len(inbuf) < n_in:
                inbuf = bytearray(n_in)
            if len(outbuf) < n_out:
                outbuf = bytearray(n_out)
            if not _recv_exact(conn, memoryview(inbuf)[:n_in]):
                return
            conn.sendall(memoryview(outbuf)[:n_out])


def _bulk_server(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_bulk_client, args=(conn,), daemon=True).start()


async def _main(unix_path: str) -> None:
    loop = asyncio.get_running_loop()
    tcp = await loop.create_server(_Echo, "127.0.0.1", 0)
    print(f"ready echo tcp://127.0.0.1:{tcp.sockets[0].getsockname()[1]}", flush=True)
    await loop.create_unix_server(_Echo, unix_path)
    print(f"ready echo unix://{unix_path}", flush=True)
    bulk = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_bulk_server, args=(bulk,), daemon=True).start()
    print(f"ready bulk tcp://127.0.0.1:{bulk.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    if os.path.exists(sys.argv[1]):
        os.unlink(sys.argv[1])
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_main(sys.argv[1]))
