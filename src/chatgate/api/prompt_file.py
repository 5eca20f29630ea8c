"""Humanloop's ``.prompt`` file format for chat model configs.

A YAML front matter block holds the model and its parameters; the chat template follows as one
block per message, the role as a tag and the text indented by two spaces::

    ---
    model: gpt-4o
    temperature: 0.7
    max_tokens: -1
    provider: openai
    endpoint: chat
    ---
    <system>
      You are a friendly assistant.
    </system>

Supported: every parameter of a chat config, inline tools (in the front matter) and template
messages of role system/user/assistant/developer with plain-text content. For those, text ->
config -> text and config -> text -> config are exact. Anything else (content parts, tool calls
in the template, a message name) is refused rather than silently dropped.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pydantic import ValidationError

from chatgate.api.schemas.chat import ModelConfigChatRequest
from chatgate.errors import FieldProblem, InvalidRequest


def _yaml() -> Any:
    """PyYAML, imported on first use: only the .prompt endpoints need it, and a server that
    never serves them does not carry it (about a megabyte). It ships no type information and
    arrives with uvicorn[standard]."""
    return importlib.import_module("yaml")


ROLES = ("system", "user", "assistant", "developer")
INDENT = "  "
#: Front matter keys always written (in this order), then the optional ones when set.
_ALWAYS = (
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "provider",
    "endpoint",
)
_OPTIONAL = (
    "name",
    "description",
    "stop",
    "seed",
    "response_format",
    "reasoning_effort",
    "template_language",
    "other",
    "tools",
)
_BLOCK = re.compile(r"<(?P<role>[a-z]+)>\n(?P<body>.*?)\n</(?P=role)>", re.DOTALL)
_FRONT = "---\n"


def _problem(loc: str, msg: str) -> InvalidRequest:
    return InvalidRequest.at(("body", loc), msg, "value_error.prompt_file")


def _indent(text: str) -> str:
    return "\n".join(INDENT + line if line else line for line in text.split("\n"))


def _dedent(text: str) -> str:
    return "\n".join(line.removeprefix(INDENT) for line in text.split("\n"))


def serialize(config: ModelConfigChatRequest) -> str:
    """The config as ``.prompt`` text (422 for what the format cannot carry exactly)."""
    data = config.model_dump(mode="json", exclude_none=True)
    header: dict[str, Any] = {key: data[key] for key in _ALWAYS}
    for key in _OPTIONAL:
        value = data.get(key)
        if value is None or (key == "other" and not value):
            continue
        if key == "template_language" and value == "default":
            continue  # the default, as stored configs carry it explicitly
        header[key] = value
    blocks = []
    for i, message in enumerate(config.chat_template or []):
        loc = f"chat_template.{i}"
        if message.role not in ROLES:
            raise _problem(loc, f"role '{message.role}' cannot be written to a .prompt file")
        if not isinstance(message.content, str):
            raise _problem(loc, "only plain-text message content can be written to a .prompt file")
        if message.name or message.tool_call_id or message.tool_calls or message.tool_call:
            raise _problem(loc, "name and tool calls cannot be written to a .prompt file")
        if f"</{message.role}>" in message.content:
            raise _problem(loc, f"the content contains the closing tag </{message.role}>")
        blocks.append(f"<{message.role}>\n{_indent(message.content)}\n</{message.role}>\n")
    front: str = _yaml().safe_dump(
        header, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return _FRONT + front + _FRONT + "\n".join(blocks)


def deserialize(text: str) -> ModelConfigChatRequest:
    """``.prompt`` text as a chat config; a malformed file is a 422 at ``["body", "config"]``."""
    if not text.startswith(_FRONT):
        raise _problem("config", "a .prompt file starts with a '---' front matter line")
    end = text.find("\n" + _FRONT, len(_FRONT) - 1)
    if end < 0:
        raise _problem("config", "the front matter has no closing '---' line")
    try:
        header = _yaml().safe_load(text[len(_FRONT) : end + 1]) or {}
    except _yaml().YAMLError as exc:
        raise _problem("config", f"the front matter is not valid YAML: {exc}") from None
    if not isinstance(header, dict):
        raise _problem("config", "the front matter must be a mapping of parameters")
    template = []
    rest = text[end + 1 + len(_FRONT) :]
    position = 0
    for match in _BLOCK.finditer(rest):
        if rest[position : match.start()].strip():
            raise _problem("config", f"unexpected text: {rest[position : match.start()][:40]!r}")
        role = match.group("role")
        if role not in ROLES:
            raise _problem("config", f"unknown message tag <{role}>")
        template.append({"role": role, "content": _dedent(match.group("body"))})
        position = match.end()
    if rest[position:].strip():
        raise _problem("config", f"unexpected text: {rest[position:][:40]!r}")
    if template:
        header["chat_template"] = template
    try:
        return ModelConfigChatRequest.model_validate(header)
    except ValidationError as exc:
        raise InvalidRequest(
            [
                FieldProblem(("body", "config", *e["loc"]), e["msg"], e["type"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
