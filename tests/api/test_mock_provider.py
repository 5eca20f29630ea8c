"""The built-in mock provider: its documented, deterministic behaviour."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import RunningServer


def mock_chat(server: RunningServer, text: str = "hello world", **overrides: Any) -> dict[str, Any]:
    config = {"model": "mock-1", "provider": "mock", **overrides.pop("config", {})}
    response = server.post_chat(
        {
            "project": "mock",
            "model_config": config,
            "messages": [{"role": "user", "content": text}],
            **overrides,
        }
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_reply_samples_and_usage(server: RunningServer) -> None:
    result = mock_chat(server, num_samples=2)
    assert [d["output"] for d in result["data"]] == [
        "You said: hello world",
        "You said: hello world (sample 2)",
    ]
    assert result["usage"] == {"prompt_tokens": 2, "generation_tokens": 4 + 6, "total_tokens": 12}


def test_max_tokens_truncates_with_length(server: RunningServer) -> None:
    data = mock_chat(server, "one two three four", config={"max_tokens": 3})["data"][0]
    assert data["output"] == "You said: one"
    assert data["finish_reason"] == "length"


def test_json_mode(server: RunningServer) -> None:
    data = mock_chat(server, "hi", response_format={"type": "json_object"})["data"][0]
    assert json.loads(data["output"]) == {"reply": "hi"}


def test_tools(server: RunningServer) -> None:
    tools = [
        {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
        {"name": "other"},
    ]
    auto = mock_chat(server, "use get_weather for Paris", config={"tools": tools})["data"][0]
    assert auto["finish_reason"] == "tool_call"
    assert auto["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": json.dumps(
            {"city": "use get_weather for Paris", "days": 0}, separators=(",", ":")
        ),
    }
    plain = mock_chat(server, "no tool mentioned", config={"tools": tools})["data"][0]
    assert plain["finish_reason"] == "stop" and plain["tool_calls"] is None
    named = mock_chat(
        server,
        "x",
        config={"tools": tools},
        tool_choice={"type": "function", "function": {"name": "other"}},
    )["data"][0]
    assert named["tool_calls"][0]["function"]["name"] == "other"
    assert named["tool_calls"][0]["id"] == "call_mock_0"
    none = mock_chat(server, "use get_weather", config={"tools": tools}, tool_choice="none")[
        "data"
    ][0]
    assert none["tool_calls"] is None
