"""Frames: a 10-byte header (u32 length, u32 stream id, u8 type, u8 flags) and a payload."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum, IntFlag
from typing import Any

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size  # 10
#: Out-of-band buffers start at offsets that are multiples of this in a message's data.
ALIGN = 8
_PADDING = bytes(ALIGN)

Buffer = Any  # bytes, bytearray or memoryview: anything transport.writelines takes


class FrameType(IntEnum):
    """The type byte of a frame header (PROTOCOL.md, section 1)."""

    HELLO = 0x01
    REQUEST = 0x02
    RESPONSE = 0x03
    DATA = 0x04
    CANCEL = 0x05
    GOAWAY = 0x06
    PING = 0x07
    AUTH = 0x08


class Flags(IntFlag):
    """The flags byte of a frame header: END, ACK, DATA, ABORT."""

    NONE = 0
    #: DATA: the last data frame of its message.
    END = 0x01
    #: PING: this is the answer.
    ACK = 0x02
    #: REQUEST/RESPONSE: DATA frames with the message's buffers follow.
    DATA = 0x04
    #: DATA (empty, with END): the sender abandons the message; the receiver discards it.
    ABORT = 0x08


def frame(stream_id: int, ftype: FrameType, payload: bytes = b"", flags: int = 0) -> bytes:
    """One whole frame as bytes (for small frames: header frames, control frames)."""
    return HEADER.pack(len(payload), stream_id, ftype, flags) + payload


def aligned(n: int) -> int:
    """`n` rounded up to the frame alignment (ALIGN bytes)."""
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def data_layout(sizes: Sequence[int]) -> tuple[list[int], int]:
    """Offsets of each buffer in a message's data, and the total (with alignment padding)."""
    offsets = []
    pos = 0
    for size in sizes:
        pos = aligned(pos)
        offsets.append(pos)
        pos += size
    return offsets, pos


def data_frames(
    stream_id: int, buffers: Sequence[memoryview], max_frame: int
) -> list[list[Buffer]]:
    """DATA frames carrying `buffers` back to back (aligned), none over `max_frame` bytes.

    Each frame is a list: its header bytes, then memoryview slices of the caller's
    buffers (and padding). No payload is copied, so a frame can go straight to a
    scatter-gather write; a writer hands whole frames to the transport, so frames of
    other messages may come between them but never inside one.
    """
    pieces: list[memoryview | bytes] = []
    pos = 0
    for buf in buffers:
        pad = aligned(pos) - pos
        if pad:
            pieces.append(_PADDING[:pad])
            pos += pad
        if buf.nbytes:
            pieces.append(buf)
            pos += buf.nbytes
    total = pos
    out: list[list[Buffer]] = []
    current: list[Buffer] = []
    sent = 0
    room = 0
    for piece in pieces:
        offset = 0
        size = len(piece)
        while offset < size:
            if room == 0:
                length = min(max_frame, total - sent)
                flags = Flags.END if sent + length == total else Flags.NONE
                current = [HEADER.pack(length, stream_id, FrameType.DATA, flags)]
                out.append(current)
                room = length
                sent += length
            take = min(room, size - offset)
            current.append(piece[offset : offset + take] if (offset or take != size) else piece)
            offset += take
            room -= take
    if not out:  # buffers that are all empty: one empty END frame closes the message
        out.append([HEADER.pack(0, stream_id, FrameType.DATA, Flags.END)])
    return out


def abort_frame(stream_id: int) -> bytes:
    """The empty DATA frame that abandons a message whose header was already sent."""
    return HEADER.pack(0, stream_id, FrameType.DATA, Flags.END | Flags.ABORT)
