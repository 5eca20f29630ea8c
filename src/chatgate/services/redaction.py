"""Keeping a call's provider keys out of everything it stores and returns.

A provider (or a model asked cleverly) can echo the request's credential back: in the reply's
text, a tool call's arguments, reasoning blocks. Nothing a call stores or returns may contain
the keys it used, so:

* :func:`secrets_of` lists every secret part of a credential (a JSON credential such as
  Bedrock's IAM keys holds several);
* :func:`scrub_sample` removes them from a finished sample (the log and the non-streamed answer);
* :class:`StreamRedactor` removes them from text streamed to the client as it arrives;
* :func:`scrub` and :func:`scrub_message` remove them from everything else a call keeps (the
  request's fields, the provider's request and raw responses, error text), replacing each key
  whole with ``[REDACTED]``.

In model output a key ``K`` becomes ``K[:3] + "[REDACTED]"`` (``sk-[REDACTED]``). Keeping the
first three characters (a public prefix such as ``sk-``; a few bits of a long random key) is what
lets a stream stay unchanged: a key may be split across deltas, so the redactor must hold back a
tail of the text that could be the start of a key until the next delta shows whether it is one.
Holding back every tail that matches a key's first character would delay the last letter of
most deltas ("this" ends in the "s" of "sk-..."); holding back only tails of four characters or
more of a key is almost never needed, and a key that begins in text already sent still ends up
as ``K[:3] + "[REDACTED]"``: the three characters sent are exactly those it keeps. Streamed and
stored output are therefore equal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from chatgate.domain import Sample, ToolCall

#: What a removed credential becomes (in model output, after the key's first characters).
REDACTED = "[REDACTED]"

#: Credential fields (of a JSON credential) that are secret; ids and regions are not.
_SECRET_FIELDS = ("secret", "token", "key", "password")
#: Characters of a key left in front of the marker (see the module docstring).
_SHOWN = 3
#: Shorter "keys" are no real provider's; redacting them would mangle ordinary text.
_SHORTEST_SECRET = 8
#: Key-like tokens some providers echo back in error messages (e.g. "sk-ab***yz").
_MASKED_KEY = re.compile(r"\b(?:sk|gsk|key|cg)[-_][A-Za-z0-9*_\-]{6,}")


def secrets_of(api_key: str | None) -> tuple[str, ...]:
    """The key, and the secret values inside it when it is a JSON credential."""
    if not api_key:
        return ()
    found = [api_key]
    if api_key.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(api_key)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            found += [
                value
                for name, value in parsed.items()
                if isinstance(value, str)
                and len(value) >= _SHORTEST_SECRET
                and any(part in str(name).lower() for part in _SECRET_FIELDS)
            ]
    return tuple(found)


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value``, or a copy of it in which no string contains any of ``secrets``."""
    if not secrets:
        return value
    try:
        # Fast path, taken on nearly every call: one C-speed serialisation shows there is
        # nothing to remove, and the value is returned as it is.
        blob = orjson.dumps(value)
    except TypeError:
        return _scrub(value, secrets)
    if any(secret and secret.encode() in blob for secret in secrets):
        return _scrub(value, secrets)
    return value


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def scrub_message(message: str, secrets: Sequence[str]) -> str:
    """Error text: remove the exact keys and anything that looks like a (masked) key."""
    return _MASKED_KEY.sub(REDACTED, scrub(message, secrets))


def _output_secrets(secrets: Sequence[str]) -> list[str]:
    return [s for s in secrets if len(s) >= _SHORTEST_SECRET]


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, secret[:_SHOWN] + REDACTED)
    return text


def _redact_value(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return _redact(value, secrets)
    if isinstance(value, dict):
        return {key: _redact_value(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(item, secrets) for item in value)
    return value


def scrub_sample(sample: Sample, secrets: Sequence[str]) -> Sample:
    """``sample`` without any of ``secrets`` in its text, tool calls or reasoning."""
    secrets = _output_secrets(secrets)
    if not secrets:
        return sample
    message = sample.output_message
    calls = message.tool_calls or ()
    if message.thinking is None and not isinstance(message.content, list):
        # The usual reply: plain text and perhaps tool calls. Checked without copying anything.
        texts = (
            sample.raw_output,
            message.content or "",
            *(f"{c.id}{c.name}{c.arguments}" for c in calls),
        )
        if not any(secret in text for text in texts for secret in secrets):
            return sample
    tool_calls = tuple(
        ToolCall(*(_redact(part, secrets) for part in (c.id, c.name, c.arguments))) for c in calls
    )
    return replace(
        sample,
        raw_output=_redact(sample.raw_output, secrets),
        output_message=replace(
            message,
            content=_redact_value(message.content, secrets),
            tool_calls=tool_calls if message.tool_calls is not None else None,
            thinking=_redact_value(message.thinking, secrets),
        ),
    )


class StreamRedactor:
    """Removes ``secrets`` from one sample's streamed text, delta by delta."""

    __slots__ = ("_held", "_secrets", "_sent_tail")

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = _output_secrets(secrets)
        self._held = ""  # not sent yet: could be the start of a key
        self._sent_tail = ""  # the last characters sent, where a key may have begun

    def feed(self, text: str) -> str:
        """The part of the text so far that can be sent now."""
        if not self._secrets:
            return text
        # A key that began in the sent tail (at most _SHOWN characters back) is redacted here;
        # its first _SHOWN characters, all that was sent of it, are what the redaction keeps.
        tail = self._sent_tail
        full = _redact(tail + self._held + text, self._secrets)
        text = full[len(tail) :]
        # A key's start may lie in the sent tail: only what is not sent yet can be held.
        hold = min(self._unsafe_tail(full), len(text))
        self._held = text[len(text) - hold :] if hold else ""
        sent = text[: len(text) - hold]
        self._sent_tail = (self._sent_tail + sent)[-_SHOWN:]
        return sent

    def flush(self) -> str:
        """What was held back; the stream has ended, so it cannot become a key any more."""
        held, self._held = self._held, ""
        return held

    def _unsafe_tail(self, text: str) -> int:
        """Length of the longest tail of ``text``, more than _SHOWN characters long, that is a
        proper prefix of a secret (0 if none)."""
        longest = 0
        for secret in self._secrets:
            window = min(len(secret) - 1, len(text))
            position = text.find(secret[0], len(text) - window)
            while position != -1 and len(text) - position > _SHOWN:
                if secret.startswith(text[position:]):
                    longest = max(longest, len(text) - position)
                    break  # the leftmost match is the longest for this secret
                position = text.find(secret[0], position + 1)
        return longest
