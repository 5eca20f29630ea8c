"""The humanloop SDK's chat_stream against chatgate: what its parser yields, frame by frame."""

from __future__ import annotations

import asyncio
from typing import Any

from humanloop import Humanloop

from tests.conftest import RunningServer
from tests.fakes.openai_server import FakeOpenAI


async def collect(hl: Humanloop, **kwargs: Any) -> list[dict[str, Any]]:
    response = await hl.chat_stream(**kwargs)
    return [chunk async for chunk in response.content]


def test_chat_stream_yields_the_deltas_then_the_finish(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    chunks = asyncio.run(
        collect(
            hl,
            project="sdk-stream",
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "stream this please"}],
        )
    )
    assert [c["output"] for c in chunks] == ["Echo: ", "stream ", "this ", "please", ""]
    assert [c["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert {c["index"] for c in chunks} == {0}
    log_id = chunks[0]["id"]
    assert log_id.startswith("data_") and all(c["id"] == log_id for c in chunks)
    assert chunks[0]["project_id"].startswith("pr_")
    assert chunks[-1]["model_config_id"].startswith("config_")
    # The log was committed before the last frame: it can be read at once.
    assert hl.logs.get(id=log_id).output == "Echo: stream this please"


def test_chat_stream_samples_and_tools_on_the_mock(server: RunningServer) -> None:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    chunks = asyncio.run(
        collect(
            hl,
            project="sdk-stream",
            num_samples=2,
            model_config={"model": "m", "provider": "mock"},
            messages=[{"role": "user", "content": "hi there"}],
        )
    )
    text = {0: "", 1: ""}
    for chunk in chunks:
        text[chunk["index"]] += chunk["output"]
    assert text == {0: "You said: hi there", 1: "You said: hi there (sample 2)"}
    assert sorted(c["index"] for c in chunks if c["finish_reason"]) == [0, 1]

    tools = [
        {
            "name": "search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    chunks = asyncio.run(
        collect(
            hl,
            project="sdk-stream",
            tool_choice="required",
            model_config={"model": "m", "provider": "mock", "tools": tools},
            messages=[{"role": "user", "content": "find cats"}],
        )
    )
    [final] = chunks
    assert final["finish_reason"] == "tool_call"
    assert final["tool_calls"][0]["function"] == {
        "name": "search",
        "arguments": '{"q":"find cats"}',
    }


def test_chat_stream_error_frame_reaches_the_sdk(server: RunningServer, fake: FakeOpenAI) -> None:
    from tests.fakes.openai_server import sse_pieces

    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "a b c"}],
        "stream": True,
    }
    fake.enqueue(pieces=[*sse_pieces(request)[:2], b'data: {"error": {"message": "boom"}}\n\n'])
    hl = Humanloop(api_key=server.key_a, host=server.url)
    chunks = asyncio.run(
        collect(
            hl,
            project="p",
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "a b c"}],
        )
    )
    assert chunks[-1]["finish_reason"] == "error"
    assert chunks[-1]["id"] == chunks[0]["id"]
