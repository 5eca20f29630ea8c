"""The Cohere Chat v2 wire: the exact request built from v4 requests, and the v4 responses, logs
and errors produced from Cohere's replies, through a real chatgate server and a fake Cohere server
speaking the real wire (recorded transcripts in tests/fixtures/cohere)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatgate.domain import ChatCall, Message, ModelConfig, Tool, ToolCall
from chatgate.errors import InvalidRequest
from chatgate.providers import BUILTIN, build_registry
from chatgate.providers.cohere_chat import CohereChatWire
from tests.conftest import RunningServer, start_server
from tests.fakes.cohere_server import FakeCohere, error_body, response, sse_pieces
from tests.providers._transcripts import WEATHER, read_json, read_pieces

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cohere"
ENV_KEY = "co-env-0123456789abcdef"
SPEC = BUILTIN["cohere"]
MODEL = "command-a-03-2025"
USER = Message("user", "Hi")


fixture_json = functools.partial(read_json, FIXTURES)


fixture_pieces = functools.partial(read_pieces, FIXTURES, size=41)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_cohere_server() -> Iterator[FakeCohere]:
    fake = FakeCohere().start()
    yield fake
    fake.stop()


@pytest.fixture
def cohere(fake_cohere_server: FakeCohere) -> FakeCohere:
    fake_cohere_server.reset()
    return fake_cohere_server


@pytest.fixture
def server(tmp_path: Path, cohere: FakeCohere) -> Iterator[RunningServer]:
    runner, running = start_server(
        tmp_path,
        "",
        vendor_env={"CO_API_URL": cohere.url, "CO_API_KEY": ENV_KEY},
        provider_max_retries=0,  # each scripted error answers exactly one call
    )
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "cohere", "model": MODEL, **overrides.pop("model_config", {})}
    return {
        "project": "command",
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
    config = ModelConfig(provider="cohere", model=kwargs.pop("model", MODEL), **config_fields)
    call = ChatCall(config=config, messages=messages, api_key="co-secret", **kwargs)
    upstream = CohereChatWire().prepare(call, SPEC)
    assert upstream.url == "https://api.cohere.com/v2/chat"
    assert upstream.headers == {"Authorization": "Bearer co-secret"}
    assert "co-secret" not in json.dumps(upstream.body)
    return upstream.body


def refusal(*messages: Message, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(InvalidRequest) as caught:
        prepare(*messages, **kwargs)
    (problem,) = caught.value.problems
    assert "cohere" in problem.msg
    return {"loc": list(problem.loc), "msg": problem.msg, "type": problem.type}


# --- the provider request -----------------------------------------------------------------------


def test_system_turns_images_tool_calls_and_results_become_one_v2_request() -> None:
    sent = prepare(
        Message("system", "You are terse."),
        Message(
            "user",
            [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"},
                },
            ],
        ),
        Message("assistant", "Two cats."),
        Message("user", "And the weather in Paris?"),
        Message(
            "assistant",
            "I will check the weather.",
            tool_calls=(ToolCall("call_1", "get_weather", '{"location": "Paris"}'),),
        ),
        Message("tool", '{"temp": 21}', tool_call_id="call_1", name="get_weather"),
        tools=(WEATHER,),
        tool_choice="required",
        stop="END",
        temperature=0.5,
        top_p=0.9,
        max_tokens=300,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        other={"k": 40, "max_tokens": 1, "safety_mode": "STRICT", "stream": True},
    )
    assert sent == {
        "k": 40,
        "safety_mode": "STRICT",
        "max_tokens": 300,
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"},
                    },
                ],
            },
            {"role": "assistant", "content": "Two cats."},
            {"role": "user", "content": "And the weather in Paris?"},
            {
                "role": "assistant",
                "tool_plan": "I will check the weather.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                    },
                },
            }
        ],
        "tool_choice": "REQUIRED",
        "temperature": 0.5,
        "p": 0.9,
        "stop_sequences": ["END"],
        "seed": 7,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.1,
        "stream": False,
    }


def test_v4_defaults_send_temperature_and_leave_out_the_rest() -> None:
    # max_tokens -1 sends none; top_p 1 is not sendable as `p` (at most 0.99): left out.
    sent = prepare(Message("system", "Be brief."), USER, stream=True)
    assert sent == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "temperature": 1.0,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("none", "NONE"), ("required", "REQUIRED"), ("auto", None)],
)
def test_tool_choice_variants(choice: str, expected: str | None) -> None:
    assert prepare(USER, tools=(WEATHER,), tool_choice=choice).get("tool_choice") == expected


def test_a_named_tool_choice_is_422() -> None:
    problem = refusal(
        USER, tools=(WEATHER,), tool_choice={"type": "function", "function": {"name": "x"}}
    )
    assert problem["loc"] == ["body", "tool_choice"]
    assert "REQUIRED" in problem["msg"]


def test_tool_choice_is_sent_only_with_tools_and_strict_tools_for_all_or_none() -> None:
    assert "tool_choice" not in prepare(USER, tool_choice="required")
    strict = Tool(name="f", parameters={"type": "object"}, strict=True)
    assert prepare(USER, tools=(strict,))["strict_tools"] is True
    problem = refusal(USER, tools=(strict, Tool(name="g")))
    assert problem["loc"] == ["body", "model_config", "tools", 1, "strict"]
    assert prepare(USER, tools=(Tool(name="ping"),))["tools"] == [
        {
            "type": "function",
            "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
        }
    ]


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}},
            {"type": "json_object", "json_schema": {"type": "object"}},
        ),
        ({"type": "text"}, None),
    ],
)
def test_json_mode(response_format: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert prepare(USER, response_format=response_format).get("response_format") == expected


def test_request_level_response_format_wins() -> None:
    config = ModelConfig(provider="cohere", model=MODEL, response_format={"type": "text"})
    call = ChatCall(config, (USER,), response_format={"type": "json_object"})
    assert CohereChatWire().prepare(call, SPEC).body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        (2000, {"type": "enabled", "token_budget": 2000}),
        (0, {"type": "disabled"}),
        ("low", {"type": "enabled", "token_budget": 1024}),
        ("high", {"type": "enabled", "token_budget": 16384}),
    ],
)
def test_reasoning_effort_is_the_thinking_budget(effort: str | int, thinking: Any) -> None:
    assert prepare(USER, reasoning_effort=effort)["thinking"] == thinking


def test_thinking_goes_back_as_content_items() -> None:
    assistant = Message(
        "assistant",
        "Done.",
        thinking=(
            {"type": "thinking", "thinking": "Let me see.", "signature": None},
            {"type": "redacted_thinking", "data": "opaque"},
        ),
    )
    assert prepare(USER, assistant)["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me see."},
            {"type": "text", "text": "Done."},
        ],
    }


def test_messages_cohere_cannot_take_are_422() -> None:
    assert refusal(Message("user", "Hi", name="bob"))["loc"] == ["body", "messages", 0, "name"]
    bad_image = Message("user", [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])
    assert refusal(bad_image)["loc"] == ["body", "messages", 0, "content", 0, "image_url", "url"]
    system_image = Message("system", [{"type": "image_url", "image_url": {"url": "https://x"}}])
    assert refusal(system_image)["loc"] == ["body", "messages", 0, "content", 0]
    assert refusal(USER, Message("tool", "x"))["loc"] == ["body", "messages", 1, "tool_call_id"]


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
    "provider_response",
    "messages",
    "error",
)

TOOL_CALLS = [
    {
        "id": "get_weather_7n4x0r2kq1vd",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Madrid"}'},
    },
    {
        "id": "get_weather_3bq8m5zt9w0e",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Brasilia"}'},
    },
]


def test_non_streamed_tool_calls_with_a_tool_plan(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(json_body=fixture_json("response_tool_call.json"))
    response = server.post_chat(
        body(
            messages=[{"role": "user", "content": "Weather in Madrid and Brasilia?"}],
            model_config={"tools": [{"name": "get_weather", "parameters": {"type": "object"}}]},
            tool_choice="required",
        )
    )
    assert response.status_code == 200, response.text
    recorded = cohere.last
    assert recorded.path == "/v2/chat"
    assert recorded.headers["Authorization"] == f"Bearer {ENV_KEY}"
    assert recorded.body["tool_choice"] == "REQUIRED"
    result = response.json()
    assert result["provider_request"] == recorded.body
    data = result["data"][0]
    assert data["output"] == "I will look up the weather in Madrid and Brasilia."
    assert data["finish_reason"] == "tool_call"
    assert data["output_message"]["tool_calls"] == TOOL_CALLS
    # `tokens` (what the model read, Cohere's preamble included), not `billed_units`
    assert result["usage"] == {"prompt_tokens": 1152, "generation_tokens": 71, "total_tokens": 1223}
    assert result["provider_responses"] == [fixture_json("response_tool_call.json")]
    log = server.get_log(data["id"])
    assert log["provider_response"] == fixture_json("response_tool_call.json")
    assert (log["prompt_tokens"], log["output_tokens"]) == (1152, 71)


def test_tool_calls_and_results_go_back_on_the_next_turn(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(json_body=fixture_json("response_tool_call.json"))
    reply = server.post_chat(body()).json()["data"][0]["output_message"]
    turn = {k: v for k, v in reply.items() if k != "tool_call"}
    response = server.post_chat(
        body(
            messages=[
                {"role": "user", "content": "tell me a story"},
                turn,
                {"role": "tool", "content": "21C", "tool_call_id": "get_weather_7n4x0r2kq1vd"},
                {"role": "tool", "content": "30C", "tool_call_id": "get_weather_3bq8m5zt9w0e"},
            ]
        )
    )
    assert response.status_code == 200, response.text
    assert cohere.last.body["messages"][1:] == [
        {
            "role": "assistant",
            "tool_plan": "I will look up the weather in Madrid and Brasilia.",
            "tool_calls": TOOL_CALLS,
        },
        {"role": "tool", "tool_call_id": "get_weather_7n4x0r2kq1vd", "content": "21C"},
        {"role": "tool", "tool_call_id": "get_weather_3bq8m5zt9w0e", "content": "30C"},
    ]


@pytest.mark.parametrize(
    ("recorded", "stream"),
    [
        ("response_tool_call.json", "stream_tool_call.sse"),
        ("response_thinking.json", "stream_thinking.sse"),
    ],
)
def test_streamed_log_equals_the_non_streamed_log(
    server: RunningServer, cohere: FakeCohere, recorded: str, stream: str
) -> None:
    cohere.enqueue(json_body=fixture_json(recorded))
    plain = server.post_chat(body()).json()
    cohere.enqueue(pieces=fixture_pieces(stream))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 200, streamed.text
    last = parse_frames(streamed.content)[-1]
    assert last["provider_responses"] == [fixture_json(recorded)]  # the reassembled response
    assert last["usage"] == plain["usage"]
    assert last["provider_request"]["stream"] is True
    assert plain["provider_request"]["stream"] is False
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(last["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key


def test_thinking_becomes_output_message_thinking(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(pieces=fixture_pieces("stream_thinking.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True, reasoning_effort=4000))
    frames = parse_frames(response.content)
    assert [f["data"][0]["output"] for f in frames] == [
        "Soft rain on the roof,",
        "\nthe gutters hum",
        " a low song",
        "",
    ]
    assert cohere.last.body["thinking"] == {"type": "enabled", "token_budget": 4000}
    log = server.get_log(frames[-1]["data"][0]["id"])
    assert log["finish_reason"] == "length"
    assert log["output_message"]["thinking"] == [
        {
            "type": "thinking",
            "thinking": "The user wants a haiku about rain. Five, seven, five.",
            "signature": None,
        }
    ]
    assert (log["prompt_tokens"], log["output_tokens"]) == (517, 48)


def test_default_replies_streamed_and_not_store_the_same_log(
    server: RunningServer, cohere: FakeCohere
) -> None:
    plain = server.post_chat(body(reasoning_effort="low")).json()
    cohere.reset()
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True, reasoning_effort="low"))
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames] == ["Echo: ", "tell ", "me ", "a ", "story", ""]
    assert plain["data"][0]["output"] == "Echo: tell me a story"
    assert plain["data"][0]["finish_reason"] == "stop"
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(frames[-1]["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key


def test_provider_error_keeps_status_and_origin_with_a_type_by_status(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(400, fixture_json("error_invalid_request.json"))
    response = server.post_chat(body())
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "type": "invalid_request_error",
            "message": fixture_json("error_invalid_request.json")["message"],
            "code": 400,
            "origin": "Cohere",
        }
    }
    cohere.enqueue(429, fixture_json("error_rate_limit.json"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 429
    assert streamed.json()["detail"]["type"] == "rate_limit_error"
    assert streamed.json()["detail"]["origin"] == "Cohere"


def test_request_key_wins_and_goes_only_in_the_header(
    server: RunningServer, cohere: FakeCohere
) -> None:
    response = server.post_chat(body(provider_api_keys={"cohere": "co-request-key"}))
    assert response.status_code == 200
    assert cohere.last.headers["Authorization"] == "Bearer co-request-key"
    assert "co-request-key" not in json.dumps(response.json())
    cohere.enqueue(401, error_body("invalid api token"))
    response = server.post_chat(body())
    assert response.status_code == 401
    assert response.json()["detail"]["type"] == "authentication_error"


def test_error_mid_stream_ends_the_sample_and_keeps_the_partial_output(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(pieces=fixture_pieces("stream_error_midway.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 200
    frames = parse_frames(response.content)
    assert frames[0]["data"][0]["output"] == "Once"
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["type"] == "api_error"
    assert last["error"]["origin"] == "Cohere"
    log = server.get_log(last["data"][0]["id"])
    assert log["output"] == "Once upon"
    assert log["error"] == "internal server error, please try again later"
    assert log["provider_response"]["finish_reason"] == "ERROR"
    assert log["provider_response"]["message"]["content"] == [{"type": "text", "text": "Once upon"}]


def test_failure_before_content_is_a_plain_error(server: RunningServer, cohere: FakeCohere) -> None:
    cohere.enqueue(pieces=fixture_pieces("stream_timeout_at_start.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 504
    assert response.json()["detail"] == {
        "type": "timeout_error",
        "message": "generation timed out",
        "code": 504,
        "origin": "Cohere",
    }


def test_a_stream_cut_short_is_an_error(server: RunningServer, cohere: FakeCohere) -> None:
    full = response({"messages": [{"role": "user", "content": "x y"}]})
    cohere.enqueue(pieces=sse_pieces(full)[:-1])  # no message-end
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    last = parse_frames(streamed.content)[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502


def test_unsupported_parameter_is_a_422_before_any_call(
    server: RunningServer, cohere: FakeCohere
) -> None:
    response = server.post_chat(
        body(
            model_config={"tools": [{"name": "f", "parameters": {"type": "object"}}]},
            tool_choice={"type": "function", "function": {"name": "f"}},
        )
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "tool_choice"]
    assert "cohere" in problem["msg"]
    assert cohere.requests == []


# --- num_samples > 1: one call per sample, concurrently -----------------------------------------


def test_num_samples_runs_concurrent_calls_with_usage_per_sample(
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.delay = 0.3
    response = server.post_chat(body(num_samples=2))
    assert response.status_code == 200, response.text
    assert len(cohere.requests) == 2 and cohere.max_in_flight == 2
    assert cohere.requests[0].body == cohere.requests[1].body
    result = response.json()
    assert [d["index"] for d in result["data"]] == [0, 1]
    assert {d["output"] for d in result["data"]} == {"Echo: tell me a story"}
    assert {r["id"] for r in result["provider_responses"]} == {"fake-1", "fake-2"}
    logs = [server.get_log(d["id"]) for d in result["data"]]
    assert [(log["prompt_tokens"], log["output_tokens"]) for log in logs] == [(4, 5), (4, 5)]
    assert result["usage"] == {"prompt_tokens": 8, "generation_tokens": 10, "total_tokens": 18}


def test_num_samples_streamed_interleaves_both_samples(
    server: RunningServer, cohere: FakeCohere
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
    server: RunningServer, cohere: FakeCohere
) -> None:
    cohere.enqueue(429, error_body("too many requests"))
    response = server.post_chat(body(num_samples=2))
    assert response.status_code == 429
    assert response.json()["detail"]["type"] == "rate_limit_error"


# --- the published SDK ---------------------------------------------------------------------------


def test_humanloop_sdk_0_7_35_chats_with_cohere(server: RunningServer, cohere: FakeCohere) -> None:
    from humanloop import Humanloop

    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="sdk-command",
        model_config={
            "provider": "cohere",
            "model": "command-r-plus",
            "max_tokens": 100,
            "temperature": 0.3,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Ahoy there"}],
    )
    assert cohere.last.body == {
        "model": "command-r-plus",
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Ahoy there"},
        ],
        "max_tokens": 100,
        "temperature": 0.3,
        "stream": False,
    }
    assert response.data[0].output == "Echo: Ahoy there"
    assert response.data[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 6

    async def stream() -> list[dict[str, Any]]:
        streamed = await hl.chat_stream(
            project="sdk-command",
            model_config={"provider": "cohere", "model": "command-r-plus"},
            messages=[{"role": "user", "content": "stream this"}],
        )
        return [chunk async for chunk in streamed.content]

    chunks = asyncio.run(stream())
    assert [c["output"] for c in chunks] == ["Echo: ", "stream ", "this", ""]
    assert chunks[-1]["finish_reason"] == "stop"


def test_base_url_and_key_come_only_from_the_environment() -> None:
    registry = build_registry({}, {"CO_API_URL": "http://cohere.internal:8080/"})
    assert registry["cohere"].base_url == "http://cohere.internal:8080/"
    assert registry["cohere"].key_env == "CO_API_KEY"
    call = ChatCall(ModelConfig(provider="cohere", model=MODEL), (USER,), api_key="k")
    call.base_url = registry["cohere"].base_url
    upstream = CohereChatWire().prepare(call, registry["cohere"])
    assert upstream.url == "http://cohere.internal:8080/v2/chat"
