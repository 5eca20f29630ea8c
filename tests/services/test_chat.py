"""The chat service, tested directly: both paths (``ChatService.chat`` and
``ChatService.stream``) on a real SQLite file with a scripted wire, and what they recorded read
back from the database. The HTTP behaviour of the same paths is in tests/api."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa

from chatgate.domain import ChatCall, Message, ModelConfig, Usage
from chatgate.errors import ProviderError
from chatgate.services.chat import ChatInput
from chatgate.services.chat_stream import SampleDelta, SampleDone, SampleFailed, StreamOutput
from chatgate.state import AppState
from chatgate.store import schema
from chatgate.streaming import Finish, RawResponse, TextDelta, UsageReport
from tests.services.conftest import ScriptItem, Services, Stall

#: A caller's key; long enough to be redacted from model output (services/redaction.py).
KEY = "sk-caller-0123456789abcdef"
#: The errors recorded when the client leaves (tests/api/test_abandoned_calls.py asserts them too).
CANCELLED = "cancelled: the client disconnected before the answer was complete"
STREAM_CANCELLED = "cancelled: the client disconnected before the stream finished"
#: Bound on anything a test waits for.
WAIT_SECONDS = 5.0


def chat_input(**overrides: Any) -> ChatInput:
    fields: dict[str, Any] = {
        "config": ModelConfig(provider="stub", model="m"),
        "messages": (Message("user", "hi"),),
        "project": "p",
    }
    return ChatInput(**{**fields, **overrides})


def stored_logs(services: Services, org_id: str) -> list[dict[str, Any]]:
    """Every log of the organisation as stored, read from the database file itself."""
    store = services.store()
    logs = schema.logs
    try:
        with store.engine.connect() as c:
            rows = c.execute(
                sa.select(logs).where(logs.c.org_id == org_id).order_by(logs.c.sample_index)
            )
            return [dict(row) for row in rows.mappings()]
    finally:
        store.close()


async def all_outputs(state: AppState, services: Services, request: ChatInput) -> list[Any]:
    stream = await state.chat.stream(services.acme, request, keepalive_seconds=WAIT_SECONDS)
    return [output async for output in stream.outputs()]


# --- not streamed ------------------------------------------------------------------------------


def test_a_call_is_answered_and_its_log_committed_before_the_answer(services: Services) -> None:
    async def work(state: AppState) -> None:
        outcome = await state.chat.chat(
            services.acme, chat_input(inputs={"name": "Ada"}, metadata={"run": 7})
        )
        assert [s.output for s in outcome.samples] == ["hello"]
        assert outcome.usage == Usage(prompt_tokens=3, generation_tokens=1)
        assert outcome.provider_request == {"model": "m"}
        # Durable commits: the log is in the database when the call returns.
        [log] = stored_logs(services, services.acme.org_id)
        assert log["id"] == outcome.log_ids[0]
        assert log["project_id"] == outcome.project_id
        assert log["config_id"] == outcome.config_id
        assert (log["output"], log["finish_reason"], log["error"]) == ("hello", "stop", None)
        assert (log["prompt_tokens"], log["output_tokens"]) == (3, 1)
        assert log["inputs"] == {"name": "Ada"}
        assert log["metadata"] == {"run": 7}
        assert [m["content"] for m in log["messages"]] == ["hi"]
        assert log["provider_request"] == {"model": "m"}

    services.run(work)
    assert stored_logs(services, services.globex.org_id) == []


def test_fast_commits_are_recorded_by_shutdown(services: Services) -> None:
    fast = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"log_commit": "fast"})
    )

    async def work(state: AppState) -> str:
        outcome = await state.chat.chat(fast.acme, chat_input())
        return outcome.log_ids[0]

    log_id = fast.run(work)
    assert [log["id"] for log in stored_logs(fast, fast.acme.org_id)] == [log_id]


def test_each_sample_gets_its_own_log(services: Services) -> None:
    def two_samples(call: ChatCall) -> list[ScriptItem]:
        assert call.num_samples == 2
        return [
            TextDelta(1, "second"),
            TextDelta(0, "first"),
            UsageReport(Usage(prompt_tokens=5, generation_tokens=2)),
            Finish(0, "stop"),
            Finish(1, "length"),
        ]

    services.wire.script = two_samples

    async def work(state: AppState) -> list[str]:
        outcome = await state.chat.chat(services.acme, chat_input(num_samples=2))
        assert [(s.index, s.output) for s in outcome.samples] == [(0, "first"), (1, "second")]
        return outcome.log_ids

    log_ids = services.run(work)
    logs = stored_logs(services, services.acme.org_id)
    assert len(set(log_ids)) == 2
    assert [(log["id"], log["sample_index"]) for log in logs] == [(log_ids[0], 0), (log_ids[1], 1)]
    assert [(log["output"], log["finish_reason"]) for log in logs] == [
        ("first", "stop"),
        ("second", "length"),
    ]


def test_a_provider_error_before_any_event_is_raised_and_logged_once(services: Services) -> None:
    services.wire.script = lambda call: [
        ProviderError(f"invalid api key {call.api_key}", status=401, origin="Stub")
    ]

    async def work(state: AppState) -> None:
        with pytest.raises(ProviderError) as raised:
            await state.chat.chat(services.acme, chat_input(provider_api_keys={"stub": KEY}))
        assert raised.value.status == 401
        assert raised.value.message == "invalid api key [REDACTED]"

    services.run(work)
    [log] = stored_logs(services, services.acme.org_id)
    assert log["error"] == "invalid api key [REDACTED]"
    assert (log["output"], log["sample_index"]) == (None, 0)
    assert services.wire.calls[0].api_key == KEY


def test_a_call_whose_client_leaves_is_closed_upstream_and_logged_as_cancelled(
    services: Services,
) -> None:
    async def work(state: AppState) -> None:
        stall = Stall()
        services.wire.script = lambda call: [TextDelta(0, "partial"), stall]
        call = asyncio.ensure_future(state.chat.chat(services.acme, chat_input()))
        await asyncio.wait_for(stall.reached.wait(), WAIT_SECONDS)
        call.cancel()  # what api/disconnect.py does when the client hangs up
        with pytest.raises(asyncio.CancelledError):
            await call
        assert services.wire.closed == 1

    services.run(work)  # the log is committed in the background; shutdown drains the writer
    [log] = stored_logs(services, services.acme.org_id)
    assert (log["output"], log["error"]) == ("partial", CANCELLED)


def test_save_false_answers_but_keeps_no_payload(services: Services) -> None:
    async def work(state: AppState) -> None:
        outcome = await state.chat.chat(
            services.acme, chat_input(save=False, inputs={"private": "yes"})
        )
        assert outcome.samples[0].output == "hello"

    services.run(work)
    [log] = stored_logs(services, services.acme.org_id)
    assert log["save"] is False
    for payload in ("inputs", "messages", "output", "raw_output", "output_message"):
        assert log[payload] is None, payload
    assert (log["provider_request"], log["provider_response"]) == (None, None)
    assert (log["prompt_tokens"], log["finish_reason"]) == (3, "stop")


def test_a_key_the_provider_echoes_is_neither_returned_nor_stored(services: Services) -> None:
    services.wire.script = lambda call: [
        RawResponse({"echo": call.api_key}),
        TextDelta(0, f"your key is {call.api_key}"),
        Finish(0, "stop"),
    ]

    async def work(state: AppState) -> None:
        outcome = await state.chat.chat(
            services.acme,
            chat_input(
                messages=(Message("user", f"my key is {KEY}"),),
                provider_api_keys={"stub": KEY},
            ),
        )
        assert outcome.samples[0].output == "your key is sk-[REDACTED]"
        assert outcome.provider_responses == [{"echo": "[REDACTED]"}]
        assert KEY not in repr(outcome)

    services.run(work)
    assert services.wire.calls[0].api_key == KEY  # the key did reach the provider
    [log] = stored_logs(services, services.acme.org_id)
    assert log["output"] == "your key is sk-[REDACTED]"
    assert log["provider_response"] == {"echo": "[REDACTED]"}
    assert log["messages"][0]["content"] == "my key is [REDACTED]"
    assert KEY not in repr(log)


# --- streamed ----------------------------------------------------------------------------------


def test_a_stream_passes_deltas_on_and_ends_each_sample_once_logged(services: Services) -> None:
    services.wire.script = lambda call: [
        TextDelta(0, "Hel"),
        TextDelta(0, "lo"),
        UsageReport(Usage(prompt_tokens=2, generation_tokens=2), 0),
        Finish(0, "stop"),
    ]

    async def work(state: AppState) -> None:
        stream = await state.chat.stream(services.acme, chat_input(stream=True), WAIT_SECONDS)
        texts = []
        async for output in stream.outputs():
            if isinstance(output, SampleDelta):
                texts.append(output.text)
            else:
                assert isinstance(output, SampleDone)
                # Committed before the sample's end is announced: a client can fetch its log.
                [log] = stored_logs(services, services.acme.org_id)
                assert log["id"] == output.log_id
                assert (log["output"], log["prompt_tokens"]) == ("Hello", 2)
        assert texts == ["Hel", "lo"]
        assert services.wire.calls[0].stream is True

    services.run(work)


def test_a_stream_that_fails_midway_fails_its_sample_and_logs_the_error(
    services: Services,
) -> None:
    services.wire.script = lambda call: [
        TextDelta(0, "par"),
        ProviderError("overloaded", status=529, origin="Stub"),
    ]

    async def work(state: AppState) -> list[StreamOutput]:
        return await all_outputs(state, services, chat_input(stream=True))

    first, last = services.run(work)
    assert isinstance(first, SampleDelta)
    assert (first.index, first.text) == (0, "par")
    assert isinstance(last, SampleFailed)
    assert (last.log_id, last.sample.output, last.error.message) == (
        first.log_id,
        "par",
        "overloaded",
    )
    [log] = stored_logs(services, services.acme.org_id)
    assert (log["id"], log["output"], log["error"]) == (first.log_id, "par", "overloaded")


def test_a_stream_failing_before_its_first_event_is_a_plain_error(services: Services) -> None:
    services.wire.script = lambda call: [ProviderError("rate limited", status=429, origin="Stub")]

    async def work(state: AppState) -> None:
        with pytest.raises(ProviderError, match="rate limited"):
            await state.chat.stream(services.acme, chat_input(stream=True), WAIT_SECONDS)

    services.run(work)
    [log] = stored_logs(services, services.acme.org_id)
    assert log["error"] == "rate limited"


def test_a_stream_whose_consumer_closes_it_is_logged_as_cancelled(services: Services) -> None:
    services.wire.script = lambda call: [TextDelta(0, "partial"), TextDelta(0, " more")]

    async def work(state: AppState) -> None:
        stream = await state.chat.stream(services.acme, chat_input(stream=True), WAIT_SECONDS)
        outputs = stream.outputs()
        assert await anext(outputs) == SampleDelta(0, stream.prepared.log_ids[0], "partial")
        await outputs.aclose()
        assert services.wire.closed == 1  # the upstream call is closed at once

    services.run(work)
    [log] = stored_logs(services, services.acme.org_id)
    assert (log["output"], log["error"]) == ("partial", STREAM_CANCELLED)


def test_a_stream_cancelled_while_waiting_for_the_provider_is_logged_as_cancelled(
    services: Services,
) -> None:
    async def work(state: AppState) -> None:
        stall = Stall()
        services.wire.script = lambda call: [TextDelta(0, "partial"), stall]
        received: list[StreamOutput] = []

        async def consume() -> None:
            stream = await state.chat.stream(services.acme, chat_input(stream=True), WAIT_SECONDS)
            async for output in stream.outputs():
                received.append(output)

        # What api/sse.py does when the client hangs up: the task pumping the stream is cancelled.
        consumer = asyncio.ensure_future(consume())
        await asyncio.wait_for(stall.reached.wait(), WAIT_SECONDS)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert [type(o) for o in received] == [SampleDelta]
        assert services.wire.closed == 1

    services.run(work)
    [log] = stored_logs(services, services.acme.org_id)
    assert (log["output"], log["error"]) == ("partial", STREAM_CANCELLED)


def test_a_key_split_across_deltas_never_reaches_the_stream_or_the_log(
    services: Services,
) -> None:
    services.wire.script = lambda call: [
        TextDelta(0, f"key: {KEY[:6]}"),
        TextDelta(0, f"{KEY[6:]}."),
        Finish(0, "stop"),
    ]

    async def work(state: AppState) -> list[StreamOutput]:
        request = chat_input(stream=True, provider_api_keys={"stub": KEY})
        return await all_outputs(state, services, request)

    outputs = services.run(work)
    streamed = "".join(o.text for o in outputs if isinstance(o, SampleDelta))
    assert streamed == "key: sk-[REDACTED]."
    [done] = [o for o in outputs if isinstance(o, SampleDone)]
    assert done.sample.output == streamed
    [log] = stored_logs(services, services.acme.org_id)
    assert log["output"] == streamed
    assert KEY not in repr(log)
