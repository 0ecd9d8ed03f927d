"""The sans-IO protocol: frames, codec, handshake, limits, whole and byte at a time."""

from __future__ import annotations

import ast
import contextlib
import struct
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaccel.protocol import codec
from vaccel.protocol.address import VMADDR_CID_ANY, AddressError, parse_address
from vaccel.protocol.connection import Connection
from vaccel.protocol.errors import ProtocolError
from vaccel.protocol.events import Cancel, GoAway, Hello, Ping, Rejected, Request, Response
from vaccel.protocol.frames import HEADER, Flags, FrameType, abort_frame, frame
from vaccel.protocol.limits import Limits
from vaccel.protocol.status import Status

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocol"


def test_protocol_package_is_sans_io() -> None:
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"asyncio", "socket", "uvloop", "selectors"}, (
                    f"{path.name} imports {name}"
                )


def descriptor(dtype: bytes, *shape: int) -> bytes:
    """An array descriptor as PROTOCOL.md section 4 lays it out."""
    return (
        bytes((len(dtype),)) + dtype + bytes((len(shape),)) + struct.pack(f">{len(shape)}Q", *shape)
    )


def pair(limits: Limits | None = None) -> tuple[Connection, Connection]:
    client, server = Connection(True), Connection(False, limits or Limits())
    assert isinstance(server.receive(client.hello())[0], Hello)
    assert isinstance(client.receive(server.hello())[0], Hello)
    return client, server


def wire(frames: list[list[Any]]) -> bytes:
    return b"".join(bytes(c) for f in frames for c in f)


def feed(conn: Connection, data: bytes, step: int | None = None) -> list[Any]:
    if step is None:
        return conn.receive(data)
    events = []
    for i in range(0, len(data), step):
        events += conn.receive(data[i : i + step])
    return events


@pytest.mark.parametrize("step", [None, 1, 7, 4096])
def test_request_response_roundtrip(step: int | None) -> None:
    client, server = pair(Limits(max_frame=16 * 1024))
    big = np.arange(50_000, dtype=np.float32)
    args = [7, 19, [big, np.arange(3, dtype=np.int32), b"x" * 3000, b"small", "text", 1.5, None]]
    sid, chunks = client.request("op", args, timeout=2.0, metadata={"k": "v"})
    (req,) = feed(server, wire(chunks), step)
    assert isinstance(req, Request) and req.stream_id == sid == 1
    assert req.method == "op" and req.timeout == 2.0 and req.metadata == {"k": "v"}
    got = req.args
    np.testing.assert_array_equal(got[2][0], big)
    assert got[2][1].dtype == np.int32 and got[2][1].tolist() == [0, 1, 2]
    assert got[2][2:] == [b"x" * 3000, b"small", "text", 1.5, None]
    resp_chunks = server.response(sid, Status.OK, "", 0, [got[2][0] * 2])
    (resp,) = feed(client, wire(resp_chunks), step)
    assert isinstance(resp, Response) and resp.status == Status.OK
    np.testing.assert_array_equal(resp.result[0], big * 2)


def test_stream_ids_odd_increasing() -> None:
    client, server = pair()
    ids = [client.request("op", [])[0] for _ in range(3)]
    assert ids == [1, 3, 5]


def test_direct_receive_into_destination() -> None:
    """With an empty scratch buffer, DATA payloads are received straight into the array."""
    client, server = pair(Limits(max_frame=1 << 20))
    big = np.arange(1 << 18, dtype=np.float32)
    _, chunks = client.request("op", [big])
    data = wire(chunks)
    head = data[: HEADER.size + HEADER.unpack_from(data)[0] + HEADER.size]
    assert server.receive(head) == []  # request header and the first DATA header
    target = server.get_buffer()
    assert target.nbytes == big.nbytes  # the destination itself, not the scratch buffer
    payload = data[len(head) :]
    target[:] = payload
    (req,) = server.buffer_updated(len(payload))
    np.testing.assert_array_equal(req.args[0], big)


def test_encode_rejects_unsendable() -> None:
    with pytest.raises(codec.EncodeError, match="object"):
        codec.prepare([object()])
    with pytest.raises(codec.EncodeError, match="dtype object"):
        codec.prepare(np.array([1, "a"], dtype=object))


def test_first_frame_must_be_hello() -> None:
    server = Connection(False)
    with pytest.raises(ProtocolError) as err:
        server.receive(frame(1, FrameType.CANCEL))
    assert err.value.fatal and err.value.status == Status.FAILED_PRECONDITION


def test_version_mismatch() -> None:
    server = Connection(False)
    hello = frame(0, FrameType.HELLO, msgpack.packb({"version": 9, "min": 9, "max": 9}))
    with pytest.raises(ProtocolError, match="version 1 is not in the peer's range 9..9"):
        server.receive(hello)


@pytest.mark.parametrize(("stream", "words"), [(2, "even"), (1, "reused")])
def test_bad_stream_ids_are_fatal(stream: int, words: str) -> None:
    client, server = pair()
    _, chunks = client.request("op", [])
    server.receive(wire(chunks))
    body = msgpack.packb(["op", [], None, {}, []])
    with pytest.raises(ProtocolError, match=words):
        server.receive(frame(stream, FrameType.REQUEST, body))


def test_oversized_frame_is_fatal_before_buffering() -> None:
    client, server = pair(Limits(max_frame=1024))
    with pytest.raises(ProtocolError) as err:
        server.receive(HEADER.pack(4 << 30 - 1, 1, FrameType.REQUEST, 0))
    assert err.value.status == Status.RESOURCE_EXHAUSTED


def test_garbage_body_rejected_on_its_stream_and_connection_survives() -> None:
    client, server = pair()
    (ev,) = server.receive(frame(1, FrameType.REQUEST, b"\xc1\xc1garbage"))
    assert isinstance(ev, Rejected) and ev.stream_id == 1 and ev.status == Status.INVALID_ARGUMENT
    client.next_stream_id = 3
    _, chunks = client.request("op", [1])
    (req,) = server.receive(wire(chunks))
    assert isinstance(req, Request) and req.args == [1]


def test_too_large_message_rejected_and_its_data_skipped() -> None:
    client, server = pair(Limits(max_message=10_000))
    client.peer_limits = Limits()  # this client ignores what the server said
    big = np.zeros(100_000, np.uint8)
    _, chunks = client.request("op", [big])
    events = server.receive(wire(chunks))
    assert [type(e) for e in events] == [Rejected]
    assert events[0].status == Status.RESOURCE_EXHAUSTED and "limit" in events[0].message
    _, chunks = client.request("op", [2])
    assert isinstance(server.receive(wire(chunks))[0], Request)


def test_streams_in_flight_limit() -> None:
    client, server = pair(Limits(max_streams=2))
    events = []
    for _ in range(3):
        events += server.receive(wire(client.request("op", [])[1]))
    assert [type(e) for e in events] == [Request, Request, Rejected]
    assert events[2].status == Status.RESOURCE_EXHAUSTED
    server.response(1, Status.OK)
    assert isinstance(server.receive(wire(client.request("op", [])[1]))[0], Request)


def test_data_without_message_is_fatal() -> None:
    client, server = pair()
    with pytest.raises(ProtocolError, match="no message"):
        server.receive(frame(1, FrameType.DATA, b"abc", Flags.END))


def test_data_overrun_is_fatal() -> None:
    client, server = pair()
    body = msgpack.packb(["op", [], None, {}, [4]])
    server.receive(frame(1, FrameType.REQUEST, body, Flags.DATA))
    with pytest.raises(ProtocolError, match="overrun"):
        server.receive(frame(1, FrameType.DATA, b"123456789", Flags.END))


def test_bad_array_reference_is_rejected() -> None:
    client, server = pair()
    ref = msgpack.ExtType(codec.EXT_ARRAY_REF, struct.pack(">I", 0) + descriptor(b"<f4", 10))
    body = msgpack.packb(["op", [ref], None, {}, [8]])
    events = server.receive(
        frame(1, FrameType.REQUEST, body, Flags.DATA)
        + frame(1, FrameType.DATA, bytes(8), Flags.END)
    )
    assert isinstance(events[0], Rejected) and "does not match" in events[0].message


def test_object_dtype_refused() -> None:
    client, server = pair()
    ext = msgpack.ExtType(codec.EXT_ARRAY_INLINE, descriptor(b"|O", 1) + b"12345678")
    (ev,) = server.receive(frame(1, FrameType.REQUEST, msgpack.packb(["op", [ext], None, {}, []])))
    assert isinstance(ev, Rejected) and "not allowed" in ev.message


@pytest.mark.parametrize("payload", [b"", b"\x03<f4", b"\x03<f4\x21", b"\x03<f4\x01\x00"])
def test_truncated_array_descriptor_is_rejected(payload: bytes) -> None:
    client, server = pair()
    ext = msgpack.ExtType(codec.EXT_ARRAY_INLINE, payload)
    (ev,) = server.receive(frame(1, FrameType.REQUEST, msgpack.packb(["op", [ext], None, {}, []])))
    assert isinstance(ev, Rejected) and ev.status == Status.INVALID_ARGUMENT


def test_cancel_ping_goaway() -> None:
    client, server = pair()
    server.receive(wire(client.request("op", [])[1]))
    assert server.receive(client.cancel(1)) == [Cancel(1)]
    (ping,) = server.receive(client.ping(b"12345678"))
    assert ping == Ping(b"12345678", False)
    (pong,) = client.receive(server.ping(ping.payload, ack=True))
    assert pong.ack
    (bye,) = client.receive(server.goaway(Status.UNAVAILABLE, "bye"))
    assert bye == GoAway(Status.UNAVAILABLE, "bye", 1)


def test_response_for_unopened_stream_is_fatal() -> None:
    client, server = pair()
    with pytest.raises(ProtocolError, match="never opened"):
        client.receive(wire(server.response(5, Status.OK)))


def test_spec_test_vectors() -> None:
    """The byte strings given in PROTOCOL.md."""
    assert HEADER.pack(0, 0, FrameType.PING, 0).hex() == "00000000000000000700"
    noop = msgpack.packb(["op", [1, 0, []], None, {}, []])
    assert noop.hex() == "95a26f7093010090c080 90".replace(" ", "")
    spec = (PROTOCOL_DIR / "PROTOCOL.md").read_text()
    assert "00000000000000000700" in spec
    assert frame(1, FrameType.REQUEST, noop).hex() in spec
    assert abort_frame(3).hex() == "00000000000000030409" and abort_frame(3).hex() in spec


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parser_parses_or_raises_protocol_error(data: bytes) -> None:
    server = Connection(False, Limits(max_frame=4096, max_message=1 << 16))
    server.receive(Connection(True).hello())
    try:
        for event in server.receive(data):
            assert isinstance(event, (Request, Rejected, Cancel, GoAway, Ping, Hello))
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=255), max_size=40),
    st.integers(min_value=1, max_value=20),
)
def test_parser_after_valid_prefix(noise: list[int], step: int) -> None:
    """A valid request followed by noise: the request comes out whole and intact, and the
    noise gives only more events or a ProtocolError, never another exception."""
    client, server = pair(Limits(max_frame=4096))
    payload = np.arange(600, dtype=np.float64)
    valid = wire(client.request("op", [payload])[1])
    events = feed(server, valid, step)
    (request,) = events
    assert isinstance(request, Request)
    np.testing.assert_array_equal(request.args[0], payload)
    with contextlib.suppress(ProtocolError):
        for event in feed(server, bytes(noise), step):
            assert isinstance(event, (Request, Rejected, Cancel, GoAway, Ping, Hello))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tcp://127.0.0.1:8192", ("tcp", "127.0.0.1", 8192)),
        ("tcp://[::1]:65500", ("tcp", "::1", 65500)),
        ("unix:///run/vaccel.sock", ("unix", "/run/vaccel.sock", 0)),
        ("vsock://ANY:2048", ("vsock", VMADDR_CID_ANY, 2048)),
        ("vsock://2:1234", ("vsock", 2, 1234)),
    ],
)
def test_addresses(raw: str, expected: tuple[Any, ...]) -> None:
    a = parse_address(raw)
    got = (a.scheme, a.cid if a.scheme == "vsock" else (a.path or a.host), a.port)
    assert got == expected
    assert str(a) == raw


@pytest.mark.parametrize(
    "raw", ["127.0.0.1:80", "tcp://host", "http://x:1", "vsock://x:1", "unix://", "tcp://h:99999"]
)
def test_bad_addresses(raw: str) -> None:
    with pytest.raises(AddressError):
        parse_address(raw)


def test_header_layout() -> None:
    assert HEADER.size == 10
    assert struct.unpack(">IIBB", frame(3, FrameType.CANCEL)) == (0, 3, FrameType.CANCEL, 0)


def test_memory_budget_is_held_until_the_response() -> None:
    from vaccel.protocol.limits import Account, Budget

    budget = Budget(250_000, "agent memory")
    client = Connection(True)
    server = Connection(False, account=Account([budget]))
    server.receive(client.hello())
    client.receive(server.hello())
    big = np.zeros(150_000, np.uint8)  # out of band (over the inline threshold)
    (first,) = server.receive(wire(client.request("op", [big])[1]))
    assert isinstance(first, Request) and budget.used >= 150_000
    (second,) = server.receive(wire(client.request("op", [big])[1]))
    assert isinstance(second, Rejected) and second.status == Status.RESOURCE_EXHAUSTED
    assert "agent memory limit" in second.message
    server.response(first.stream_id, Status.OK)
    assert budget.used == 0
    (third,) = server.receive(wire(client.request("op", [big])[1]))
    assert isinstance(third, Request)
    server.release_all()  # the connection went away
    assert budget.used == 0


@pytest.mark.parametrize("step", [None, 1000])
def test_header_frames_larger_than_the_receive_buffer(step: int | None) -> None:
    client, server = pair()
    args = [[float(i) for i in range(10_000)], "x" * 160_000]  # a ~250 KB msgpack body
    sid, chunks = client.request("op", args)
    (req,) = feed(server, wire(chunks), step)
    assert req.args == args
    (resp,) = feed(client, wire(server.response(sid, Status.OK, "", 0, args)), step)
    assert resp.result == args


def test_inline_array_vector_from_the_spec() -> None:
    ext = codec.prepare(np.array([1.0, 2.0], np.float32))[0]
    assert ext.code == codec.EXT_ARRAY_INLINE
    spec = (PROTOCOL_DIR / "PROTOCOL.md").read_text()
    assert "03 3c6634 01 0000000000000002 0000803f 00000040" in spec
    assert ext.data.hex() == "033c6634010000000000000002" + "0000803f00000040"


# ---------------------------------------------------------------------- cancel, abort, budgets


def big_request(client: Connection, nbytes: int = 3 << 20) -> tuple[int, list[list[Any]]]:
    return client.request("op", [np.zeros(nbytes, np.uint8)])


def test_abort_discards_a_half_received_message_and_returns_its_budget() -> None:
    from vaccel.protocol.limits import Account, Budget

    budget = Budget(1 << 30, "agent memory")
    client = Connection(True)
    server = Connection(False, account=Account([budget]))
    server.receive(client.hello())
    client.receive(server.hello())
    sid, frames = big_request(client)
    assert len(frames) > 2
    assert server.receive(wire(frames[:2])) == [] and budget.used > 3 << 20
    assert server.receive(abort_frame(sid)) == []
    assert budget.used == 0 and server.assembling == 0
    (req,) = server.receive(wire(client.request("op", [1])[1]))  # the connection goes on
    assert isinstance(req, Request) and req.args == [1]


def test_cancel_of_a_half_received_message_skips_the_rest() -> None:
    client, server = pair()
    sid, frames = big_request(client)
    server.receive(wire(frames[:2]))
    (cancel,) = server.receive(frame(sid, FrameType.CANCEL))
    assert isinstance(cancel, Cancel)
    assert server.receive(wire(frames[2:])) == []  # the rest of its data: skipped
    assert server.assembling == 0


def test_a_client_that_gives_up_discards_the_answer() -> None:
    client, server = pair()
    sid, frames = client.request("op", [1])
    server.receive(wire(frames))
    answer = wire(server.response(sid, Status.OK, "", 0, np.zeros(3 << 20, np.uint8)))
    client.cancel(sid)
    assert client.receive(answer) == []


def test_an_aborted_response_is_reported() -> None:
    client, server = pair()
    sid, frames = client.request("op", [1])
    server.receive(wire(frames))
    answer = server.response(sid, Status.OK, "", 0, np.zeros(3 << 20, np.uint8))
    client.receive(wire(answer[:2]))
    (resp,) = client.receive(abort_frame(sid))
    assert isinstance(resp, Response) and resp.status == Status.ABORTED


def test_refusals_are_answered_before_the_data() -> None:
    client, server = pair(Limits(max_message=1 << 20))
    body = msgpack.packb(["op", [], None, {}, [2 << 20]])
    (refused,) = server.receive(frame(1, FrameType.REQUEST, body, Flags.DATA))
    assert isinstance(refused, Rejected) and refused.status == Status.RESOURCE_EXHAUSTED
    data = frame(1, FrameType.DATA, bytes(1 << 20)) + frame(
        1, FrameType.DATA, bytes(1 << 20), Flags.END
    )
    assert server.receive(data) == []  # then its data is skipped


def test_stalled_messages_are_dropped() -> None:
    now = [0.0]
    client = Connection(True)
    server = Connection(False, clock=lambda: now[0])
    server.receive(client.hello())
    client.receive(server.hello())
    sid, frames = big_request(client)
    server.receive(wire(frames[:2]))
    now[0] = 5.0
    assert server.stalled(now[0], min_rate=64 * 1024, grace=10.0) == []
    now[0] = 100.0
    (dropped,) = server.stalled(now[0], min_rate=64 * 1024, grace=10.0)
    assert dropped.stream_id == sid and dropped.status == Status.DEADLINE_EXCEEDED
    assert server.receive(wire(frames[2:])) == []  # skipped to its end


def test_the_receive_buffer_grows_for_a_frame_and_shrinks_back() -> None:
    from vaccel.protocol.limits import Account, Budget
    from vaccel.protocol.reader import KEEP_SIZE, SCRATCH_SIZE

    budget = Budget(1 << 30, "agent memory")
    client = Connection(True)
    server = Connection(False, account=Account([budget]))
    server.receive(client.hello())
    client.receive(server.hello())
    args = ["x" * (KEEP_SIZE * 2)]  # one header frame larger than the kept size
    sid, frames = client.request("op", args)
    data = wire(frames)
    events = []
    for i in range(0, len(data), 4096):
        events += server.receive(data[i : i + 4096])
        if i == 4096:
            assert budget.used >= KEEP_SIZE  # grown, and charged
    assert events[0].args == args
    server.response(sid, Status.OK)
    assert server.reader.scratch_size == SCRATCH_SIZE and budget.used == 0


def test_nothing_large_is_buffered_before_hello() -> None:
    server = Connection(False)
    with pytest.raises(ProtocolError, match="limit"):
        server.receive(HEADER.pack(64 * 1024, 0, FrameType.HELLO, 0))
    assert server.reader.scratch_size == 16 * 1024


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (["op", [[None] * 20_000], None, {}, []], Status.RESOURCE_EXHAUSTED, "too large"),
        (["op", [[[0] * 500] * 40], None, {}, []], Status.RESOURCE_EXHAUSTED, "more than"),
    ],
)
def test_bodies_are_decoded_within_limits(body: Any, status: Status, words: str) -> None:
    client, server = pair()
    (refused,) = server.receive(frame(1, FrameType.REQUEST, msgpack.packb(body)))
    assert isinstance(refused, Rejected) and refused.status == status and words in refused.message


def test_deep_nesting_is_refused_without_recursion() -> None:
    client, server = pair()
    nested: Any = 1
    for _ in range(900):
        nested = [nested]
    body = msgpack.packb(["op", [nested, "x" * 20000], None, {}, []])  # over the small-body path
    (refused,) = server.receive(frame(1, FrameType.REQUEST, body))
    assert isinstance(refused, Rejected) and "deeper" in refused.message


def test_authentication_gates_everything_but_the_handshake() -> None:
    from vaccel.protocol import auth
    from vaccel.protocol.connection import State
    from vaccel.protocol.events import Auth

    client, server = Connection(True), Connection(False, require_auth=True)
    server.receive(client.hello())
    nonce = auth.new_nonce()
    (hello,) = client.receive(server.hello(nonce))
    assert isinstance(hello, Hello) and hello.nonce == nonce and client.state is State.AWAIT_AUTH
    assert server.state is State.AWAIT_AUTH
    with pytest.raises(ProtocolError) as exc:  # data before the token: fatal
        server.receive(wire(big_request(client)[1]))
    assert exc.value.status == Status.UNAUTHENTICATED
    client, server = Connection(True), Connection(False, require_auth=True)
    server.receive(client.hello())
    client.receive(server.hello(nonce))
    (answer,) = server.receive(client.auth(auth.answer("alice:s3cret", nonce)))
    assert isinstance(answer, Auth)
    tenant, reply = auth.verify({"alice": b"s3cret"}, answer.fields, nonce)
    server.authenticated()
    assert tenant == "alice" and server.state is State.OPEN
    with pytest.raises(ProtocolError, match="AUTH outside"):  # a second AUTH: fatal
        server.receive(client.auth(auth.answer("alice:s3cret", nonce)))


def test_deep_small_bodies_are_checked_where_they_are_walked() -> None:
    """A small deep body decodes (msgpack bounds its depth); walking it over buffers
    refuses the depth, and nothing recurses without bound."""
    client, server = pair()
    nested: Any = codec.msgpack.ExtType(codec.EXT_BYTES_REF, (0).to_bytes(4, "big"))
    for _ in range(100):
        nested = [nested]
    body = msgpack.packb(["op", nested, None, {}, [8]])
    assert len(body) < codec.SMALL_BODY
    (refused,) = server.receive(frame(1, FrameType.REQUEST, body, Flags.DATA))
    assert isinstance(refused, Rejected) and "deeper" in refused.message
