"""Rendering ``chat_template`` messages with the request's ``inputs``, within bounds.

Two languages, as v4 ``template_language`` names them:

* ``default``: Humanloop's ``{{ name }}`` placeholders (``default.py``).
* ``jinja``: Jinja2 in its sandbox with strict undefined variables (``sandbox.py``).

Why the work is split this way: a template is the caller's code, and a sandbox that only
forbids attributes cannot bound what code costs. ``(10**10)**(10**10)``, a ``%999999999d``
format, a string doubled in a loop or a seven-megabyte template compiled by Jinja each ran for
seconds to minutes on the event loop and stopped every other client. Checking each construct
in process is whack-a-mole and gives no hard bound on time or memory, and nothing can interrupt
Python code on the event loop. So:

* ``jinja`` always renders in a renderer *process* (``worker.py``, a small pool in ``pool.py``,
  started on first use) with an address-space limit and a CPU backstop; the server waits at most
  ``CHATGATE_TEMPLATE_TIMEOUT_SECONDS`` and then kills it. The event loop only pickles the
  request and reads the reply. Inside, cheap checks (``sandbox.py``) make the common blow-ups
  fail at once with a precise message instead of by the deadline.
* ``default`` is the common path and must stay microseconds, and it is linear: it renders in
  process when the template's texts total at most ``IN_PROCESS_CHARS`` (a few milliseconds at
  worst), and in a renderer process like Jinja above that.
* The rendered texts of one request hold at most ``max_chars`` characters (the body limit: a
  template cannot produce more than a caller could have sent as messages), refused before they
  are built.

Every refusal is a 422 whose ``loc`` points at the template (the message, when known); a
missing renderer is a 503.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chatgate.domain import Message
from chatgate.errors import FieldProblem, InvalidRequest
from chatgate.templating.default import render_default
from chatgate.templating.pool import RendererPool
from chatgate.templating.problems import Kind, TemplateProblem

#: ``default`` templates whose texts total at most this many characters render in process.
IN_PROCESS_CHARS = 64 * 1024

_TEMPLATE_LOC: tuple[str | int, ...] = ("body", "model_config", "chat_template")
_PREFIX = {
    Kind.SYNTAX: "invalid jinja template: ",
    Kind.SANDBOX: "jinja template refused by the sandbox: ",
    Kind.REFUSED: "chat template refused: ",
    Kind.FAILED: "jinja template failed: ",
}


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    #: Characters the rendered texts of one request may hold together.
    max_chars: int = 32 * 1024 * 1024
    timeout_seconds: float = 1.0
    memory_bytes: int = 1024 * 1024 * 1024
    workers: int = 2


class TemplateRenderer:
    """What one server process renders templates with; ``aclose`` ends its renderers."""

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits = limits or TemplateLimits()
        self._pool = RendererPool(
            size=limits.workers,
            timeout=limits.timeout_seconds,
            memory_bytes=limits.memory_bytes,
            max_chars=limits.max_chars,
        )

    async def render_messages(
        self, template: Sequence[Message], inputs: Mapping[str, Any], language: str = "default"
    ) -> list[Message]:
        """Render every text of the template; a 422 names what is wrong (every missing input)."""
        texts, owners = _texts_of(template)
        if not texts:
            return list(template)
        try:
            if language != "jinja" and sum(map(len, texts)) <= IN_PROCESS_CHARS:
                rendered = render_default(texts, inputs, self.limits.max_chars)
            else:
                rendered = await self._pool.render(language, texts, inputs)
        except TemplateProblem as problem:
            raise invalid_request(problem, owners) from None
        return _rebuild(template, rendered)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _texts_of(template: Sequence[Message]) -> tuple[list[str], list[int]]:
    """Every text to render, and the index of the message each belongs to."""
    texts: list[str] = []
    owners: list[int] = []
    for i, message in enumerate(template):
        content = message.content
        if isinstance(content, str):
            texts.append(content)
            owners.append(i)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text" and "text" in part:
                    texts.append(str(part["text"]))
                    owners.append(i)
    return texts, owners


def _rebuild(template: Sequence[Message], rendered: Sequence[str]) -> list[Message]:
    texts = iter(rendered)
    messages = []
    for message in template:
        content = message.content
        if isinstance(content, str):
            content = next(texts)
        elif isinstance(content, list):
            content = [
                {**part, "text": next(texts)}
                if part.get("type") == "text" and "text" in part
                else part
                for part in content
            ]
        messages.append(replace(message, content=content))
    return messages


def invalid_request(problem: TemplateProblem, owners: Sequence[int]) -> InvalidRequest:
    if problem.kind is Kind.MISSING:
        return InvalidRequest(
            [
                FieldProblem(
                    ("body", "inputs", name),
                    f"missing input '{name}' used by the chat template",
                    "value_error.missing",
                )
                for name in problem.names
            ]
        )
    if problem.kind is Kind.UNDEFINED:
        return InvalidRequest.at(
            ("body", "inputs"),
            f"the chat template uses an undefined input: {problem.message}",
            "value_error.missing",
        )
    loc = _TEMPLATE_LOC
    if problem.index is not None and 0 <= problem.index < len(owners):
        loc = (*_TEMPLATE_LOC, owners[problem.index], "content")
    return InvalidRequest.at(loc, _PREFIX.get(problem.kind, "") + problem.message)


__all__ = ["IN_PROCESS_CHARS", "TemplateLimits", "TemplateRenderer"]
