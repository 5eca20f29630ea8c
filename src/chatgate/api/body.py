"""Reading a v4 JSON body: validated straight from bytes by pydantic-core.

The body is parsed as JSON whatever the Content-Type says (curl's default form type included),
and authentication runs before it, so an unauthenticated caller learns nothing from validation.
A string holding NUL (``\u0000``) anywhere in a body is a 422: PostgreSQL cannot store it in
text, so on that backend a chat call would reach the provider and fail to be logged after.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from chatgate.errors import ClientGone, PayloadTooLarge

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: Request, model: type[Model], max_bytes: int) -> Model:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes (CHATGATE_MAX_BODY_BYTES)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in _body_chunks(request):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body over {max_bytes} bytes (CHATGATE_MAX_BODY_BYTES)")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        parsed = model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", *e["loc"]),
                    "msg": e["msg"],
                    "type": e["type"],
                    "ctx": e.get("ctx"),
                }
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    # JSON can only carry a NUL as this escape; one substring search is all most bodies cost.
    if b"\\u0000" in raw and (where := nul_at(json.loads(raw))) is not None:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", *where),
                    "msg": "strings must not contain NUL characters (U+0000)",
                    "type": "string_nul",
                }
            ]
        )
    return parsed


def nul_at(value: Any) -> list[str | int] | None:
    """Where a string (value or key) holding NUL is in decoded JSON, or None (e.g. the escape was
    itself escaped text: ``"\\\\u0000"``). Depth is bounded by the body parser."""
    if isinstance(value, str):
        return [] if "\x00" in value else None
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return [key.replace("\x00", "")]
        if (inner := nul_at(item)) is not None:
            return [key, *inner]
    return None


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise ClientGone("the client closed the connection while sending its request") from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON request body of a route."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def add_body_schemas(app: Any, models: list[type[BaseModel]]) -> None:
    """Put the hand-parsed body models into the OpenAPI components that openapi_body refers to."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema  # type: ignore[no-any-return]
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            body = model.model_json_schema(
                ref_template="#/components/schemas/{model}", by_alias=True
            )
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
