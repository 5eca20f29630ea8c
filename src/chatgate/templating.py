"""Rendering ``chat_template`` messages with the request's ``inputs``.

Two languages, as v4 ``template_language`` names them:

* ``default``: Humanloop's ``{{ name }}`` placeholders. Every placeholder must have an input
  (a missing one is a 422 naming it); non-string values are inserted as compact JSON. Nothing else
  is interpreted, so user-controlled inputs can never inject template syntax.
* ``jinja``: Jinja2 in its sandbox with strict undefined variables, for loops and conditionals.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

import jinja2
import orjson
from jinja2.sandbox import SandboxedEnvironment

from chatgate.domain import Message
from chatgate.errors import FieldProblem, InvalidRequest

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_JINJA = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _render_default(text: str, inputs: dict[str, Any], missing: list[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in inputs:
            if name not in missing:
                missing.append(name)
            return match.group(0)
        return _as_text(inputs[name])

    return _PLACEHOLDER.sub(substitute, text)


@lru_cache(maxsize=1024)
def _compile_jinja(source: str) -> jinja2.Template:
    return _JINJA.from_string(source)


def _render_jinja(text: str, inputs: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    try:
        return _compile_jinja(text).render(**inputs)
    except jinja2.UndefinedError as exc:
        raise InvalidRequest.at(
            ("body", "inputs"),
            f"the chat template uses an undefined input: {exc.message}",
            "value_error.missing",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidRequest.at(loc, f"invalid jinja template: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise InvalidRequest.at(loc, f"jinja template refused by the sandbox: {exc}") from None
    except Exception as exc:  # any runtime error inside the template is the caller's input
        raise InvalidRequest.at(loc, f"jinja template failed: {exc}") from None


def render_messages(
    template: tuple[Message, ...], inputs: dict[str, Any], language: str = "default"
) -> list[Message]:
    """Render every text of the template; raise one 422 listing every missing input."""
    missing: list[str] = []
    rendered: list[Message] = []
    for i, message in enumerate(template):
        loc: tuple[str | int, ...] = ("body", "model_config", "chat_template", i, "content")

        def render(text: str, loc: tuple[str | int, ...] = loc) -> str:
            if language == "jinja":
                return _render_jinja(text, inputs, loc)
            return _render_default(text, inputs, missing)

        content = message.content
        if isinstance(content, str):
            content = render(content)
        elif isinstance(content, list):
            content = [
                {**part, "text": render(str(part["text"]))}
                if part.get("type") == "text" and "text" in part
                else part
                for part in content
            ]
        rendered.append(replace(message, content=content))
    if missing:
        raise InvalidRequest(
            [
                FieldProblem(
                    ("body", "inputs", name),
                    f"missing input '{name}' used by the chat template",
                    "value_error.missing",
                )
                for name in missing
            ]
        )
    return rendered
