"""The event-stream decoder: framing, every header type, pieces split anywhere, corruption."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest

from chatgate.providers.aws_eventstream import EventStreamDecoder, EventStreamError
from tests.fakes.bedrock_server import event, exception, frame


def test_the_empty_message_of_the_specification() -> None:
    # 16 bytes: total length 16, no headers, prelude CRC, message CRC (the published
    # "empty message" vector of the AWS SDKs' event-stream test data).
    raw = bytes.fromhex("000000100000000005c248eb7d98c8ff")
    (message,) = EventStreamDecoder().feed(raw)
    assert message.headers == {} and message.payload == b""


def test_messages_split_at_every_byte_decode_the_same() -> None:
    raw = event("contentBlockDelta", {"delta": {"text": "héllo"}, "contentBlockIndex": 0})
    raw += exception("throttlingException", "slow down")
    decoder = EventStreamDecoder()
    messages = []
    for i in range(len(raw)):
        messages += decoder.feed(raw[i : i + 1])
    assert decoder.pending == 0
    first, second = messages
    assert first.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert first.payload.decode().startswith('{"delta": {"text": "h\\u00e9llo"}')
    assert second.message_type == "exception"
    assert second.headers[":exception-type"] == "throttlingException"


def _typed_headers() -> bytes:
    def h(name: str, kind: int, value: bytes) -> bytes:
        return bytes([len(name)]) + name.encode() + bytes([kind]) + value

    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    return b"".join(
        (
            h("t", 0, b""),
            h("f", 1, b""),
            h("b", 2, struct.pack(">b", -2)),
            h("s", 3, struct.pack(">h", -300)),
            h("i", 4, struct.pack(">i", 70000)),
            h("l", 5, struct.pack(">q", 2**40)),
            h("a", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
            h("str", 7, struct.pack(">H", 2) + b"ok"),
            h("ts", 8, struct.pack(">q", int(moment.timestamp() * 1000))),
            h("u", 9, ident.bytes),
        )
    )


def _message(headers: bytes, payload: bytes) -> bytes:
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_every_header_value_type() -> None:
    (message,) = EventStreamDecoder().feed(_message(_typed_headers(), b"{}"))
    assert message.headers == {
        "t": True,
        "f": False,
        "b": -2,
        "s": -300,
        "i": 70000,
        "l": 2**40,
        "a": b"\x00\x01\x02",
        "str": "ok",
        "ts": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    assert message.payload == b"{}"


def test_a_partial_message_stays_pending() -> None:
    raw = frame({":message-type": "event"}, b"{}")
    decoder = EventStreamDecoder()
    assert decoder.feed(raw[:-3]) == []
    assert decoder.pending == len(raw) - 3


@pytest.mark.parametrize("position", [2, 9, 20, -1])
def test_corruption_is_detected(position: int) -> None:
    raw = bytearray(frame({":message-type": "event", ":event-type": "x"}, b'{"a": 1}'))
    raw[position] ^= 0x40
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(raw))
