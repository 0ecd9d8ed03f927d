"""A pre-encoded load generator: the agent's capacity in calls/s, not the client's.

Each generator is a process with one connection, one session and WINDOW `noop` calls
always in flight: every request is encoded once and only its stream id patched, and
answers are counted from the frame headers, so a generator costs far less per call than
the agent. Run one as `python -m vaccel.cli.bench.loadgen ADDR SECONDS WINDOW` (JSON out).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from vaccel.enums import OpType
from vaccel.protocol.address import parse_address
from vaccel.protocol.connection import Connection
from vaccel.protocol.events import Hello, Response
from vaccel.protocol.frames import HEADER, FrameType

NOOP = int(OpType.NOOP)


def _connect(address: str) -> socket.socket:
    a = parse_address(address)
    if a.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(a.path)
    else:
        sock = socket.create_connection((a.host, a.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(10)
    return sock


def _until(sock: socket.socket, proto: Connection, want: type, stream: int = 0) -> Any:
    while True:
        n = sock.recv_into(proto.get_buffer())
        if not n:
            raise ConnectionError("the agent closed the connection")
        for event in proto.buffer_updated(n):
            if isinstance(event, want) and (not stream or getattr(event, "stream_id", 0) == stream):
                return event


def loadgen(address: str, seconds: float, window: int) -> dict[str, float]:
    """Keep `window` pre-encoded noop calls in flight for `seconds`; calls answered."""
    sock = _connect(address)
    proto = Connection(client=True, agent="loadgen")
    sock.sendall(proto.hello())
    _until(sock, proto, Hello)
    sid, frames = proto.request("session.create", [0])
    sock.sendall(b"".join(bytes(c) for f in frames for c in f))
    session = _until(sock, proto, Response, sid).result
    stream, frames = proto.request("op", [session, NOOP, []])
    template = b"".join(bytes(c) for f in frames for c in f)
    length, _, kind, _ = HEADER.unpack_from(template)
    assert kind == FrameType.REQUEST and len(template) == HEADER.size + length, "one frame"
    size = len(template)
    batch = bytearray(template * window)
    next_id = stream  # the first pre-encoded stream id is `stream` itself

    def send(count: int) -> None:
        nonlocal next_id
        for i in range(count):
            struct.pack_into(">I", batch, i * size + 4, next_id)
            next_id += 2
        sock.sendall(memoryview(batch)[: count * size])

    buf = bytearray(1 << 20)
    view = memoryview(buf)
    have = 0  # bytes of an incomplete frame kept at the start of buf
    answered = errors = 0
    send(window)
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        n = sock.recv_into(view[have:])
        if not n:
            raise ConnectionError("the agent closed the connection")
        have += n
        pos = done = 0
        while have - pos >= HEADER.size:
            length, _, kind, _ = HEADER.unpack_from(buf, pos)
            if have - pos < HEADER.size + length:
                break
            if kind == FrameType.RESPONSE:
                done += 1
                # The payload starts with [status, ...] (msgpack fixarray, then status).
                if buf[pos + HEADER.size + 1] != 0:
                    errors += 1
            pos += HEADER.size + length
        buf[: have - pos] = buf[pos:have]
        have -= pos
        answered += done
        if time.perf_counter() >= deadline:
            break
        if done:
            send(done)
    elapsed = time.perf_counter() - start
    sock.close()
    return {"calls": answered, "errors": errors, "seconds": elapsed}


def run_generators(address: str, count: int, seconds: float, window: int) -> dict[str, float]:
    """`count` generator processes at once; their calls/s added up."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vaccel.cli.bench.loadgen", address, str(seconds), str(window)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        assert proc.returncode == 0, out
        results.append(json.loads(out))
    calls = sum(r["calls"] for r in results)
    return {
        "calls_per_s": sum(r["calls"] / r["seconds"] for r in results),
        "calls": calls,
        "errors": sum(r["errors"] for r in results),
    }


if __name__ == "__main__":
    print(json.dumps(loadgen(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
