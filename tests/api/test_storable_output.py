"""Whatever a provider answers, its log is stored on every backend: a NUL in the output (which
PostgreSQL refuses in text and JSON), a finish reason longer than its column, token counts past
the column's range. Before, each was a 503 after the provider had been called and billed."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.fakes.openai_server import FakeOpenAI

REPLACEMENT = "\ufffd"


def completion(content: str, finish_reason: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 3, "total_tokens": 0},
    }


def test_an_odd_answer_is_stored_and_read_back(server: RunningServer, fake: FakeOpenAI) -> None:
    long_reason = "because_" * 20
    fake.enqueue(json_body=completion("a\u0000b", long_reason, 2**40))
    response = server.post_chat(
        {
            "project": "odd",
            "model_config": {"provider": "openai", "model": "gpt-4o"},
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"][0]
    log = server.get_log(data["id"])
    assert log["output"] == f"a{REPLACEMENT}b"
    assert log["output_message"]["content"] == f"a{REPLACEMENT}b"
    assert "\u0000" not in str(log["provider_response"])
    assert log["finish_reason"] == long_reason[:64]
    assert log["prompt_tokens"] == 2**31 - 1
