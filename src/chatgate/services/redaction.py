"""Keeping a call's provider keys out of what the model says.

A provider (or a model asked cleverly) can echo the request's credential back: in the reply's
text, a tool call's arguments, reasoning blocks. Nothing a call stores or returns may contain
the keys it used, so:

* :func:`secrets_of` lists every secret part of a credential (a JSON credential such as
  Bedrock's IAM keys holds several);
* :func:`scrub_sample` removes them from a finished sample (the log and the non-streamed answer);
* :class:`StreamRedactor` removes them from text streamed to the client as it arrives. A key may
  be split across two deltas, so the redactor holds back the shortest tail of the text that
  could be the start of a key, until the next delta shows it is not (or the stream ends).
  Almost every delta ends in a character that begins no key and is passed on whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson

from chatgate.domain import Sample, ToolCall
from chatgate.services.recorder import REDACTED, scrub

#: Credential fields (of a JSON credential) that are secret; ids and regions are not.
_SECRET_FIELDS = ("secret", "token", "key", "password")


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
                and len(value) >= 8
                and any(part in str(name).lower() for part in _SECRET_FIELDS)
            ]
    return tuple(found)


def _replace_all(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_sample(sample: Sample, secrets: Sequence[str]) -> Sample:
    """``sample`` without any of ``secrets`` in its text, tool calls or reasoning."""
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
        ToolCall(*(_replace_all(part, secrets) for part in (c.id, c.name, c.arguments)))
        for c in calls
    )
    thinking = scrub(list(message.thinking), secrets) if message.thinking else None
    return replace(
        sample,
        raw_output=_replace_all(sample.raw_output, secrets),
        output_message=replace(
            message,
            content=scrub(message.content, secrets),
            tool_calls=tool_calls if message.tool_calls is not None else None,
            thinking=tuple(thinking) if thinking is not None else message.thinking,
        ),
    )


class StreamRedactor:
    """Removes ``secrets`` from one sample's streamed text, delta by delta."""

    __slots__ = ("_held", "_secrets")

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = [s for s in secrets if s]
        self._held = ""

    def feed(self, text: str) -> str:
        """The part of the text so far that can be sent now."""
        if not self._secrets:
            return text
        text = _replace_all(self._held + text, self._secrets)
        keep = self._unsafe_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back; the stream has ended, so it cannot become a key any more."""
        held, self._held = self._held, ""
        return held

    def _unsafe_tail(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a secret."""
        longest = 0
        for secret in self._secrets:
            window = min(len(secret) - 1, len(text))
            start = len(text) - window
            position = text.find(secret[0], start)
            while position != -1:
                if secret.startswith(text[position:]):
                    longest = max(longest, len(text) - position)
                    break  # the leftmost match is the longest for this secret
                position = text.find(secret[0], position + 1)
        return longest
