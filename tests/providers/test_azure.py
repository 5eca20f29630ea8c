"""The Azure OpenAI wire through a real uvicorn server, against a fake speaking Azure's wire.

Requests are asserted exactly as Azure receives them (path, query, headers, body); replies come
from the fake's defaults or from transcripts in tests/fixtures/azure/ written from Microsoft's
public REST reference. The URL guard's integration (a caller-supplied endpoint) is tested here
too; its address classes are unit-tested in test_url_guard.py.
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
from tests.fakes.azure_server import FakeAzure
from tests.providers._transcripts import read_json

FIXTURES = Path(__file__).parent.parent / "fixtures" / "azure"
AZURE_KEY = "azure-env-key-0123456789abcdef0123"
USER = [{"role": "user", "content": "hello there"}]
PATH = "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


fixture = functools.partial(read_json, FIXTURES)


def fixture_pieces(name: str) -> list[bytes]:
    return [block + b"\n\n" for block in (FIXTURES / name).read_bytes().split(b"\n\n") if block]


@pytest.fixture(scope="module")
def azure_fake() -> Iterator[FakeAzure]:
    fake = FakeAzure().start()
    yield fake
    fake.stop()


@pytest.fixture
def azure(azure_fake: FakeAzure) -> FakeAzure:
    azure_fake.reset()
    return azure_fake


def _start(
    tmp_path: Path, vendor_env: dict[str, str], **overrides: Any
) -> tuple[UvicornThread, RunningServer]:
    # Errors are asserted as Azure sent them, not retried.
    return start_server(tmp_path, "", vendor_env=vendor_env, provider_max_retries=0, **overrides)


@pytest.fixture
def server(tmp_path: Path, azure: FakeAzure) -> Iterator[RunningServer]:
    env = {"AZURE_OPENAI_ENDPOINT": azure.url, "AZURE_OPENAI_API_KEY": AZURE_KEY}
    runner, running = _start(tmp_path, env)
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "openai_azure", "model": "my-gpt4o", **overrides.pop("config", {})}
    return {"project": "azure", "model_config": config, "messages": USER, **overrides}


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
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


# --- the exact provider request -------------------------------------------------------------


def test_request_url_auth_and_body(server: RunningServer, azure: FakeAzure) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"},
                },
            ],
        },
    ]
    result = chat(
        server,
        body(
            messages=messages,
            config={"max_tokens": -1, "stop": ["\n\n"], "seed": 7, "other": {"logprobs": True}},
            user="u-1",
        ),
    )
    sent = azure.last
    assert sent.path == PATH
    assert sent.headers["api-key"] == AZURE_KEY
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "logprobs": True,
        "model": "my-gpt4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"},
                    },
                ],
            },
        ],
        **DEFAULTS,
        "stop": ["\n\n"],
        "seed": 7,
        "user": "u-1",
    }
    assert result["provider_request"] == sent.body
    assert AZURE_KEY not in json.dumps(result)
    assert result["data"][0]["output"] == "Echo: what is this?"


@pytest.mark.parametrize(
    "choice",
    ["none", "auto", "required", {"type": "function", "function": {"name": "get_weather"}}],
)
def test_tools_and_tool_choice(server: RunningServer, azure: FakeAzure, choice: Any) -> None:
    result = chat(server, body(config={"tools": TOOLS}, tool_choice=choice))
    assert azure.last.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": TOOLS[0]["parameters"],
            },
        }
    ]
    assert azure.last.body["tool_choice"] == choice
    called = choice not in ("none", "auto")
    assert result["data"][0]["finish_reason"] == ("tool_call" if called else "stop")
    if called:
        assert result["data"][0]["tool_calls"] == [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"q": "hello there"}'},
            }
        ]


def test_tool_results_json_mode_and_reasoning(server: RunningServer, azure: FakeAzure) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": '{"ok": true}', "tool_call_id": "call_1", "name": "f"},
    ]
    chat(
        server,
        body(
            messages=messages,
            config={"model": "o3-mini-prod", "max_tokens": 500, "reasoning_effort": "high"},
            response_format={"type": "json_object"},
        ),
    )
    sent = azure.last
    assert sent.path == "/openai/deployments/o3-mini-prod/chat/completions?api-version=2024-10-21"
    assert sent.body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": '{"ok": true}', "name": "f", "tool_call_id": "call_1"},
    ]
    assert sent.body["max_completion_tokens"] == 500 and "max_tokens" not in sent.body
    assert sent.body["reasoning_effort"] == "high"
    assert sent.body["response_format"] == {"type": "json_object"}
    chat(server, body(config={"max_tokens": 20}))
    assert azure.last.body["max_tokens"] == 20


def test_integer_reasoning_budget_maps_to_the_enum(server: RunningServer, azure: FakeAzure) -> None:
    chat(server, body(config={"reasoning_effort": 2048}))
    assert azure.last.body["reasoning_effort"] == "medium"


def test_num_samples_uses_native_n(server: RunningServer, azure: FakeAzure) -> None:
    result = chat(server, body(num_samples=2))
    assert azure.last.body["n"] == 2 and len(azure.requests) == 1
    assert [d["output"] for d in result["data"]] == ["Echo: hello there", "Echo: hello there #1"]
    frames = stream(server, body(num_samples=2))
    finals = [f for f in frames if f["data"][0]["finish_reason"]]
    assert sorted(f["data"][0]["index"] for f in finals) == [0, 1]
    assert finals[0]["provider_responses"] == result["provider_responses"]


# --- replies, streamed and not --------------------------------------------------------------


def test_transcript_streamed_and_not_log_the_same(server: RunningServer, azure: FakeAzure) -> None:
    azure.enqueue(json_body=fixture("chat_completion.json"))
    plain = chat(server, body())
    azure.enqueue(pieces=fixture_pieces("stream.sse"))
    frames = stream(server, body())
    assert azure.last.body["stream"] is True
    assert azure.last.body["stream_options"] == {"include_usage": True}
    assert "".join(f["data"][0]["output"] for f in frames) == "Paris is the capital of France."
    usage = {
        "prompt_tokens": 14,
        "generation_tokens": 8,
        "total_tokens": 22,
        "reasoning_tokens": 0,
        "cache_read_tokens": 0,  # Azure reports prompt_tokens_details.cached_tokens as OpenAI does
    }
    assert plain["usage"] == usage and frames[-1]["usage"] == usage
    assert plain["provider_responses"] == [fixture("chat_completion.json")]
    assert frames[-1]["provider_responses"] == [fixture("chat_completion.json")]
    logs = [server.get_log(plain["data"][0]["id"]), server.get_log(frames[0]["data"][0]["id"])]
    for key in ("output", "output_message", "finish_reason", "provider_response"):
        assert logs[0][key] == logs[1][key], key


def test_default_stream_matches_non_streamed(server: RunningServer, azure: FakeAzure) -> None:
    plain = chat(server, body(config={"tools": TOOLS}, tool_choice="required"))
    frames = stream(server, body(config={"tools": TOOLS}, tool_choice="required"))
    assert frames[-1]["provider_responses"] == plain["provider_responses"]
    assert frames[-1]["data"][0]["tool_calls"] == plain["data"][0]["tool_calls"]
    assert frames[-1]["usage"] == plain["usage"]


def test_content_filter_finish_reason(server: RunningServer, azure: FakeAzure) -> None:
    filtered = fixture("chat_completion.json")
    filtered["choices"][0]["finish_reason"] = "content_filter"
    filtered["choices"][0]["message"]["content"] = None
    azure.enqueue(json_body=filtered)
    result = chat(server, body())
    assert result["data"][0]["finish_reason"] == "content_filter"
    assert result["data"][0]["output"] == ""


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [
        ("error_content_filter.json", 400, "invalid_request_error"),
        ("error_429.json", 429, "rate_limit_error"),
    ],
)
def test_provider_error_is_the_v4_error(
    server: RunningServer, azure: FakeAzure, name: str, status: int, kind: str
) -> None:
    for streamed in (False, True):
        azure.enqueue(status, fixture(name))
        response = server.post_chat({**body(), "stream": streamed})
        assert response.status_code == status
        assert response.json() == {
            "detail": {
                "type": kind,
                "message": fixture(name)["error"]["message"],
                "code": status,
                "origin": "Azure OpenAI",
            }
        }


def test_unknown_deployment_and_bad_key(server: RunningServer, azure: FakeAzure) -> None:
    response = server.post_chat(body(config={"model": "missing"}))
    assert response.status_code == 404
    assert response.json()["detail"]["type"] == "not_found_error"
    assert "deployment" in response.json()["detail"]["message"]
    response = server.post_chat(body(provider_api_keys={"openai_azure": "caller-key-987654321"}))
    assert azure.last.headers["api-key"] == "caller-key-987654321"


def test_error_mid_stream(server: RunningServer, azure: FakeAzure) -> None:
    azure.enqueue(pieces=fixture_pieces("stream_error.sse"))
    frames = stream(server, body())
    assert "".join(f["data"][0]["output"] for f in frames[:-1]) == "Paris is"
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["origin"] == "Azure OpenAI" and last["error"]["code"] == 502
    log = server.get_log(frames[0]["data"][0]["id"])
    assert log["output"] == "Paris is" and "server had an error" in log["error"]


def test_no_endpoint_is_400(tmp_path: Path, azure: FakeAzure) -> None:
    runner, running = _start(tmp_path, {"AZURE_OPENAI_API_KEY": AZURE_KEY})
    with runner:
        response = running.post_chat(body())
    assert response.status_code == 400
    assert "openai_azure_endpoint" in response.json()["detail"]["message"]


def test_api_version_from_environment(tmp_path: Path, azure: FakeAzure) -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": azure.url + "/",
        "AZURE_OPENAI_API_KEY": AZURE_KEY,
        "OPENAI_API_VERSION": "2025-01-01-preview",
    }
    runner, running = _start(tmp_path, env)
    with runner:
        chat(running, body())
    assert azure.last.path.endswith("?api-version=2025-01-01-preview")


# --- caller-supplied endpoints and the URL guard --------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://169.254.169.254", "link-local"),
        ("https://127.0.0.1:8443", "loopback"),
        ("https://localhost", "loopback"),
        ("https://[::ffff:10.0.0.5]", "private"),
        ("http://example.com", "https"),
    ],
)
def test_internal_caller_endpoint_is_refused(
    server: RunningServer, azure: FakeAzure, endpoint: str, reason: str
) -> None:
    for streamed in (False, True):
        # With the caller's own key: a caller endpoint never gets any other key (see
        # tests/api/test_provider_key_routing.py); the guard protects the network behind it.
        keys = {"openai_azure_endpoint": endpoint, "openai_azure": "caller-key-987654321"}
        response = server.post_chat({**body(provider_api_keys=keys), "stream": streamed})
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert detail["type"] == "upstream_url_refused" and detail["origin"] == "chatgate"
        assert reason in detail["message"] and "openai_azure_endpoint" in detail["message"]
    assert azure.requests == []


def test_allow_listed_loopback_caller_endpoint_is_accepted(
    tmp_path: Path, azure: FakeAzure
) -> None:
    env = {"AZURE_OPENAI_API_KEY": AZURE_KEY}  # no operator endpoint: only the caller's
    runner, server = _start(tmp_path, env, allowed_upstream_hosts=["127.0.0.0/8"])
    with runner:
        own_key = {"openai_azure": "caller-key-987654321"}
        payload = body(provider_api_keys={"openai_azure_endpoint": azure.url, **own_key})
        assert chat(server, payload)["data"][0]["output"] == "Echo: hello there"
        frames = stream(server, payload)
        assert "".join(f["data"][0]["output"] for f in frames) == "Echo: hello there"
        refused = server.post_chat(
            body(provider_api_keys={"openai_azure_endpoint": "https://10.1.2.3", **own_key})
        )
    assert azure.last.path == PATH
    assert refused.status_code == 400 and "private" in refused.json()["detail"]["message"]


def test_humanloop_sdk_drives_azure(server: RunningServer, azure: FakeAzure) -> None:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="sdk-azure",
        model_config={
            "provider": "openai_azure",
            "model": "my-gpt4o",
            "max_tokens": 64,
            "temperature": 0.2,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Where is the treasure?"}],
    )
    assert azure.last.path == PATH
    assert azure.last.body == {
        "model": "my-gpt4o",
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Where is the treasure?"},
        ],
        **DEFAULTS,
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert response.data[0].output == "Echo: Where is the treasure?"
    assert response.provider_responses[0]["model"] == "gpt-4o-2024-08-06"
