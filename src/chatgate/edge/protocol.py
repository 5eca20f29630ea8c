"""uvicorn's httptools protocol with the limits a server on a network needs.

httptools (llhttp) has no limit on the size of a request head and uvicorn only times out idle
keep-alive connections, so one client could make the server buffer a 100 MB header, or hold
thousands of sockets open by sending nothing or a byte every few seconds. ``EdgeProtocol`` adds,
per connection:

* a cap on the bytes of each request head (line + headers): 431, and the connection is closed;
* a total deadline for each request head, counted from its first byte (from the connect, for a
  connection's first request), so a client dribbling bytes cannot renew it: 408;
* a deadline for each request body that grows with what arrives (a grace period plus a minimum
  rate), so honest slow uploads finish and a dribbling body is closed: 408;
* a keep-alive timeout for idle connections (closed quietly, as HTTP/1.1 allows);
* a cap on the connections of this server process: 503 with ``Retry-After``, then close.

Every answer the server writes itself (these, malformed requests) is in chatgate's v4 error
shape rather than uvicorn's plain text; so is the last-resort 500, which
``api/middleware.RequestMiddleware`` answers before uvicorn's plain-text one could.

Cost on the hot path: one timer per connection, re-armed lazily. A phase change only stores a
deadline (a float); the timer, when it fires, compares it with the clock and sleeps again if the
deadline moved. So a busy keep-alive connection re-arms its timer about once per timeout, not
per request (uvicorn's own keep-alive timer, armed and cancelled on every request, is replaced).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from chatgate.api.errors import error_body

if TYPE_CHECKING:
    from chatgate.edge.config import Limits

log = logging.getLogger("chatgate.edge")

#: The ASGI scope key under which a request registers the task to cancel if its client
#: disconnects before the answer is complete (api/disconnect.py); on cancelling it, the protocol
#: puts ``DISCONNECTED`` there instead.
CANCEL_ON_DISCONNECT = "chatgate.cancel_on_disconnect"
DISCONNECTED = "client disconnected"

# Where the connection is. Each phase has its deadline (or none), held in ``_deadline``.
_HEAD = 0  # a request head is arriving: head deadline
_BODY = 1  # its head is read and its body arriving: body deadline (grows as bytes arrive)
_ANSWERING = 2  # the request is read and the application answers it: no deadline of ours
_IDLE = 3  # the answer is sent; waiting for the next request: keep-alive deadline
_DRAIN = 4  # refused: our answer is sent; input is read and dropped until a short deadline
_OVER_CAP = 5  # over the connection cap: waiting for the first bytes to answer 503

# How long a connection over the cap may take to send its first bytes (then it gets its 503).
_OVER_CAP_WAIT_SECONDS = 1.0
# After refusing a request, how long the rest of its input is read and dropped before closing.
# Closing at once, with the client's bytes still arriving, resets the connection, and a reset
# can destroy the answer before the client reads it.
_LINGER_SECONDS = 1.0
# Seconds a client over the connection cap is asked to wait (Retry-After).
_RETRY_AFTER_SECONDS = 1
# At most one "connection cap reached" warning per this many seconds per process: the warning
# must not become a log flood of its own.
_CAP_WARNING_INTERVAL = 10.0


def _reason(exc: httptools.HttpParserError) -> str:
    """What was wrong with a request, for the client (llhttp's own words where it has them)."""
    if not isinstance(exc, httptools.HttpParserCallbackError):
        return str(exc)
    # A callback failed: uvicorn could not parse the request target, or a bug (worth a trace).
    if isinstance(exc.__context__, httptools.HttpParserInvalidURLError):
        return "the request target is not a valid URL"
    log.warning("parsing a request failed", exc_info=exc.__context__ or exc)
    return "the request could not be parsed"


class EdgeProtocol(HttpToolsProtocol):
    """One client connection (see the module docstring); the limits come from ``EdgeConfig``."""

    _cap_warned_at: ClassVar[float] = -math.inf

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits: Limits = config.limits  # type: ignore[attr-defined]  # EdgeConfig only
        self._max_head = limits.max_header_bytes
        self._head_timeout = limits.header_timeout_seconds
        self._body_timeout = limits.body_timeout_seconds
        self._seconds_per_body_byte = 1.0 / limits.body_min_bytes_per_second
        self._keepalive_timeout = limits.keepalive_timeout_seconds
        self._max_connections = limits.max_connections
        self._phase = _HEAD
        self._head_bytes = 0  # bytes received since the last complete head, while not in a body
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when the timer fires; inf when there is none

    # --- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            # Answered with a 503 once its request starts arriving (an answer before that can
            # be lost to a reset), and dropped quickly if nothing comes.
            self._phase = _OVER_CAP
            self._set_deadline(self.loop.time() + min(self._head_timeout, _OVER_CAP_WAIT_SECONDS))
            self._warn_cap()
        else:
            self._set_deadline(self.loop.time() + self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A request that asked to be stopped when its client leaves (api/disconnect.py).
            scope: dict[str, object] = cycle.scope  # type: ignore[assignment]  # a plain dict
            task = scope.get(CANCEL_ON_DISCONNECT)
            if isinstance(task, asyncio.Task):
                scope[CANCEL_ON_DISCONNECT] = DISCONNECTED  # tells the request why
                task.cancel(DISCONNECTED)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Replaces uvicorn's version (which also cancels its keep-alive timer, unused here).
        phase = self._phase
        if phase == _BODY:
            # Every body byte earns time at the guaranteed minimum rate.
            self._deadline += len(data) * self._seconds_per_body_byte
        else:
            if phase >= _DRAIN:
                if phase == _OVER_CAP:
                    self._refuse_over_cap()
                return
            if phase == _IDLE:  # a new request begins: its head has its own total deadline
                self._phase = _HEAD
                self._set_deadline(self.loop.time() + self._head_timeout)
            # Outside a body every byte counts towards the next request head.
            if len(data) > self._max_head - self._head_bytes:
                self._receive_up_to_head_limit(data)
                return
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade_ignored()
        except httptools.HttpParserError as exc:
            self._malformed(exc)

    def _receive_up_to_head_limit(self, data: bytes) -> None:
        """Parse only what the head limit allows: a head that ends within it goes on as usual
        with the rest of the data; one that does not is refused, never buffered beyond it."""
        room = self._max_head - self._head_bytes
        self._head_bytes = self._max_head  # on_headers_complete resets it if a head ends
        try:
            self.parser.feed_data(data[:room])
        except httptools.HttpParserUpgrade:
            self._upgrade_ignored()
            return
        except httptools.HttpParserError as exc:
            self._malformed(exc)
            return
        if self._head_bytes == self._max_head:
            self._refuse(
                431,
                f"request line and headers over {self._max_head} bytes (CHATGATE_MAX_HEADER_BYTES)",
                "request_header_fields_too_large_error",
            )
        elif len(data) > room:
            self.data_received(data[room:])  # shorter by a whole head each time: bounded

    def _upgrade_ignored(self) -> None:
        # chatgate speaks no other protocol (uvicorn's WebSockets are off), so the request was
        # served as plain HTTP; the parser stops at the upgrade point, so the connection cannot
        # carry another request.
        if self.cycle is not None:
            self.cycle.keep_alive = False

    def _malformed(self, exc: httptools.HttpParserError) -> None:
        self._refuse(400, f"malformed HTTP request: {_reason(exc)}", "bad_request_error")

    # --- parser callbacks: each only moves the phase and its deadline -------------------------

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = _BODY
        self._head_bytes = 0
        self._set_deadline(self.loop.time() + self._body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle.response_complete and not self.pipeline:
            # Answered before its body ended (a 401 or 413 does not wait for the body).
            self._phase = _IDLE
            self._set_deadline(self.loop.time() + self._keepalive_timeout)
        else:
            self._phase = _ANSWERING

    def on_response_complete(self) -> None:
        # Replaces uvicorn's version, which arms its own keep-alive timer on every response.
        self.server_state.total_requests += 1
        if self.transport.is_closing() or self._phase == _DRAIN:
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._phase == _ANSWERING:
            self._phase = _IDLE
            self._set_deadline(self.loop.time() + self._keepalive_timeout)

    # --- the one timer ------------------------------------------------------------------------

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if deadline < self._timer_at:  # a later deadline is picked up when the timer fires
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self.transport.is_closing() or self._phase == _ANSWERING:
            return  # the next phase change arms the timer again
        now = self.loop.time()
        phase = self._phase
        if now < self._deadline:
            self._set_deadline(self._deadline)
        elif phase >= _DRAIN:
            self.transport.close()  # the end of a linger, or silent over the cap
        elif phase == _BODY and self.cycle.response_complete:
            self.transport.close()  # the rest of the body of a request already answered
        elif phase == _BODY and self.flow.read_paused:
            # uvicorn stopped reading (the application has not taken the body yet, or a
            # pipelined request waits): the delay is the server's, so restart the clock.
            self._set_deadline(now + self._body_timeout)
        elif phase == _BODY:
            self._refuse(
                408,
                "the request body arrived too slowly (CHATGATE_BODY_TIMEOUT_SECONDS, "
                "CHATGATE_BODY_MIN_BYTES_PER_SECOND)",
                "request_timeout_error",
            )
        elif self._head_bytes:  # part of a request head came (in _HEAD or _IDLE), not all
            self._refuse(
                408,
                "the request line and headers did not arrive within "
                f"{self._head_timeout:g} s (CHATGATE_HEADER_TIMEOUT_SECONDS)",
                "request_timeout_error",
            )
        else:
            # Idle keep-alive, or a connection that never sent a byte.
            self.transport.close()

    # --- answers written by the server itself -------------------------------------------------

    def _refuse(self, status: int, message: str, type_: str, extra_headers: bytes = b"") -> None:
        """Answer ``status`` in the v4 error shape, read and drop what follows, then close."""
        if self._phase == _DRAIN or self.transport.is_closing():
            return
        log.debug("refused a request from %s: %d %s", self.client, status, message)
        cycle = self.cycle
        if self.pipeline or (
            cycle is not None and cycle.response_started and not cycle.response_complete
        ):
            self.transport.close()  # an answer is under way: ours cannot go in between
            return
        if cycle is not None and not cycle.response_complete:
            # The application is still waiting for this request's body: it gets a disconnect
            # and whatever it answers goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        body = orjson.dumps(error_body(status, message, type_))
        parts = [STATUS_LINE[status]]
        parts += [b"%s: %s\r\n" % header for header in self.server_state.default_headers]
        parts += [
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            extra_headers,
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(parts))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._phase = _DRAIN
        self.flow.resume_reading()
        self._set_deadline(self.loop.time() + _LINGER_SECONDS)

    def _refuse_over_cap(self) -> None:
        self._refuse(
            503,
            f"this server holds its maximum of {self._max_connections} connections "
            "(CHATGATE_MAX_CONNECTIONS); retry shortly",
            "service_unavailable_error",
            extra_headers=b"retry-after: %d\r\n" % _RETRY_AFTER_SECONDS,
        )

    def _warn_cap(self) -> None:
        now = self.loop.time()
        if now - EdgeProtocol._cap_warned_at >= _CAP_WARNING_INTERVAL:
            EdgeProtocol._cap_warned_at = now
            log.warning(
                "connection limit reached: %d connections open (CHATGATE_MAX_CONNECTIONS=%d); "
                "new connections get 503 until some close",
                len(self.connections),
                self._max_connections,
            )
