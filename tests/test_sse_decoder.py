"""The upstream SSE decoder, against the event-stream format's corner cases."""

from __future__ import annotations

from chatgate.providers._sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": a comment line\r\n"
    b"event: ping\r\n"
    b"data: first line\r\n"
    b"data:second line no space\r\n"
    b"id: 7\r\n"
    b"\r\n"
    b'data: {"t": "\xc3\xa9t\xc3\xa9 \xe2\x82\xac"}\n'
    b"\n"
    b"data:  two spaces\r"
    b"\r"
    b"retry: 10\n"
    b"data\n"
    b"\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ServerSentEvent("first line\nsecond line no space", "ping", "7"),
    ServerSentEvent('{"t": "été €"}', "message", "7"),
    ServerSentEvent(" two spaces", "message", "7"),
    ServerSentEvent("", "message", "7"),
    ServerSentEvent("[DONE]", "message", "7"),
]


def decode(pieces: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(STREAM)):
        assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_one_byte_at_a_time() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_crlf_split_between_reads_is_one_line_end() -> None:
    assert decode([b"data: a\r", b"\n\r", b"\n"]) == [ServerSentEvent("a")]


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    assert decode([b"data: x\n\ndata: tail"]) == [ServerSentEvent("x"), ServerSentEvent("tail")]


def test_comments_and_empty_events_dispatch_nothing() -> None:
    assert decode([b": keep-alive\n\n\n\nevent: only-type\n\n"]) == []
