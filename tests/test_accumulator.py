"""The one accumulator that turns provider events into samples and usage."""

from __future__ import annotations

from chatgate.domain import ToolCall, Usage
from chatgate.errors import ProviderError
from chatgate.streaming import (
    Accumulator,
    Finish,
    RawResponse,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)


def test_text_deltas_interleaved_across_samples() -> None:
    acc = Accumulator(2)
    for event in (
        TextDelta(0, "Hel"),
        TextDelta(1, "Bon"),
        TextDelta(0, "lo "),
        TextDelta(1, "jour"),
        Finish(1, "stop"),
        Finish(0, "length"),
        UsageReport(Usage(5, 4)),
    ):
        acc.feed(event)
    first, second = acc.samples()
    assert (first.raw_output, first.output, first.finish_reason) == ("Hello ", "Hello", "length")
    assert (second.raw_output, second.finish_reason) == ("Bonjour", "stop")
    assert first.usage == Usage(5, 4) and second.usage is None
    assert acc.total_usage == Usage(5, 4)


def test_tool_call_arguments_are_assembled_in_order() -> None:
    acc = Accumulator(1)
    for event in (
        ToolCallDelta(0, 0, "call_a", "get_", '{"ci'),
        ToolCallDelta(0, 1, "call_b", "other", "{}"),
        ToolCallDelta(0, 0, None, "weather", 'ty": "Paris"}'),
        Finish(0, "tool_call"),
    ):
        acc.feed(event)
    [sample] = acc.samples()
    assert sample.output_message.tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "other", "{}"),
    )
    assert sample.output_message.content is None


def test_per_sample_usage_sums() -> None:
    acc = Accumulator(2)
    acc.feed(UsageReport(Usage(3, 1, 0), index=0))
    acc.feed(UsageReport(Usage(3, 2, 5), index=1))
    assert acc.total_usage == Usage(6, 3, 5)


def test_no_usage_reported_is_none_not_zero() -> None:
    acc = Accumulator(1)
    acc.feed(TextDelta(0, "x"))
    assert acc.total_usage is None
    assert acc.samples()[0].usage is None


def test_failure_marks_unfinished_samples_only() -> None:
    acc = Accumulator(2)
    acc.feed(RawResponse({"id": "r"}))
    acc.feed(TextDelta(0, "done"))
    acc.feed(Finish(0, "stop"))
    acc.feed(TextDelta(1, "part"))
    acc.feed(StreamFailed(ProviderError("boom", status=500, origin="OpenAI")))
    first, second = acc.samples()
    assert first.error is None
    assert second.error == "boom" and second.raw_output == "part"
    assert acc.raw_responses == [{"id": "r"}]


def test_choices_beyond_the_requested_samples_are_ignored() -> None:
    acc = Accumulator(1)
    for event in (
        TextDelta(0, "mine"),
        TextDelta(3, "stray"),
        Finish(3, "stop"),
        Finish(0, "stop"),
        UsageReport(Usage(1, 1), index=5),
    ):
        acc.feed(event)
    [sample] = acc.samples()
    assert sample.raw_output == "mine" and sample.finish_reason == "stop"


def test_thinking_blocks_are_assembled_into_the_output_message() -> None:
    from chatgate.streaming import ThinkingDelta

    acc = Accumulator(1)
    for event in (
        ThinkingDelta(0, 0, text="Let me "),
        ThinkingDelta(0, 0, text="think."),
        ThinkingDelta(0, 0, signature="sig=="),
        ThinkingDelta(0, 1, "redacted_thinking", data="opaque"),
        TextDelta(0, "Answer"),
        Finish(0, "stop"),
    ):
        acc.feed(event)
    message = acc.samples()[0].output_message
    assert message.thinking == (
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
    )
    assert message.to_v4()["thinking"] == list(message.thinking)
