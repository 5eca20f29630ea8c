"""The Bedrock Converse wire: the exact request (and signature) built from v4 requests, and the v4
responses, logs and errors produced from Bedrock's replies, through a real chatgate server and a
fake Bedrock Runtime that checks SigV4 signatures and speaks the binary event stream (recorded
transcripts in tests/fixtures/bedrock)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatgate.domain import ChatCall, Message, ModelConfig, Tool, ToolCall
from chatgate.errors import BadRequest, InvalidRequest
from chatgate.providers import build_registry
from chatgate.providers.bedrock_converse import BedrockConverseWire, BedrockSpec
from tests.conftest import RunningServer, start_server
from tests.fakes.bedrock_server import (
    ACCESS_KEY,
    API_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    FakeBedrock,
    event,
    exception,
    response,
    stream_pieces,
)
from tests.providers._transcripts import WEATHER, cut, read_json

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bedrock"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SPEC = build_registry({}, {"AWS_REGION": "eu-west-1"})["bedrock"]
CLOCK = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


fixture_json = functools.partial(read_json, FIXTURES)


def transcript(name: str, size: int = 29) -> list[bytes]:
    """A recorded stream, framed as Bedrock sends it and cut into arbitrary pieces."""
    raw = b"".join(
        exception(item["exception"], item["message"])
        if "exception" in item
        else event(item["event"], item["data"])
        for item in fixture_json(name)
    )
    return cut(raw, size)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_bedrock_server() -> Iterator[FakeBedrock]:
    fake = FakeBedrock().start()
    yield fake
    fake.stop()


@pytest.fixture
def bedrock(fake_bedrock_server: FakeBedrock) -> FakeBedrock:
    fake_bedrock_server.reset()
    return fake_bedrock_server


@pytest.fixture
def server(tmp_path: Path, bedrock: FakeBedrock) -> Iterator[RunningServer]:
    runner, running = start_server(
        tmp_path,
        "",
        vendor_env={
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url,
            "AWS_REGION": "eu-central-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
        },
    )
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "bedrock", "model": MODEL, **overrides.pop("model_config", {})}
    return {
        "project": "bedrock",
        "model_config": config,
        "messages": [{"role": "user", "content": "tell me a story"}],
        **overrides,
    }


IAM_KEY = f"{ACCESS_KEY}:{SECRET_KEY}"


def prepare(*messages: Message, **kwargs: Any) -> dict[str, Any]:
    config_fields = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ModelConfig.__dataclass_fields__ and k not in ("provider", "model")
    }
    config = ModelConfig(provider="bedrock", model=kwargs.pop("model", MODEL), **config_fields)
    call = ChatCall(config=config, messages=messages, api_key=IAM_KEY, **kwargs)
    call.base_url = SPEC.base_url
    upstream = BedrockConverseWire(clock=lambda: CLOCK).prepare(call, SPEC)
    assert upstream.url.startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/model/")
    assert SECRET_KEY not in json.dumps(upstream.body)
    return upstream.body


def refusal(*messages: Message, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(InvalidRequest) as caught:
        prepare(*messages, **kwargs)
    (problem,) = caught.value.problems
    assert "'bedrock'" in problem.msg
    return {"loc": list(problem.loc), "msg": problem.msg, "type": problem.type}


USER = Message(role="user", content="Hi")


# --- the request --------------------------------------------------------------------------------


def test_system_turns_images_tools_and_tool_results_become_one_converse_request() -> None:
    sent = prepare(
        Message(role="system", content="Be brief."),
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="user",
            content=[
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        ),
        Message(
            role="assistant",
            content="Checking.",
            tool_calls=(ToolCall("tooluse_1", "get_weather", '{"location": "Paris"}'),),
            thinking=({"type": "thinking", "thinking": "Call the tool.", "signature": "sig=="},),
        ),
        Message(role="tool", content='{"temp": 21}', tool_call_id="tooluse_1"),
        Message(role="tool", content="sunny", tool_call_id="tooluse_2"),
        Message(role="developer", content="Answer in French."),
        tools=(WEATHER,),
        tool_choice="auto",
        stop="END",
        max_tokens=-1,
        temperature=0.3,
        user="user-7",
        other={
            "top_k": 40,
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
        },
    )
    assert sent == {
        "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Weather in Paris?"},
                    {"text": "And this picture?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": "Call the tool.", "signature": "sig=="}
                        }
                    },
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "get_weather",
                            "input": {"location": "Paris"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp": 21}}]}},
                    {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "sunny"}]}},
                ],
            },
        ],
        "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
        "inferenceConfig": {"temperature": 0.3, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Current weather",
                        "inputSchema": {"json": WEATHER.parameters},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
        "additionalModelRequestFields": {"top_k": 40},
        "requestMetadata": {"user": "user-7"},
    }


def test_defaults_send_only_messages() -> None:
    assert prepare(USER) == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    assert prepare(USER, max_tokens=300, top_p=0.9)["inferenceConfig"] == {
        "maxTokens": 300,
        "topP": 0.9,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_variants(choice: Any, expected: dict[str, Any]) -> None:
    assert (
        prepare(USER, tools=(WEATHER,), tool_choice=choice)["toolConfig"]["toolChoice"] == expected
    )


def test_tool_choice_none_leaves_the_tools_out_unless_the_conversation_has_tool_calls() -> None:
    assert "toolConfig" not in prepare(USER, tools=(WEATHER,), tool_choice="none")
    assert "toolChoice" not in prepare(USER, tools=(WEATHER,))["toolConfig"]
    problem = refusal(
        USER,
        Message(role="assistant", tool_calls=(ToolCall("t1", "get_weather", "{}"),)),
        Message(role="tool", content="x", tool_call_id="t1"),
        tools=(WEATHER,),
        tool_choice="none",
    )
    assert problem["loc"] == ["body", "tool_choice"]


@pytest.mark.parametrize(
    ("effort", "max_tokens", "expected_max", "budget"),
    [("low", -1, 64000, 1024), (2000, 4000, 4000, 2000), ("high", 20000, 20000, 16384)],
)
def test_reasoning_effort_is_claudes_thinking_budget(
    effort: Any, max_tokens: int, expected_max: int, budget: int
) -> None:
    sent = prepare(USER, reasoning_effort=effort, max_tokens=max_tokens)
    assert sent["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": budget}
    }
    assert sent["inferenceConfig"] == {"maxTokens": expected_max}


def test_reasoning_effort_for_other_models() -> None:
    sent = prepare(USER, model="openai.gpt-oss-120b-1:0", reasoning_effort="high")
    assert sent["additionalModelRequestFields"] == {"reasoning_effort": "high"}
    problem = refusal(USER, model="meta.llama3-70b-instruct-v1:0", reasoning_effort="low")
    assert problem["loc"] == ["body", "model_config", "reasoning_effort"]
    problem = refusal(USER, reasoning_effort=4000, max_tokens=4000)
    assert problem["loc"] == ["body", "model_config", "max_tokens"]


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"presence_penalty": 0.5}, ["body", "model_config", "presence_penalty"]),
        ({"frequency_penalty": 0.5}, ["body", "model_config", "frequency_penalty"]),
        ({"seed": 7}, ["body", "model_config", "seed"]),
        ({"response_format": {"type": "json_object"}}, ["body", "model_config", "response_format"]),
        ({"tools": (Tool("t", strict=True),)}, ["body", "model_config", "tools", 0, "strict"]),
    ],
)
def test_parameters_bedrock_cannot_honour_are_422(kwargs: dict[str, Any], loc: list[Any]) -> None:
    assert refusal(USER, **kwargs)["loc"] == loc


def test_json_mode_in_the_request_and_http_images_are_422() -> None:
    call = ChatCall(
        ModelConfig(provider="bedrock", model=MODEL),
        (USER,),
        response_format={"type": "json_object"},
        api_key=IAM_KEY,
    )
    with pytest.raises(InvalidRequest) as caught:
        BedrockConverseWire().prepare(call, SPEC)
    assert caught.value.problems[0].loc == ("body", "response_format")
    image = Message(
        role="user",
        content=[{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
    )
    assert refusal(image)["loc"] == ["body", "messages", 0, "content", 0, "image_url", "url"]
    named = Message(role="user", content="x", name="bob")
    assert refusal(named)["loc"] == ["body", "messages", 0, "name"]
    # v4 defaults and a text response_format are not asking for anything
    prepare(USER, response_format={"type": "text"}, temperature=1.0, presence_penalty=0.0)


# --- credentials and signing --------------------------------------------------------------------


def _upstream(api_key: str, stream: bool = False) -> Any:
    call = ChatCall(
        ModelConfig(provider="bedrock", model=MODEL), (USER,), api_key=api_key, stream=stream
    )
    call.base_url = SPEC.base_url
    return BedrockConverseWire(clock=lambda: CLOCK).prepare(call, SPEC)


def test_iam_keys_sign_the_request_with_sigv4() -> None:
    upstream = _upstream(f"{ACCESS_KEY}:{SECRET_KEY}:{SESSION_TOKEN}")
    assert upstream.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    )
    headers = dict(upstream.headers)
    authorization = headers.pop("Authorization")
    assert headers == {
        "Content-Type": "application/json",
        "X-Amz-Date": "20250102T030405Z",
        "X-Amz-Security-Token": SESSION_TOKEN,
    }
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20250102/eu-west-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
    )
    assert SECRET_KEY not in json.dumps(upstream.body) + json.dumps(upstream.headers)
    as_json = json.dumps(
        {
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_session_token": SESSION_TOKEN,
        }
    )
    assert _upstream(as_json).headers == upstream.headers
    streamed = _upstream(IAM_KEY, stream=True)
    assert streamed.url.endswith("/converse-stream")
    assert streamed.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_a_bedrock_api_key_is_a_bearer_token() -> None:
    assert _upstream(API_KEY).headers == {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {API_KEY}",
    }
    with pytest.raises(BadRequest) as caught:
        _upstream('{"aws_access_key_id": "only"}')
    assert "only" not in caught.value.message
    with pytest.raises(BadRequest):
        _upstream("a:b:c:d")


def test_region_and_endpoint_come_only_from_the_environment() -> None:
    spec = build_registry({}, {"AWS_DEFAULT_REGION": "ap-southeast-2"})["bedrock"]
    assert spec.base_url == "https://bedrock-runtime.ap-southeast-2.amazonaws.com"
    spec = build_registry(
        {}, {"AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://proxy:9000"}
    )["bedrock"]
    assert spec.base_url == "http://proxy:9000"
    assert isinstance(spec, BedrockSpec) and spec.region == "us-west-2"
    assert build_registry({}, {})["bedrock"].base_url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com"
    )
    with pytest.raises(ValueError):
        build_registry({}, {"AWS_REGION": "evil.com/x"})


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
WEATHER_V4 = {"name": "get_weather", "parameters": {"type": "object"}}


def test_non_streamed_call_with_reasoning_and_tool_use(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    recorded = fixture_json("converse_reasoning_tool_use.json")
    bedrock.enqueue(json_body=recorded)
    result = server.post_chat(
        body(
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            model_config={"tools": [WEATHER_V4], "max_tokens": 2000},
            reasoning_effort="low",
            tool_choice="required",
        )
    )
    assert result.status_code == 200, result.text
    sent = bedrock.last
    assert sent.raw_path == ("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse")
    assert sent.model == MODEL and sent.operation == "converse"
    # signed with the environment's temporary credentials, for the environment's region
    assert sent.headers["X-Amz-Security-Token"] == SESSION_TOKEN
    assert "/eu-central-1/bedrock/aws4_request" in sent.headers["Authorization"]
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
        "inferenceConfig": {"maxTokens": 2000},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
            ],
            "toolChoice": {"any": {}},
        },
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    v4 = result.json()
    assert v4["provider_request"] == sent.body
    data = v4["data"][0]
    assert data["output"] == "Let me check the weather in Paris."
    assert data["finish_reason"] == "tool_call"
    assert data["output_message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'},
        }
    ]
    assert data["output_message"]["thinking"] == [
        {
            "type": "thinking",
            "thinking": "The user wants the weather in Paris. I should call get_weather.",
            "signature": "EqQBCkgIARABGAIiQFakeSignatureForTests==",
        }
    ]
    # cache reads (20) are prompt tokens too, and are also reported apart
    assert v4["usage"] == {
        "prompt_tokens": 432,
        "generation_tokens": 96,
        "total_tokens": 528,
        "cache_read_tokens": 20,
        "cache_write_tokens": 0,
    }
    assert v4["provider_responses"] == [recorded]
    log = server.get_log(data["id"])
    assert log["provider_response"] == recorded
    assert (log["prompt_tokens"], log["cache_read_tokens"], log["cache_write_tokens"]) == (
        432,
        20,
        0,
    )
    assert SECRET_KEY not in json.dumps(log) and SESSION_TOKEN not in json.dumps(log)


def test_reasoning_and_tool_results_go_back_on_the_next_turn(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    first = fixture_json("converse_reasoning_tool_use.json")
    bedrock.enqueue(json_body=first)
    reply = server.post_chat(body()).json()["data"][0]["output_message"]
    turn = {k: v for k, v in reply.items() if k != "tool_call"}
    result = server.post_chat(
        body(
            model_config={"tools": [WEATHER_V4]},
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                turn,
                {
                    "role": "tool",
                    "content": "21C",
                    "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                },
            ],
        )
    )
    assert result.status_code == 200, result.text
    assistant, results = bedrock.last.body["messages"][1:]
    assert assistant == first["output"]["message"]
    assert results == {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "content": [{"text": "21C"}],
                }
            }
        ],
    }


def test_streamed_log_equals_the_non_streamed_log(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    recorded = fixture_json("converse_reasoning_tool_use.json")
    bedrock.enqueue(json_body=recorded)
    plain = server.post_chat(body()).json()
    bedrock.enqueue(pieces=transcript("stream_reasoning_tool_use.json"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 200, streamed.text
    assert bedrock.last.operation == "converse-stream"
    frames = parse_frames(streamed.content)
    outputs = [f["data"][0]["output"] for f in frames]
    assert "".join(outputs) == "Let me check the weather in Paris."
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "tool_call"
    assert last["provider_responses"] == [recorded]  # the reassembled response
    assert last["usage"] == plain["usage"]
    assert (last["usage"]["cache_read_tokens"], last["usage"]["cache_write_tokens"]) == (20, 0)
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(last["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key


def test_default_replies_streamed_and_not_store_the_same_log(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    plain = server.post_chat(body()).json()
    assert plain["data"][0]["output"] == "Echo: tell me a story"
    assert plain["data"][0]["finish_reason"] == "stop"
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames][:5] == ["Echo: ", "tell ", "me ", "a ", "story"]
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(frames[-1]["data"][0]["id"])
    for key in COMPARED:
        assert streamed_log[key] == plain_log[key], key


@pytest.mark.parametrize(
    ("name", "v4_type"),
    [
        ("error_validation.json", "invalid_request_error"),
        ("error_throttling.json", "rate_limit_error"),
    ],
)
def test_provider_error_keeps_status_type_and_origin(
    server: RunningServer, bedrock: FakeBedrock, name: str, v4_type: str
) -> None:
    recorded = fixture_json(name)
    for stream in (False, True):
        for _ in range(3 if recorded["status"] in (429, 500, 502, 503, 504) else 1):  # retried
            bedrock.enqueue(
                recorded["status"], recorded["body"]["message"], error_type=recorded["error_type"]
            )
        with server.client() as client:
            result = client.post("/chat", json=body(stream=stream))
        assert result.status_code == recorded["status"]
        assert result.json() == {
            "detail": {
                "type": v4_type,
                "message": recorded["body"]["message"],
                "code": recorded["status"],
                "origin": "Bedrock",
            }
        }


def test_wrong_credentials_are_bedrocks_403(server: RunningServer, bedrock: FakeBedrock) -> None:
    wrong = f"{ACCESS_KEY}:not-the-secret"
    result = server.post_chat(body(provider_api_keys={"bedrock": wrong}))
    assert result.status_code == 403
    assert result.json()["detail"]["type"] == "authentication_error"
    assert "not-the-secret" not in result.text
    result = server.post_chat(body(provider_api_keys={"bedrock": API_KEY}))
    assert result.status_code == 200, result.text
    assert bedrock.last.headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in result.text


def test_exception_before_content_is_a_plain_error_with_bedrocks_status(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue(pieces=transcript("stream_throttled_at_start.json"))
    with server.client() as client:
        result = client.post("/chat", json=body(stream=True))
    assert result.status_code == 429
    assert result.json()["detail"]["type"] == "rate_limit_error"
    assert result.json()["detail"]["origin"] == "Bedrock"


def test_exception_mid_stream_ends_the_sample_and_keeps_the_partial_output(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue(pieces=transcript("stream_exception_midway.json"))
    with server.client() as client:
        result = client.post("/chat", json=body(stream=True))
    assert result.status_code == 200
    frames = parse_frames(result.content)
    assert frames[0]["data"][0]["output"] == "Once upon "
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 424
    assert last["error"]["origin"] == "Bedrock"
    log = server.get_log(last["data"][0]["id"])
    assert log["output"] == "Once upon"
    assert log["error"] == "The model encountered an error while streaming the response."
    assert log["provider_response"]["output"]["message"]["content"] == [{"text": "Once upon "}]


def test_a_stream_cut_short_is_an_error(server: RunningServer, bedrock: FakeBedrock) -> None:
    pieces = stream_pieces(response({"messages": [{"role": "user", "content": [{"text": "x y"}]}]}))
    bedrock.enqueue(pieces=[*pieces[:-2], pieces[-2][:10]])  # no messageStop, a torn frame
    with server.client() as client:
        result = client.post("/chat", json=body(stream=True))
    last = parse_frames(result.content)[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502


def test_unsupported_parameter_is_a_422_naming_the_provider(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    result = server.post_chat(body(model_config={"seed": 3}))
    assert result.status_code == 422
    (problem,) = result.json()["detail"]
    assert problem["loc"] == ["body", "model_config", "seed"]
    assert "bedrock" in problem["msg"]
    assert bedrock.requests == []


# --- num_samples > 1: one call per sample, concurrently -----------------------------------------


def test_num_samples_runs_concurrent_calls_with_usage_per_sample(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    bedrock.delay = 0.3
    result = server.post_chat(body(num_samples=2))
    assert result.status_code == 200, result.text
    assert len(bedrock.requests) == 2 and bedrock.max_in_flight == 2
    assert bedrock.requests[0].body == bedrock.requests[1].body
    v4 = result.json()
    assert [d["output"] for d in v4["data"]] == ["Echo: tell me a story"] * 2
    assert len(v4["provider_responses"]) == 2
    logs = [server.get_log(d["id"]) for d in v4["data"]]
    assert [(log["prompt_tokens"], log["output_tokens"]) for log in logs] == [(4, 5), (4, 5)]
    assert v4["usage"] == {"prompt_tokens": 8, "generation_tokens": 10, "total_tokens": 18}


def test_num_samples_streamed_interleaves_both_samples(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    with server.client() as client:
        result = client.post("/chat", json=body(stream=True, num_samples=2))
    assert result.status_code == 200, result.text
    frames = parse_frames(result.content)
    for index in (0, 1):
        mine = [f["data"][0] for f in frames if f["data"][0]["index"] == index]
        assert "".join(d["output"] for d in mine) == "Echo: tell me a story"
        assert mine[-1]["finish_reason"] == "stop"
        assert server.get_log(mine[-1]["id"])["output_tokens"] == 5


# --- the published SDK ---------------------------------------------------------------------------


def test_humanloop_sdk_0_7_35_chats_with_bedrock(
    server: RunningServer, bedrock: FakeBedrock
) -> None:
    from humanloop import Humanloop

    hl = Humanloop(api_key=server.key_a, host=server.url)
    result = hl.chat(
        project="sdk-bedrock",
        model_config={
            "provider": "bedrock",
            "model": MODEL,
            "max_tokens": 100,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Ahoy there"}],
    )
    assert bedrock.last.body == {
        "messages": [{"role": "user", "content": [{"text": "Ahoy there"}]}],
        "system": [{"text": "You are a pirate."}],
        "inferenceConfig": {"maxTokens": 100},
    }
    assert result.data[0].output == "Echo: Ahoy there"
    assert result.data[0].finish_reason == "stop"
    assert result.usage.prompt_tokens == 6

    async def stream() -> list[dict[str, Any]]:
        streamed = await hl.chat_stream(
            project="sdk-bedrock",
            model_config={"provider": "bedrock", "model": MODEL},
            messages=[{"role": "user", "content": "stream this"}],
        )
        return [chunk async for chunk in streamed.content]

    chunks = asyncio.run(stream())
    assert [c["output"] for c in chunks] == ["Echo: ", "stream ", "this", ""]
    assert chunks[-1]["finish_reason"] == "stop"
