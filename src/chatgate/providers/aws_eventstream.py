"""An incremental decoder for the AWS event-stream framing (``application/vnd.amazon.eventstream``).

Each message is: a 12-byte prelude (total length, headers length, both big-endian uint32, then the
CRC32 of those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header
is a 1-byte name length, the name, a 1-byte value type and the value (types 0-9: true, false,
byte, short, int, long, byte array and string with a 2-byte length, timestamp, uuid). Bytes arrive
in arbitrary pieces, so the decoder buffers until a whole message is there; a checksum mismatch or
an impossible length is an :class:`EventStreamError` (the stream cannot be resynchronised).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PRELUDE = 12
#: Limits from the specification: a message is at most 16 MiB, its headers at most 128 KiB.
MAX_MESSAGE = 16 * 1024 * 1024
MAX_HEADERS = 128 * 1024


class EventStreamError(ValueError):
    """The bytes are not a valid event stream."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))


def _headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    position = 0
    end = len(raw)
    try:
        while position < end:
            size = raw[position]
            name = raw[position + 1 : position + 1 + size].decode("utf-8")
            position += 1 + size
            kind = raw[position]
            position += 1
            value: Any
            if kind in (0, 1):
                value = kind == 0
            elif kind == 2:
                (value,) = struct.unpack_from(">b", raw, position)
                position += 1
            elif kind == 3:
                (value,) = struct.unpack_from(">h", raw, position)
                position += 2
            elif kind == 4:
                (value,) = struct.unpack_from(">i", raw, position)
                position += 4
            elif kind in (5, 8):
                (number,) = struct.unpack_from(">q", raw, position)
                position += 8
                value = number if kind == 5 else datetime.fromtimestamp(number / 1000, UTC)
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", raw, position)
                data = raw[position + 2 : position + 2 + length]
                if len(data) != length:
                    raise EventStreamError("a header value runs past the headers")
                position += 2 + length
                value = data if kind == 6 else data.decode("utf-8")
            elif kind == 9:
                data = raw[position : position + 16]
                if len(data) != 16:
                    raise EventStreamError("a uuid header runs past the headers")
                value = uuid.UUID(bytes=data)
                position += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers ({exc})") from None
    if position != end:
        raise EventStreamError("a header runs past the headers")
    return headers


class EventStreamDecoder:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[EventMessage]:
        self._buffer += chunk
        messages: list[EventMessage] = []
        while len(self._buffer) >= PRELUDE:
            total, header_length, prelude_crc = struct.unpack_from(">III", self._buffer, 0)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise EventStreamError("prelude checksum mismatch")
            if total < PRELUDE + 4 or total > MAX_MESSAGE or header_length > MAX_HEADERS:
                raise EventStreamError(f"impossible message length {total}")
            if header_length > total - PRELUDE - 4:
                raise EventStreamError("headers longer than the message")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[: total - 4]) != message_crc:
                raise EventStreamError("message checksum mismatch")
            headers = _headers(frame[PRELUDE : PRELUDE + header_length])
            messages.append(EventMessage(headers, frame[PRELUDE + header_length : total - 4]))
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (non-zero at the end: truncated)."""
        return len(self._buffer)
