"""The closed set of events every provider adapter produces, and the one accumulator.

Streamed and non-streamed calls both go through :class:`Accumulator`: a non-streamed provider
response is translated into the same events (one big delta per sample), so the log of a streamed
call and the log of the same call made without streaming cannot diverge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatgate.domain import Message, Sample, ToolCall, Usage
from chatgate.errors import ChatgateError


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of the ``block``-th reasoning block of a sample (providers that expose thinking).

    ``kind`` is ``"thinking"`` (``text`` is its text, ``signature`` arrives once) or
    ``"redacted_thinking"`` (``data`` is the opaque payload). Assembled blocks end up in the
    output message's ``thinking`` list, in v4's ``{"type", "thinking", "signature"}`` shape.
    """

    index: int
    block: int
    kind: str = "thinking"
    text: str = ""
    signature: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of the ``call_index``-th tool call of a sample; id and name arrive once."""

    index: int
    call_index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token counts reported by the provider; ``index`` None means for the whole call."""

    usage: Usage
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """A sample is complete; ``reason`` is already in v4 vocabulary (stop, length, tool_call ...)."""

    index: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class RawResponse:
    """The provider's raw response body (non-streamed) or its reassembled equivalent (streamed)."""

    payload: Any


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The provider failed after the call began."""

    error: ChatgateError


StreamEvent = (
    TextDelta | ThinkingDelta | ToolCallDelta | UsageReport | Finish | RawResponse | StreamFailed
)


@dataclass(slots=True)
class _PendingToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _SampleState:
    text: list[str] = field(default_factory=list)
    thinking: dict[int, dict[str, Any]] = field(default_factory=dict)
    tool_calls: dict[int, _PendingToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    finished: bool = False
    usage: Usage | None = None


def _thinking_blocks(blocks: dict[int, dict[str, Any]]) -> tuple[dict[str, Any], ...] | None:
    out = []
    for _, block in sorted(blocks.items()):
        if block["type"] == "redacted_thinking":
            out.append({"type": "redacted_thinking", "data": block.get("data", "")})
        else:
            out.append(
                {
                    "type": "thinking",
                    "thinking": "".join(block["parts"]),
                    "signature": block.get("signature"),
                }
            )
    return tuple(out) or None


class Accumulator:
    """Folds a call's events into its samples, usage and raw responses."""

    def __init__(self, num_samples: int) -> None:
        self._samples = [_SampleState() for _ in range(num_samples)]
        self.call_usage: Usage | None = None
        self.raw_responses: list[Any] = []
        self.error: ChatgateError | None = None

    def feed(self, event: StreamEvent) -> None:
        index = getattr(event, "index", None)
        if index is not None and not 0 <= index < len(self._samples):
            # More choices than were asked for (e.g. a provider ignoring ``n``): each sample has
            # exactly one log id, so extra choices are not attributed to anyone.
            return
        match event:
            case TextDelta(index, text):
                self._sample(index).text.append(text)
            case ThinkingDelta(index, block, kind, text, signature, data):
                thinking = self._sample(index).thinking.setdefault(
                    block, {"type": kind, "parts": []}
                )
                if text:
                    thinking["parts"].append(text)
                if signature:
                    thinking["signature"] = signature
                if data:
                    thinking["data"] = data
            case ToolCallDelta(index, call_index, call_id, name, arguments):
                pending = self._sample(index).tool_calls.setdefault(call_index, _PendingToolCall())
                if call_id:
                    pending.id = call_id
                if name:
                    pending.name += name
                if arguments:
                    pending.arguments.append(arguments)
            case UsageReport(usage, index):
                if index is None:
                    self.call_usage = usage if self.call_usage is None else self.call_usage + usage
                else:
                    self._sample(index).usage = usage
            case Finish(index, reason):
                state = self._sample(index)
                state.finish_reason = reason
                state.finished = True
            case RawResponse(payload):
                self.raw_responses.append(payload)
            case StreamFailed(error):
                self.error = error

    def _sample(self, index: int) -> _SampleState:
        return self._samples[index]

    def is_finished(self, index: int) -> bool:
        return self._samples[index].finished

    @property
    def total_usage(self) -> Usage | None:
        """Usage of the whole call: the call-level report, else the sum of per-sample reports."""
        if self.call_usage is not None:
            return self.call_usage
        per_sample = [s.usage for s in self._samples if s.usage is not None]
        if not per_sample:
            return None
        total = per_sample[0]
        for usage in per_sample[1:]:
            total = total + usage
        return total

    def sample(self, index: int) -> Sample:
        state = self._samples[index]
        raw_output = "".join(state.text)
        tool_calls = tuple(
            ToolCall(id=p.id, name=p.name, arguments="".join(p.arguments))
            for _, p in sorted(state.tool_calls.items())
        )
        usage = state.usage
        if usage is None and index == 0:
            # A call-level figure is attributed to the first sample so that the logs of a call
            # sum to exactly what the provider billed (docs/compat.md, "Usage").
            usage = self.call_usage
        return Sample(
            index=index,
            raw_output=raw_output,
            output_message=Message(
                role="assistant",
                # As OpenAI does: a reply that is only tool calls has null content.
                content=raw_output if raw_output or not tool_calls else None,
                tool_calls=tool_calls or None,
                thinking=_thinking_blocks(state.thinking),
            ),
            finish_reason=state.finish_reason,
            usage=usage,
            error=self.error.message if self.error and not state.finished else None,
        )

    def samples(self) -> list[Sample]:
        return [self.sample(i) for i in range(len(self._samples))]
