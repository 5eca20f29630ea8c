"""A provider that echoes the request's key: the key never reaches the client or the log.

The fake OpenAI answers "Echo: <the user's text>", so a user message holding the server's key
makes the model "say" it. Streams are checked with the key split across two deltas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatgate.domain import Message, Sample, ToolCall
from chatgate.services.redaction import StreamRedactor, scrub_sample, secrets_of
from tests.api.test_streaming import parse_frames
from tests.conftest import ENV_OPENAI_KEY, RunningServer
from tests.fakes.openai_server import FakeOpenAI

#: What an echoed key becomes in model output: its public first characters, then the marker.
REDACTED = "[REDACTED]"
SHOWN = ENV_OPENAI_KEY[:3] + REDACTED


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "project": "echo",
        "model_config": {"provider": "openai", "model": "gpt-4o"},
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _assert_clean(value: Any) -> None:
    assert ENV_OPENAI_KEY not in json.dumps(value)


def _stored_bytes(server: RunningServer) -> bytes:
    files = [server.db_path, server.db_path.with_name(server.db_path.name + "-wal")]
    return b"".join(p.read_bytes() for p in files if p.exists())


def test_an_echoed_key_is_scrubbed_from_the_answer_and_the_log(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    response = server.post_chat(body(f"my key is {ENV_OPENAI_KEY}, right?"))
    assert response.status_code == 200, response.text
    answer = response.json()
    _assert_clean(answer)
    assert answer["data"][0]["output"] == f"Echo: my key is {SHOWN}, right?"
    assert fake.last.headers["Authorization"] == f"Bearer {ENV_OPENAI_KEY}"  # it was used
    log = server.get_log(answer["data"][0]["id"])
    _assert_clean(log)
    assert log["output"] == answer["data"][0]["output"]
    if server.settings.resolved_database_url.startswith("sqlite"):
        assert ENV_OPENAI_KEY.encode() not in _stored_bytes(server)


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize("cut", [1, 3, 10, len(ENV_OPENAI_KEY) - 1])
def test_an_echoed_key_split_across_deltas_never_reaches_the_stream(
    server: RunningServer, fake: FakeOpenAI, cut: int
) -> None:
    head, tail = ENV_OPENAI_KEY[:cut], ENV_OPENAI_KEY[cut:]
    fake.enqueue(
        pieces=[
            _chunk("Your key: s"),  # starts like the key, but is not it
            _chunk("ay " + head),
            _chunk(tail + " and s"),
            _chunk(None, "stop"),
            b"data: [DONE]\n\n",
        ]
    )
    response = server.post_chat(body("anything", stream=True))
    assert response.status_code == 200
    assert ENV_OPENAI_KEY.encode() not in response.content
    frames, _ = parse_frames(response.content)
    streamed = "".join(f["data"][0]["output"] for f in frames)
    assert streamed == f"Your key: say {SHOWN} and s"
    log = server.get_log(frames[0]["data"][0]["id"])
    assert log["output"] == streamed
    _assert_clean(log)


def test_stream_redactor_passes_ordinary_text_on_at_once() -> None:
    redactor = StreamRedactor(["sk-abcdefgh"])
    assert redactor.feed("Hello there") == "Hello there"
    assert redactor.feed(" asks") == " asks"  # a key's first letters alone are not held
    assert redactor.feed(" sk-") == " sk-"
    assert redactor.feed("abcdefgh!") == f"{REDACTED}!"  # "sk-" already sent: exactly kept
    assert redactor.feed(" sk-ab") == " "  # four characters of the key: held
    assert redactor.feed("x") == "sk-abx"
    assert redactor.feed(" sk-abcd") == " "
    assert redactor.flush() == "sk-abcd"


def test_stream_redactor_matches_the_stored_redaction_for_every_split() -> None:
    secret = "sk-abcdefgh"
    text = f"a {secret} b s{secret}{secret} sk-abc"
    expected = text.replace(secret, "sk-" + REDACTED)
    for cut in range(len(text) + 1):
        for second in range(cut, len(text) + 1):
            redactor = StreamRedactor([secret])
            pieces = [text[:cut], text[cut:second], text[second:]]
            sent = "".join(redactor.feed(p) for p in pieces) + redactor.flush()
            assert sent == expected, (cut, second)


def test_scrub_sample_covers_text_tool_calls_and_reasoning() -> None:
    secret = "sk-abcdefgh123"
    sample = Sample(
        index=0,
        raw_output=f"a {secret}",
        output_message=Message(
            "assistant",
            f"a {secret}",
            tool_calls=(ToolCall("call_1", "lookup", json.dumps({"key": secret})),),
            thinking=({"type": "thinking", "thinking": f"use {secret}"},),
        ),
        finish_reason="stop",
    )
    clean = scrub_sample(sample, [secret])
    assert secret not in repr(clean) and clean.output == f"a sk-{REDACTED}"
    plain = Sample(0, "nothing here", Message("assistant", "nothing here"), "stop")
    assert scrub_sample(plain, [secret]) is plain


def test_secrets_of_a_json_credential_include_its_secret_parts() -> None:
    credential = json.dumps(
        {
            "aws_access_key_id": "AKIAEXAMPLE12345",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_session_token": "FwoGZXIvYXdzEXAMPLETOKEN",
            "region": "eu-west-1",
        }
    )
    found = secrets_of(credential)
    assert credential in found
    assert "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" in found
    assert "FwoGZXIvYXdzEXAMPLETOKEN" in found
    assert "eu-west-1" not in found
    assert secrets_of(None) == () and secrets_of("sk-x") == ("sk-x",)
