"""The Google Gemini wire through a real uvicorn server, against a fake Gemini speaking its wire.

Requests are asserted exactly as Gemini receives them; replies come from the fake's defaults or
from transcripts in tests/fixtures/gemini/ written from Google's public API reference.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from humanloop import Humanloop  # type: ignore[import-untyped]

from tests.api.test_streaming import parse_frames
from tests.conftest import RunningServer, UvicornThread, start_server
from tests.fakes.gemini_server import FakeGemini, error_body
from tests.providers._transcripts import read_json

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
GEMINI_KEY = "AIzaSy-env-gemini-key-0123456789"
USER = [{"role": "user", "content": "hello there"}]


fixture = functools.partial(read_json, FIXTURES)


def fixture_pieces(name: str) -> list[bytes]:
    return [
        block + b"\r\n\r\n" for block in (FIXTURES / name).read_bytes().split(b"\r\n\r\n") if block
    ]


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini(gemini_fake: FakeGemini) -> FakeGemini:
    gemini_fake.reset()
    return gemini_fake


def _start(tmp_path: Path, vendor_env: dict[str, str]) -> tuple[UvicornThread, RunningServer]:
    return start_server(tmp_path, "", vendor_env=vendor_env)


@pytest.fixture
def server(tmp_path: Path, gemini: FakeGemini) -> Iterator[RunningServer]:
    env = {"GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": GEMINI_KEY}
    runner, running = _start(tmp_path, env)
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "google", "model": "gemini-2.0-flash", **overrides.pop("config", {})}
    return {"project": "gemini", "model_config": config, "messages": USER, **overrides}


def chat(server: RunningServer, payload: dict[str, Any]) -> dict[str, Any]:
    response = server.post_chat(payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stream(server: RunningServer, payload: dict[str, Any]) -> list[dict[str, Any]]:
    response = server.post_chat({**payload, "stream": True})
    assert response.status_code == 200, response.text
    return parse_frames(response.content)[0]


TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {"name": "get_time"},
]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


# --- the exact provider request -------------------------------------------------------------


def test_text_chat_request_and_response(server: RunningServer, gemini: FakeGemini) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "hello there"},
    ]
    result = chat(server, body(messages=messages))
    sent = gemini.last
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.query == {}
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    # v4 defaults (temperature 1, top_p 1, penalties 0, max_tokens -1) are not asked for.
    assert sent.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
            {"role": "model", "parts": [{"text": "an answer"}]},
            {"role": "user", "parts": [{"text": "hello there"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
    data = result["data"][0]
    assert data["output"] == "Echo: hello there"
    assert data["finish_reason"] == "stop"
    assert data["output_message"]["role"] == "assistant"
    assert result["usage"] == {"prompt_tokens": 8, "generation_tokens": 3, "total_tokens": 11}
    assert result["provider_request"] == sent.body
    assert GEMINI_KEY not in json.dumps(result)
    log = server.get_log(data["id"])
    assert log["provider_request"] == sent.body
    assert log["provider_response"]["responseId"] == "fakeResp01"


def test_generation_settings(server: RunningServer, gemini: FakeGemini) -> None:
    config = {
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 256,
        "stop": ["END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "other": {
            "safetySettings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}
            ],
            "generationConfig": {"topK": 40, "temperature": 2.0, "candidateCount": 3},
        },
    }
    chat(server, body(config=config))
    assert gemini.last.body["generationConfig"] == {
        "topK": 40,
        "temperature": 0.3,
        "topP": 0.8,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
    }
    assert gemini.last.body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    chat(server, body(config={"stop": "STOP"}))
    assert gemini.last.body["generationConfig"] == {"stopSequences": ["STOP"]}


def test_json_mode_and_schema(server: RunningServer, gemini: FakeGemini) -> None:
    chat(server, body(response_format={"type": "json_object"}))
    assert gemini.last.body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat(
        server,
        body(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        ),
    )
    assert gemini.last.body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


def test_images_base64_sent_inline_and_urls_refused(
    server: RunningServer, gemini: FakeGemini
) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    chat(server, body(messages=[{"role": "user", "content": content}]))
    assert gemini.last.body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "what is this"},
                {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
            ],
        }
    ]
    before = len(gemini.requests)
    url = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    response = server.post_chat(body(messages=[{"role": "user", "content": url}]))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "messages", 0, "content", 0]
    assert "google" in problem["msg"] and "base64" in problem["msg"]
    assert len(gemini.requests) == before  # nothing was fetched or sent


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
def test_tools_and_tool_choice(
    server: RunningServer, gemini: FakeGemini, choice: Any, expected: dict[str, Any]
) -> None:
    result = chat(server, body(config={"tools": TOOLS}, tool_choice=choice))
    assert gemini.last.body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": TOOLS[0]["parameters"],
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert gemini.last.body["toolConfig"] == {"functionCallingConfig": expected}
    data = result["data"][0]
    if expected["mode"] == "ANY":
        name = expected.get("allowedFunctionNames", ["get_weather"])[0]
        assert data["finish_reason"] == "tool_call"
        assert data["output_message"]["content"] is None
        assert data["output_message"]["tool_calls"] == [
            {
                "id": "call_fakeResp01_0_0",
                "type": "function",
                "function": {"name": name, "arguments": '{"q":"hello there"}'},
            }
        ]
    else:
        assert data["finish_reason"] == "stop"


def test_tool_calls_and_results_round_trip(server: RunningServer, gemini: FakeGemini) -> None:
    messages = [
        {"role": "user", "content": "weather and time in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
    ]
    chat(server, body(config={"tools": TOOLS}, messages=messages))
    assert gemini.last.body["contents"] == [
        {"role": "user", "parts": [{"text": "weather and time in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
            ],
        },
    ]


def test_function_call_transcript(server: RunningServer, gemini: FakeGemini) -> None:
    gemini.enqueue(json_body=fixture("function_call_response.json"))
    result = chat(server, body(config={"tools": TOOLS}))
    data = result["data"][0]
    assert data["finish_reason"] == "tool_call"
    assert [c["function"] for c in data["output_message"]["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
        {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
    ]
    assert [c["id"] for c in data["output_message"]["tool_calls"]] == [
        "call_fcResp42_0_0",
        "call_fcResp42_0_1",
    ]
    assert result["provider_responses"] == [fixture("function_call_response.json")]


@pytest.mark.parametrize(
    ("model", "effort", "thinking_config"),
    [
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash", 2000, {"thinkingBudget": 2000, "includeThoughts": True}),
        ("gemini-2.5-flash", 0, {"thinkingBudget": 0}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium", "includeThoughts": True}),
    ],
)
def test_reasoning_effort(
    server: RunningServer, gemini: FakeGemini, model: str, effort: Any, thinking_config: Any
) -> None:
    chat(server, body(config={"model": model, "reasoning_effort": effort}))
    assert gemini.last.body["generationConfig"] == {"thinkingConfig": thinking_config}


def test_thinking_transcript_streamed_and_not_log_the_same(
    server: RunningServer, gemini: FakeGemini
) -> None:
    gemini.enqueue(json_body=fixture("thinking_response.json"))
    payload = body(config={"model": "gemini-2.5-flash", "reasoning_effort": "medium"})
    plain = chat(server, payload)
    gemini.enqueue(pieces=fixture_pieces("thinking_stream.sse"))
    frames = stream(server, payload)
    assert gemini.last.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert gemini.last.query == {"alt": "sse"}
    assert [f["data"][0]["output"] for f in frames[:-1]] == ["17 × 23 ", "= 391."]  # noqa: RUF001
    thinking = [
        {
            "type": "thinking",
            "thinking": "**Weighing the numbers**\n\nThe user wants 17 * 23; 17 * 20 = 340, plus 51.",
            "signature": None,
        }
    ]
    usage = {
        "prompt_tokens": 9,
        "generation_tokens": 131,
        "total_tokens": 140,
        "reasoning_tokens": 123,
    }
    assert plain["data"][0]["output_message"]["thinking"] == thinking
    assert plain["usage"] == usage and frames[-1]["usage"] == usage
    logs = [server.get_log(plain["data"][0]["id"]), server.get_log(frames[0]["data"][0]["id"])]
    keys = ("output", "output_message", "finish_reason", "provider_request", "provider_response")
    for key in keys:
        if key == "provider_request":
            continue  # the same body; only the URL (not logged) differs
        assert logs[0][key] == logs[1][key], key
    assert logs[1]["provider_response"] == fixture("thinking_response.json")
    assert logs[0]["provider_request"] == logs[1]["provider_request"]


def test_cached_prompt_and_thoughts_are_logged_and_priced_streamed_and_not(
    server: RunningServer, gemini: FakeGemini
) -> None:
    gemini.enqueue(json_body=fixture("cached_prompt_response.json"))
    payload = body(config={"model": "gemini-2.5-flash"})
    plain = chat(server, payload)
    gemini.enqueue(pieces=fixture_pieces("cached_prompt_stream.sse"))
    frames = stream(server, payload)
    # 2048 of the 2110 prompt tokens came from the cache; 61 thoughts and 8 answer tokens
    usage = {
        "prompt_tokens": 2110,
        "generation_tokens": 69,
        "total_tokens": 2179,
        "reasoning_tokens": 61,
        "cache_read_tokens": 2048,
    }
    assert plain["usage"] == usage and frames[-1]["usage"] == usage
    # gemini-2.5-flash per 1M tokens: input 0.30, cached input 0.03, output (thinking incl.) 2.50
    costs = {
        "prompt_cost": pytest.approx((62 * 0.3 + 2048 * 0.03) / 1e6),
        "output_cost": pytest.approx(69 * 2.5 / 1e6),
    }
    for log in (
        server.get_log(plain["data"][0]["id"]),
        server.get_log(frames[0]["data"][0]["id"]),
    ):
        assert (log["prompt_tokens"], log["output_tokens"], log["reasoning_tokens"]) == (
            2110,
            69,
            61,
        )
        assert (log["cache_read_tokens"], log["cache_write_tokens"]) == (2048, None)
        assert {k: log[k] for k in costs} == costs


def test_default_stream_matches_non_streamed(server: RunningServer, gemini: FakeGemini) -> None:
    payload = body(config={"model": "gemini-2.5-flash", "reasoning_effort": "low"})
    plain = chat(server, payload)
    frames = stream(server, payload)
    assert [f["data"][0]["output"] for f in frames[:-1]] == ["Echo: ", "hello ", "there"]
    assert frames[-1]["data"][0]["finish_reason"] == "stop"
    assert frames[-1]["provider_responses"] == plain["provider_responses"]
    assert frames[-1]["usage"] == plain["usage"]
    streamed_log = server.get_log(frames[0]["data"][0]["id"])
    assert (
        streamed_log["output_message"] == server.get_log(plain["data"][0]["id"])["output_message"]
    )


def test_finish_reasons(server: RunningServer, gemini: FakeGemini) -> None:
    gemini.enqueue(json_body=fixture("max_tokens_response.json"))
    assert chat(server, body())["data"][0]["finish_reason"] == "length"
    gemini.enqueue(json_body=fixture("blocked_prompt.json"))
    result = chat(server, body())
    assert result["data"][0]["finish_reason"] == "content_filter"
    assert result["data"][0]["output"] == ""
    assert result["usage"]["prompt_tokens"] == 11
    gemini.enqueue(json_body=fixture("text_response.json"))
    result = chat(server, body())
    assert result["data"][0]["output"] == "Paris is the capital of France."
    assert result["usage"] == {
        "prompt_tokens": 12,
        "generation_tokens": 7,
        "total_tokens": 19,
        "cache_read_tokens": 4,  # cachedContentTokenCount, a part of promptTokenCount
    }


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [("error_400.json", 400, "invalid_request_error"), ("error_429.json", 429, "rate_limit_error")],
)
def test_provider_error_is_the_v4_error(
    server: RunningServer, gemini: FakeGemini, name: str, status: int, kind: str
) -> None:
    for streamed in (False, True):
        for _ in range(3 if status == 429 else 1):  # a 429 is retried twice before it is final
            gemini.enqueue(status, fixture(name))
        response = server.post_chat({**body(), "stream": streamed})
        assert response.status_code == status
        assert response.json() == {
            "detail": {
                "type": kind,
                "message": fixture(name)["error"]["message"],
                "code": status,
                "origin": "Google",
            }
        }


def test_missing_key_is_permission_denied_from_google(
    server: RunningServer, gemini: FakeGemini
) -> None:
    gemini.enqueue(403, error_body(403, "API key not valid.", "PERMISSION_DENIED"))
    response = server.post_chat(body(provider_api_keys={"google": "bad-key"}))
    assert gemini.last.headers["x-goog-api-key"] == "bad-key"
    assert response.status_code == 403
    assert response.json()["detail"]["type"] == "permission_error"


def test_error_mid_stream(server: RunningServer, gemini: FakeGemini) -> None:
    gemini.enqueue(pieces=fixture_pieces("stream_error.sse"))
    frames = stream(server, body())
    assert frames[0]["data"][0]["output"] == "Once upon a "
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["origin"] == "Google"
    assert last["error"]["type"] == "overloaded_error"
    assert last["error"]["code"] == 503
    assert "overloaded" in last["error"]["message"]
    log = server.get_log(frames[0]["data"][0]["id"])
    assert log["output"] == "Once upon a"
    assert "overloaded" in log["error"]


def test_error_chunk_before_content_is_a_plain_error(
    server: RunningServer, gemini: FakeGemini
) -> None:
    gemini.enqueue(pieces=fixture_pieces("stream_error.sse")[1:])
    response = server.post_chat({**body(), "stream": True})
    assert response.status_code == 503
    assert response.json()["detail"]["origin"] == "Google"
    assert response.json()["detail"]["type"] == "overloaded_error"


def test_refused_parameters(server: RunningServer, gemini: FakeGemini) -> None:
    strict = [{"name": "f", "parameters": {"type": "object"}, "strict": True}]
    response = server.post_chat(body(config={"tools": strict}))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "model_config", "tools", 0, "strict"]
    named = [{"role": "user", "content": "hi", "name": "bob"}]
    response = server.post_chat(body(messages=named))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messages", 0, "name"]
    # Gemini 3 Pro has thinking levels low and high only: medium is not moved to either.
    medium = body(config={"model": "gemini-3-pro-preview", "reasoning_effort": "medium"})
    response = server.post_chat(medium)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "model_config", "reasoning_effort"]
    assert "google" in problem["msg"] and "low or high" in problem["msg"]
    assert gemini.requests == []


# --- several samples ------------------------------------------------------------------------


def test_num_samples_native_candidate_count(server: RunningServer, gemini: FakeGemini) -> None:
    plain = chat(server, body(num_samples=2))
    assert gemini.last.body["generationConfig"] == {"candidateCount": 2}
    assert [d["output"] for d in plain["data"]] == ["Echo: hello there", "Echo: hello there #1"]
    frames = stream(server, body(num_samples=2))
    assert len(gemini.requests) == 2
    outputs: dict[int, str] = {}
    for frame in frames:
        for item in frame["data"]:
            outputs[item["index"]] = outputs.get(item["index"], "") + item["output"]
    assert outputs == {0: "Echo: hello there", 1: "Echo: hello there #1"}


def test_num_samples_concurrent_calls(server: RunningServer, gemini: FakeGemini) -> None:
    payload = body(config={"model": "gemini-3-pro-preview"}, num_samples=2)
    plain = chat(server, payload)
    assert len(gemini.requests) == 2
    assert all("generationConfig" not in r.body for r in gemini.requests)
    assert [d["output"] for d in plain["data"]] == ["Echo: hello there", "Echo: hello there"]
    assert len(plain["provider_responses"]) == 2
    usages = [server.get_log(d["id"]) for d in plain["data"]]
    assert [(u["prompt_tokens"], u["output_tokens"]) for u in usages] == [(2, 3), (2, 3)]
    assert plain["usage"]["total_tokens"] == 10
    frames = stream(server, payload)
    assert len(gemini.requests) == 4
    outputs: dict[int, str] = {}
    for frame in frames:
        for item in frame["data"]:
            outputs[item["index"]] = outputs.get(item["index"], "") + item["output"]
    assert outputs == {0: "Echo: hello there", 1: "Echo: hello there"}
    # Each sample's final frame carries that sample's own usage.
    finals = [f for f in frames if f["data"][0]["finish_reason"] is not None]
    assert sorted(f["data"][0]["index"] for f in finals) == [0, 1]
    assert [f["usage"]["total_tokens"] for f in finals] == [5, 5]


# --- credentials and configuration ----------------------------------------------------------


def test_google_api_key_variable_is_accepted(tmp_path: Path, gemini: FakeGemini) -> None:
    env = {"GOOGLE_GEMINI_BASE_URL": gemini.url, "GOOGLE_API_KEY": "AIza-google-var"}
    runner, running = _start(tmp_path, env)
    with runner:
        chat(running, body())
    assert gemini.last.headers["x-goog-api-key"] == "AIza-google-var"


def test_humanloop_sdk_drives_gemini(server: RunningServer, gemini: FakeGemini) -> None:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="sdk-gemini",
        model_config={
            "provider": "google",
            "model": "gemini-2.0-flash",
            "max_tokens": 64,
            "temperature": 0.2,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Where is the treasure?"}],
    )
    assert gemini.last.body == {
        "contents": [{"role": "user", "parts": [{"text": "Where is the treasure?"}]}],
        "systemInstruction": {"parts": [{"text": "You are a pirate."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64},
    }
    assert response.data[0].output == "Echo: Where is the treasure?"
    assert response.data[0].finish_reason == "stop"
    assert response.provider_request == gemini.last.body
