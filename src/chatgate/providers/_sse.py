"""An incremental decoder for upstream server-sent events (the WHATWG event-stream format).

Bytes arrive in arbitrary pieces: an event, a line, a CRLF pair or a multi-byte UTF-8 character
may be split across reads. Lines end in CRLF, LF or CR; ``:`` lines are comments; several
``data:`` lines join with ``\\n``; one space after the colon is dropped. An event still open when
the stream ends is dispatched (lenient: some servers omit the final blank line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        position = 0
        while True:
            match = _EOL.search(self._buffer, position)
            if match is None:
                break
            if match.group() == b"\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a CRLF split across reads
            event = self._line(self._buffer[position : match.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            position = match.end()
        self._buffer = self._buffer[position:]
        return events

    def close(self) -> list[ServerSentEvent]:
        events = []
        if self._buffer:
            line = self._buffer.rstrip(b"\r").decode("utf-8", "replace")
            self._buffer = b""
            event = self._line(line)
            if event is not None:
                events.append(event)
        final = self._line("")
        if final is not None:
            events.append(final)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent("\n".join(self._data), self._event or "message", self._id)
        self._data = []
        self._event = ""
        return event
