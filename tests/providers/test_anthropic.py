"""The Anthropic Messages wire: the exact request built from v4 requests, and the v4 responses,
logs and errors produced from Anthropic's replies, through a real chatgate server and a fake
Anthropic server speaking the real wire (recorded transcripts in tests/fixtures/anthropic)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.domain import ChatCall, Message, ModelConfig, Tool, ToolCall
from chatgate.errors import InvalidRequest
from chatgate.providers import BUILTIN
from chatgate.providers.anthropic_messages import AnthropicMessagesWire
from tests.conftest import RunningServer, start_server
from tests.fakes.anthropic_server import FakeAnthropic, error_body, message, sse_pieces
from tests.providers._transcripts import WEATHER, read_json, read_pieces

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"
ENV_KEY = "sk-ant-env-0123456789abcdef"
SPEC = BUILTIN["anthropic"]
MODEL = "claude-sonnet-4-5-20250929"


fixture_json = functools.partial(read_json, FIXTURES)


fixture_pieces = functools.partial(read_pieces, FIXTURES, size=37)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def anthropic(fake_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    fake_anthropic_server.reset()
    return fake_anthropic_server


@pytest.fixture
def server(tmp_path: Path, anthropic: FakeAnthropic) -> Iterator[RunningServer]:
    runner, running = start_server(
        tmp_path,
        "",
        vendor_env={"ANTHROPIC_BASE_URL": anthropic.url, "ANTHROPIC_API_KEY": ENV_KEY},
    )
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "anthropic", "model": MODEL, **overrides.pop("model_config", {})}
    return {
        "project": "claude",
        "model_config": config,
        "messages": [{"role": "user", "content": "tell me a story"}],
        **overrides,
    }


def prepare(*messages: Message, **kwargs: Any) -> dict[str, Any]:
    config_fields = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ModelConfig.__dataclass_fields__ and k not in ("provider", "model")
    }
    config = ModelConfig(provider="anthropic", model=kwargs.pop("model", MODEL), **config_fields)
    call = ChatCall(config=config, messages=messages, api_key="sk-ant-secret", **kwargs)
    upstream = AnthropicMessagesWire().prepare(call, SPEC)
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.headers == {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-secret"}
    assert "sk-ant-secret" not in json.dumps(upstream.body)
    return upstream.body


def refusal(*messages: Message, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(InvalidRequest) as caught:
        prepare(*messages, **kwargs)
    (problem,) = caught.value.problems
    assert "anthropic" in problem.msg
    return {"loc": list(problem.loc), "msg": problem.msg, "type": problem.type}


USER = Message("user", "Hi")


# --- the provider request -----------------------------------------------------------------------


def test_system_turns_tools_images_and_tool_results_become_one_messages_request() -> None:
    sent = prepare(
        Message("system", "You are terse."),
        Message("system", "Answer in English."),
        Message(
            "user",
            [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            ],
        ),
        Message("user", "And the weather?"),
        Message(
            "assistant",
            "",
            tool_calls=(ToolCall("toolu_1", "get_weather", '{"location": "Paris"}'),),
            thinking=({"type": "thinking", "thinking": "Call it.", "signature": "sig=="},),
        ),
        Message("tool", '{"temp": 21}', tool_call_id="toolu_1", name="get_weather"),
        Message("user", "Thanks"),
        Message("assistant", "You're welcome"),
        tools=(WEATHER,),
        tool_choice="auto",
        stop="END",
        temperature=0.5,
        max_tokens=300,
        user="user-7",
        other={"top_k": 5, "max_tokens": 1, "metadata": {"user_id": "ignored"}},
    )
    assert sent == {
        "top_k": 5,
        "model": MODEL,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Answer in English."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.png"},
                    },
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": "/9j/4AAQ",
                        },
                    },
                    {"type": "text", "text": "And the weather?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call it.", "signature": "sig=="},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"location": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp": 21}'},
                    {"type": "text", "text": "Thanks"},
                ],
            },
            {"role": "assistant", "content": "You're welcome"},
        ],
        "max_tokens": 300,
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "auto"},
    }


def test_defaults_send_only_what_anthropic_requires() -> None:
    sent = prepare(Message("system", "Be brief."), USER, stream=True)
    # v4 defaults (temperature 1, top_p 1, penalties 0) are Anthropic's too: nothing is sent.
    assert sent == {
        "model": MODEL,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 64_000,  # max_tokens -1: the model's maximum output
        "stream": True,
    }


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-1-20250805", 32_000),
        ("claude-3-5-haiku-latest", 8_192),
        ("claude-3-haiku-20240307", 4_096),
        ("claude-future-9", 4_096),
    ],
)
def test_max_tokens_minus_one_is_the_model_maximum(model: str, expected: int) -> None:
    assert prepare(USER, model=model)["max_tokens"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", {"type": "none"}),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_variants(choice: Any, expected: dict[str, Any]) -> None:
    assert prepare(USER, tools=(WEATHER,), tool_choice=choice)["tool_choice"] == expected


def test_tool_without_parameters_gets_an_empty_object_schema_and_no_choice_without_tools() -> None:
    sent = prepare(USER, tools=(Tool(name="ping"),))
    assert sent["tools"] == [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in prepare(USER, tool_choice="required")


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [(4000, 8000, 4000), ("low", -1, 1024), ("medium", -1, 8192), ("high", 20_000, 16_384)],
)
def test_reasoning_effort_is_the_thinking_budget(
    effort: str | int, max_tokens: int, budget: int
) -> None:
    sent = prepare(USER, reasoning_effort=effort, max_tokens=max_tokens)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert sent["max_tokens"] > budget


def test_max_tokens_must_exceed_the_thinking_budget() -> None:
    problem = refusal(USER, reasoning_effort=2048, max_tokens=2048)
    assert problem["loc"] == ["body", "model_config", "max_tokens"]
    assert "2048" in problem["msg"]
    # an unknown model's default maximum (4096) is below the "high" budget
    problem = refusal(USER, reasoning_effort="high", model="claude-future-9")
    assert "model maximum" in problem["msg"]


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"presence_penalty": 0.5}, ["body", "model_config", "presence_penalty"]),
        ({"frequency_penalty": -1.0}, ["body", "model_config", "frequency_penalty"]),
        ({"seed": 7}, ["body", "model_config", "seed"]),
        (
            {"response_format": {"type": "json_schema", "json_schema": {}}},
            ["body", "model_config", "response_format"],
        ),
        ({"tools": (Tool(name="f", strict=True),)}, ["body", "model_config", "tools", 0, "strict"]),
    ],
)
def test_parameters_anthropic_cannot_honour_are_422(kwargs: dict[str, Any], loc: list[Any]) -> None:
    assert refusal(USER, **kwargs)["loc"] == loc


def test_request_level_json_mode_is_422_at_the_top_level() -> None:
    config = ModelConfig(provider="anthropic", model=MODEL)
    call = ChatCall(config, (USER,), response_format={"type": "json_object"})
    with pytest.raises(InvalidRequest) as caught:
        AnthropicMessagesWire().prepare(call, SPEC)
    assert caught.value.problems[0].loc == ("body", "response_format")


def test_text_response_format_and_v4_defaults_are_not_refused() -> None:
    sent = prepare(USER, response_format={"type": "text"}, presence_penalty=0.0, seed=None)
    assert "response_format" not in sent


def test_messages_anthropic_cannot_take_are_422() -> None:
    assert refusal(Message("user", "Hi", name="bob"))["loc"] == ["body", "messages", 0, "name"]
    bad_image = Message("user", [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])
    assert refusal(bad_image)["loc"] == ["body", "messages", 0, "content", 0, "image_url", "url"]
    bad_args = Message("assistant", None, tool_calls=(ToolCall("t", "f", "{not json"),))
    assert refusal(USER, bad_args)["loc"] == [
        "body",
        "messages",
        1,
        "tool_calls",
        0,
        "function",
        "arguments",
    ]


# --- responses through a real chatgate ---------------------------------------------------------


def parse_frames(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(block[6:]) for block in raw.split(b"\n\n") if block.startswith(b"data: ")]


COMPARED = (
    "output",
    "raw_output",
    "output_message",
    "finish_reason",
    "prompt_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "prompt_cost",
    "output_cost",
    "provider_response",
    "messages",
    "error",
)

#: The transcript's usage (472 uncached input tokens, 100 written to the cache, 20 read from it,
#: 89 output) at claude-sonnet-4's prices (USD per 1M: input 3, cache write 3.75, cache read 0.30,
#: output 15).
TRANSCRIPT_COSTS = {
    "prompt_cost": pytest.approx((472 * 3 + 100 * 3.75 + 20 * 0.3) / 1e6),
    "output_cost": pytest.approx(89 * 15 / 1e6),
}


def test_non_streamed_call_with_thinking_and_tool_use(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(json_body=fixture_json("message_thinking_tool_use.json"))
    response = server.post_chat(
        body(
            messages=[{"role": "user", "content": "Weather in SF?"}],
            model_config={"tools": [{"name": "get_weather", "parameters": {"type": "object"}}]},
            reasoning_effort="low",
        )
    )
    assert response.status_code == 200, response.text
    recorded = anthropic.last
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == ENV_KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    result = response.json()
    assert result["provider_request"] == recorded.body
    data = result["data"][0]
    assert data["output"] == "I'll check the current weather in San Francisco for you."
    assert data["finish_reason"] == "tool_call"
    call = {
        "id": "toolu_01A09q90qw90lq917835lq9",
        "type": "function",
        "function": {
            "name": "get_weather",
            "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
        },
    }
    assert data["output_message"]["tool_calls"] == [call]
    assert data["output_message"]["thinking"] == [
        {
            "type": "thinking",
            "thinking": "The user wants the weather in San Francisco. I should call get_weather.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        },
        {
            "type": "redacted_thinking",
            "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
        },
    ]
    # cache writes (100) and reads (20) are prompt tokens too, and are also reported apart
    assert result["usage"] == {
        "prompt_tokens": 592,
        "generation_tokens": 89,
        "total_tokens": 681,
        "cache_read_tokens": 20,
        "cache_write_tokens": 100,
    }
    assert result["provider_responses"] == [fixture_json("message_thinking_tool_use.json")]
    log = server.get_log(data["id"])
    assert log["provider_response"] == fixture_json("message_thinking_tool_use.json")
    assert log["prompt_tokens"] == 592 and log["output_tokens"] == 89
    assert (log["cache_read_tokens"], log["cache_write_tokens"]) == (20, 100)
    assert log["reasoning_tokens"] is None  # thinking is inside output_tokens, not counted apart
    assert {k: log[k] for k in TRANSCRIPT_COSTS} == TRANSCRIPT_COSTS


def test_thinking_and_tool_results_go_back_on_the_next_turn(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    first = fixture_json("message_thinking_tool_use.json")
    anthropic.enqueue(json_body=first)
    reply = server.post_chat(body(reasoning_effort=2000)).json()["data"][0]["output_message"]
    turn = {k: v for k, v in reply.items() if k != "tool_call"}
    response = server.post_chat(
        body(
            reasoning_effort=2000,
            messages=[
                {"role": "user", "content": "tell me a story"},
                turn,
                {
                    "role": "tool",
                    "content": "21C",
                    "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
                },
            ],
        )
    )
    assert response.status_code == 200, response.text
    assistant, results = anthropic.last.body["messages"][1:]
    assert assistant["content"] == [
        *first["content"][:2],
        {"type": "text", "text": first["content"][2]["text"]},
        first["content"][3],
    ]
    assert results == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "21C",
            }
        ],
    }


def test_streamed_log_equals_the_non_streamed_log(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    recorded = fixture_json("message_thinking_tool_use.json")
    anthropic.enqueue(json_body=recorded)
    plain = server.post_chat(body()).json()
    anthropic.enqueue(pieces=fixture_pieces("stream_thinking_tool_use.sse"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 200, streamed.text
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames] == [
        "I'll check the current weather ",
        "in San Francisco for you.",
        "",
    ]
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "tool_call"
    assert last["provider_responses"] == [recorded]  # the reassembled Message
    assert last["usage"] == plain["usage"]
    assert last["provider_request"]["stream"] is True
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(last["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key
    # message_start carried the cache counts, message_delta the final output count
    assert (streamed_log["cache_read_tokens"], streamed_log["cache_write_tokens"]) == (20, 100)
    assert {k: streamed_log[k] for k in TRANSCRIPT_COSTS} == TRANSCRIPT_COSTS


def test_default_replies_streamed_and_not_store_the_same_log(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    plain = server.post_chat(body()).json()
    anthropic.reset()
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames] == ["Echo: ", "tell ", "me ", "a ", "story", ""]
    assert plain["data"][0]["output"] == "Echo: tell me a story"
    assert plain["data"][0]["finish_reason"] == "stop"
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(frames[-1]["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key


def test_provider_error_keeps_status_type_and_origin(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(400, fixture_json("error_invalid_request.json"))
    response = server.post_chat(body())
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "type": "invalid_request_error",
            "message": fixture_json("error_invalid_request.json")["error"]["message"],
            "code": 400,
            "origin": "Anthropic",
        }
    }
    for _ in range(3):  # the first answer and both retries (529 is retried)
        anthropic.enqueue(529, fixture_json("error_overloaded.json"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 529
    assert streamed.json()["detail"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
        "code": 529,
        "origin": "Anthropic",
    }


def test_missing_key_reaches_anthropic_as_its_401(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    # A key given in the request wins over the environment's; it goes only in x-api-key.
    response = server.post_chat(body(provider_api_keys={"anthropic": "sk-ant-request-key"}))
    assert response.status_code == 200
    assert anthropic.last.headers["x-api-key"] == "sk-ant-request-key"
    assert "sk-ant-request-key" not in json.dumps(response.json())
    anthropic.enqueue(401, error_body("authentication_error", "invalid x-api-key"))
    response = server.post_chat(body())
    assert response.status_code == 401
    assert response.json()["detail"]["origin"] == "Anthropic"


def test_error_event_before_content_is_a_plain_error_with_anthropics_status(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(pieces=fixture_pieces("stream_overloaded_at_start.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 529
    assert response.json()["detail"]["type"] == "overloaded_error"


def test_error_event_mid_stream_ends_the_sample_and_keeps_the_partial_output(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(pieces=fixture_pieces("stream_overloaded_midway.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 200
    frames = parse_frames(response.content)
    assert frames[0]["data"][0]["output"] == "Once upon "
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["type"] == "overloaded_error"
    assert last["error"]["origin"] == "Anthropic"
    log = server.get_log(last["data"][0]["id"])
    assert log["output"] == "Once upon"
    assert log["error"] == "Overloaded"
    assert log["provider_response"]["content"] == [{"type": "text", "text": "Once upon "}]


def test_a_stream_cut_short_is_an_error(server: RunningServer, anthropic: FakeAnthropic) -> None:
    pieces = sse_pieces(message({"model": MODEL, "messages": [{"role": "user", "content": "x y"}]}))
    anthropic.enqueue(pieces=pieces[:-2])  # no message_delta, no message_stop
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    last = parse_frames(response.content)[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502


def test_unsupported_parameter_is_a_422_naming_the_provider(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    response = server.post_chat(body(model_config={"presence_penalty": 1}))
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "model_config", "presence_penalty"]
    assert "anthropic" in problem["msg"]
    assert anthropic.requests == []


# --- num_samples > 1: one call per sample, concurrently -----------------------------------------


def test_num_samples_runs_concurrent_calls_with_usage_per_sample(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    anthropic.delay = 0.3
    response = server.post_chat(body(num_samples=2))
    assert response.status_code == 200, response.text
    assert len(anthropic.requests) == 2 and anthropic.max_in_flight == 2
    assert all("n" not in r.body for r in anthropic.requests)
    result = response.json()
    assert [d["index"] for d in result["data"]] == [0, 1]
    assert {d["output"] for d in result["data"]} == {"Echo: tell me a story"}
    assert len(result["provider_responses"]) == 2
    assert {r["id"] for r in result["provider_responses"]} == {"msg_fake_1", "msg_fake_2"}
    # each sample's log carries its own call's usage; the call's usage is their sum
    logs = [server.get_log(d["id"]) for d in result["data"]]
    assert [(log["prompt_tokens"], log["output_tokens"]) for log in logs] == [(4, 5), (4, 5)]
    assert result["usage"] == {
        "prompt_tokens": 8,
        "generation_tokens": 10,
        "total_tokens": 18,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }


def test_num_samples_streamed_interleaves_both_samples(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True, num_samples=2))
    assert response.status_code == 200, response.text
    frames = parse_frames(response.content)
    for index in (0, 1):
        mine = [f["data"][0] for f in frames if f["data"][0]["index"] == index]
        assert "".join(d["output"] for d in mine) == "Echo: tell me a story"
        assert mine[-1]["finish_reason"] == "stop"
        assert server.get_log(mine[-1]["id"])["output_tokens"] == 5


def test_one_sample_failing_before_content_fails_the_call(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    for _ in range(6):  # each sample's call is retried twice before it fails
        anthropic.enqueue(429, error_body("rate_limit_error", "slow down"))
    response = server.post_chat(body(num_samples=2))
    assert response.status_code == 429
    assert response.json()["detail"]["type"] == "rate_limit_error"


# --- the published SDK ---------------------------------------------------------------------------


def test_humanloop_sdk_0_7_35_chats_with_anthropic(
    server: RunningServer, anthropic: FakeAnthropic
) -> None:
    from humanloop import Humanloop

    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="sdk-claude",
        model_config={
            "provider": "anthropic",
            "model": "claude-3-5-haiku-20241022",
            "max_tokens": 100,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Ahoy there"}],
    )
    assert anthropic.last.body == {
        "model": "claude-3-5-haiku-20241022",
        "system": "You are a pirate.",
        "messages": [{"role": "user", "content": "Ahoy there"}],
        "max_tokens": 100,
    }
    assert response.data[0].output == "Echo: Ahoy there"
    assert response.data[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 6

    async def stream() -> list[dict[str, Any]]:
        streamed = await hl.chat_stream(
            project="sdk-claude",
            model_config={"provider": "anthropic", "model": "claude-3-5-haiku-20241022"},
            messages=[{"role": "user", "content": "stream this"}],
        )
        return [chunk async for chunk in streamed.content]

    chunks = asyncio.run(stream())
    assert [c["output"] for c in chunks] == ["Echo: ", "stream ", "this", ""]
    assert chunks[-1]["finish_reason"] == "stop"


def test_base_url_comes_only_from_the_environment(anthropic: FakeAnthropic) -> None:
    from chatgate.providers import build_registry

    registry = build_registry({}, {"ANTHROPIC_BASE_URL": "http://proxy.internal:8080/"})
    assert registry["anthropic"].base_url == "http://proxy.internal:8080/"
    call = ChatCall(ModelConfig(provider="anthropic", model=MODEL), (USER,), api_key="k")
    call.base_url = registry["anthropic"].base_url
    upstream = AnthropicMessagesWire().prepare(call, registry["anthropic"])
    assert upstream.url == "http://proxy.internal:8080/v1/messages"
    assert httpx.URL(upstream.url).host == "proxy.internal"
