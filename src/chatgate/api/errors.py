"""One place that turns errors into v4 error bodies.

* Request validation (pydantic, or a missing template input): 422,
  ``{"detail": [{"loc", "msg", "type"}]}`` with nothing else (the offending input is never echoed:
  it may hold a provider key).
* Everything else: ``{"detail": {"type", "message", "code", "origin"}}`` with ``code`` = status.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from chatgate.errors import ChatgateError

log = logging.getLogger("chatgate")

_STATUS_TYPES = {
    400: "bad_request_error",
    401: "unauthorized_error",
    403: "forbidden_error",
    404: "not_found_error",
    405: "method_not_allowed_error",
    413: "payload_too_large_error",
    415: "unsupported_media_type_error",
    429: "rate_limit_error",
}


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_body(
    status: int, message: str, type_: str | None = None, origin: str = "chatgate"
) -> dict[str, object]:
    return {
        "detail": {
            "type": type_ or _STATUS_TYPES.get(status, "internal_server_error"),
            "message": message,
            "code": status,
            "origin": origin,
        }
    }


async def _chatgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatgateError)
    return json_response(exc.body(), exc.status)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        kind = str(error.get("type", "value_error"))
        loc = list(error.get("loc", ()))
        if kind == "json_invalid":
            msg = f"request body is not valid JSON: {error.get('ctx', {}).get('error', '')}".strip(
                ": "
            )
        else:
            msg = str(error.get("msg", "invalid value"))
        detail.append({"loc": loc, "msg": msg, "type": kind})
    return json_response({"detail": detail}, 422)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    response = json_response(error_body(exc.status_code, message), exc.status_code)
    if exc.headers:  # a 405 names the allowed methods (Allow), as HTTP requires
        response.headers.update(exc.headers)
    return response


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return json_response(error_body(500, "internal server error; see the server log"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ChatgateError, _chatgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
