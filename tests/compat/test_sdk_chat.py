"""The published humanloop SDK (0.7.35, v4) against chatgate in a real uvicorn server.

The provider behind chatgate is a fake OpenAI server speaking the real wire format; it records
what chatgate sent it.
"""

from __future__ import annotations

import json

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import ENV_OPENAI_KEY, RunningServer
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


def test_chat_with_template_renders_inputs_and_is_logged(hl: Humanloop, fake: FakeOpenAI) -> None:
    response = hl.chat(
        project="support-bot",
        model_config={
            "model": "gpt-4o",
            "max_tokens": 50,
            "temperature": 0.2,
            "chat_template": [
                {"role": "system", "content": "You are {{ persona }}, speak {{lang}}."}
            ],
        },
        inputs={"persona": "a pirate", "lang": "English"},
        messages=[{"role": "user", "content": "Where is the treasure?"}],
        metadata={"ticket": 42},
        source="sdk-test",
        user="user-7",
    )
    sent = fake.last.body
    assert fake.last.path == "/v1/chat/completions"
    assert sent["messages"] == [
        {"role": "system", "content": "You are a pirate, speak English."},
        {"role": "user", "content": "Where is the treasure?"},
    ]
    assert sent["model"] == "gpt-4o"
    assert sent["max_tokens"] == 50
    assert sent["temperature"] == 0.2
    assert sent["user"] == "user-7"
    assert "n" not in sent and "stream" not in sent

    data = response.data[0]
    assert data.output == "Echo: Where is the treasure?"
    assert data.finish_reason == "stop"
    assert data.id.startswith("data_")
    assert response.project_id.startswith("pr_")
    assert response.usage.prompt_tokens == 10
    assert response.metadata == {"ticket": 42}
    assert response.provider_request == sent

    log = hl.logs.get(id=data.id)
    assert log.project == "support-bot"
    assert log.inputs == {"persona": "a pirate", "lang": "English"}
    assert log.output == "Echo: Where is the treasure?"
    assert log.messages[0].content == "You are a pirate, speak English."
    assert log.metadata == {"ticket": 42}
    assert log.source == "sdk-test"
    assert log.user == "user-7"
    assert log.config.model == "gpt-4o"
    assert log.config_id == data.model_config_id_
    assert log.prompt_tokens == 10 and log.output_tokens == 5
    assert log.duration is not None and log.provider_latency is not None
    assert log.provider_response["id"] == "chatcmpl-fake123"


def test_missing_template_input_is_a_422_naming_it(hl: Humanloop, fake: FakeOpenAI) -> None:
    with pytest.raises(ApiException) as raised:
        hl.chat(
            project="p",
            model_config={
                "model": "gpt-4o",
                "chat_template": [{"role": "system", "content": "Hi {{name}}"}],
            },
            messages=[{"role": "user", "content": "x"}],
        )
    assert raised.value.status == 422
    body = raised.value.body
    assert body["detail"][0]["loc"] == ["body", "inputs", "name"]
    assert "name" in body["detail"][0]["msg"]
    assert fake.requests == []


def test_sessions_and_parents(hl: Humanloop, server: RunningServer, fake: FakeOpenAI) -> None:
    config = {"model": "gpt-4o"}
    first = hl.chat(
        project="agent",
        session_reference_id="conv-1",
        model_config=config,
        messages=[{"role": "user", "content": "step one"}],
    )
    session_id = first.session_id
    assert session_id.startswith("sesh_")
    second = hl.chat(
        project="agent",
        session_reference_id="conv-1",
        model_config=config,
        parent_id=first.data[0].id,
        messages=[{"role": "user", "content": "step two"}],
    )
    assert second.session_id == session_id
    # A child named only by its parent joins the parent's session.
    third = hl.chat(
        project="agent-tools",
        parent_id=second.data[0].id,
        model_config=config,
        messages=[{"role": "user", "content": "step three"}],
    )
    assert third.session_id == session_id

    child = hl.logs.get(id=second.data[0].id)
    assert child.parent_id == first.data[0].id
    assert child.session_id == session_id
    assert child.session_reference_id == "conv-1"

    session = hl.sessions.get(id=session_id)
    assert session.reference_id == "conv-1"
    assert session.datapoints_count == 3
    assert sorted(p.name for p in session.projects) == ["agent", "agent-tools"]
    assert session.last_output == "Echo: step three"

    # By id: the same session; unknown ids are 404s.
    by_id = hl.chat(
        project="agent",
        session_id=session_id,
        model_config=config,
        messages=[{"role": "user", "content": "four"}],
    )
    assert by_id.session_id == session_id
    for kwargs in (
        {"session_id": "sesh_nope"},
        {"parent_id": "data_nope"},
        {"parent_reference_id": "nope"},
        {"project_id": "pr_nope"},
    ):
        with pytest.raises(ApiException) as raised:
            hl.chat(
                **{"project": "agent", **kwargs},
                model_config=config,
                messages=[{"role": "user", "content": "x"}],
            )
        assert raised.value.status == 404, kwargs
        assert raised.value.body["detail"]["origin"] == "chatgate"


def test_num_samples_gives_one_log_per_sample(hl: Humanloop, fake: FakeOpenAI) -> None:
    response = hl.chat(
        project="p",
        num_samples=3,
        model_config={"model": "gpt-4o"},
        messages=[{"role": "user", "content": "hello"}],
    )
    assert fake.last.body["n"] == 3
    assert [d.index for d in response.data] == [0, 1, 2]
    assert [d.output for d in response.data] == ["Echo: hello", "Echo: hello #1", "Echo: hello #2"]
    ids = {d.id for d in response.data}
    assert len(ids) == 3
    logs = [hl.logs.get(id=d.id) for d in response.data]
    assert [log.output for log in logs] == ["Echo: hello", "Echo: hello #1", "Echo: hello #2"]
    # The provider reports usage for the whole call: it is carried by sample 0 so sums are exact.
    assert logs[0].prompt_tokens == 1 and logs[0].output_tokens == 2 + 3 + 3
    assert logs[1].prompt_tokens is None and logs[2].output_tokens is None
    assert response.usage.generation_tokens == 8


def test_tools_and_named_tool_choice(hl: Humanloop, fake: FakeOpenAI) -> None:
    tool = {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    }
    response = hl.chat(
        project="p",
        model_config={"model": "gpt-4o", "tools": [tool]},
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        messages=[{"role": "user", "content": "weather in Paris"}],
    )
    sent = fake.last.body
    assert sent["tools"] == [{"type": "function", "function": tool}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    data = response.data[0]
    assert data.finish_reason == "tool_call"
    call = data.output_message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "weather in Paris"}
    assert data.tool_calls[0].id == "call_0"
    assert data.tool_call.name == "lookup"

    # The tool result goes back as a tool message with its call id.
    hl.chat(
        project="p",
        model_config={"model": "gpt-4o", "tools": [tool]},
        messages=[
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    sent = fake.last.body
    assert "tool_choice" not in sent
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "lookup"
    assert sent["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_0"}


def test_provider_error_keeps_status_and_is_logged(
    hl: Humanloop, server: RunningServer, fake: FakeOpenAI
) -> None:
    for _ in range(3):  # the first answer and both retries
        fake.enqueue(
            429,
            {
                "error": {
                    "message": "Rate limit reached for gpt-4o",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        )
    with pytest.raises(ApiException) as raised:
        hl.chat(
            project="errs",
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "x"}],
        )
    assert raised.value.status == 429
    detail = raised.value.body["detail"]
    assert detail == {
        "type": "requests",
        "message": "Rate limit reached for gpt-4o",
        "code": 429,
        "origin": "OpenAI",
    }
    store = server.store()
    org_id = store.orgs.org_id_by_name("acme")
    project_id = store.projects.project_id_by_name(org_id, "errs")
    [row] = store.logs.recent_logs(org_id=org_id, project_id=project_id)
    assert row.error == "Rate limit reached for gpt-4o"
    assert row.output is None


def test_provider_keys_never_stored_or_returned(
    hl: Humanloop, server: RunningServer, fake: FakeOpenAI
) -> None:
    secret = "sk-request-supersecret-9f8e7d6c5b4a"
    response = hl.chat(
        project="keys",
        model_config={"model": "gpt-4o"},
        provider_api_keys={"openai": secret},
        messages=[{"role": "user", "content": "hello"}],
    )
    assert fake.last.headers["Authorization"] == f"Bearer {secret}"
    # A provider that echoes the key in an error must not leak it either.
    fake.enqueue(
        401,
        {
            "error": {
                "message": f"Incorrect API key provided: {secret}",
                "type": "invalid_request_error",
            }
        },
    )
    with pytest.raises(ApiException) as raised:
        hl.chat(
            project="keys",
            model_config={"model": "gpt-4o"},
            provider_api_keys={"openai": secret},
            messages=[{"role": "user", "content": "again"}],
        )
    assert raised.value.status == 401
    assert secret not in json.dumps(raised.value.body)
    assert secret not in str(response.model_dump())
    log = hl.logs.get(id=response.data[0].id)
    assert secret not in str(log.model_dump())

    server.store().close()
    for path in server.data_dir.iterdir():  # the database and its WAL
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
            assert ENV_OPENAI_KEY.encode() not in path.read_bytes(), path


def test_server_environment_key_is_the_fallback(hl: Humanloop, fake: FakeOpenAI) -> None:
    hl.chat(
        project="p", model_config={"model": "gpt-4o"}, messages=[{"role": "user", "content": "x"}]
    )
    assert fake.last.headers["Authorization"] == f"Bearer {ENV_OPENAI_KEY}"


def test_another_organisation_cannot_read_logs_or_sessions(
    hl: Humanloop, server: RunningServer, fake: FakeOpenAI
) -> None:
    response = hl.chat(
        project="private",
        session_reference_id="s",
        model_config={"model": "gpt-4o"},
        messages=[{"role": "user", "content": "secret plans"}],
    )
    other = Humanloop(api_key=server.key_b, host=server.url)
    for call in (
        lambda: other.logs.get(id=response.data[0].id),
        lambda: other.sessions.get(id=response.session_id),
        lambda: other.chat(
            project_id=response.project_id,
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "x"}],
        ),
        lambda: other.chat(
            project="x",
            parent_id=response.data[0].id,
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "x"}],
        ),
        lambda: other.chat(
            project="x",
            session_id=response.session_id,
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "x"}],
        ),
    ):
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 404
    # The same project name in another organisation is another project.
    theirs = other.chat(
        project="private",
        model_config={"model": "gpt-4o"},
        messages=[{"role": "user", "content": "x"}],
    )
    assert theirs.project_id != response.project_id


def test_mock_provider_needs_no_key(server: RunningServer, fake: FakeOpenAI) -> None:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="p",
        model_config={"model": "mock-1", "provider": "mock"},
        messages=[{"role": "user", "content": "ping"}],
    )
    assert response.data[0].output == "You said: ping"
    assert fake.requests == []


def test_a_logged_config_with_tools_is_readable_by_the_sdk(hl: Humanloop, fake: FakeOpenAI) -> None:
    tool = {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    response = hl.chat(
        project="p",
        model_config={"model": "gpt-4o", "tools": [tool]},
        messages=[{"role": "user", "content": "x"}],
    )
    log = hl.logs.get(id=response.data[0].id)
    assert log.config.tools[0].name == "lookup"  # parsed as the SDK's ModelConfigResponse
    assert log.config.tools[0].id == f"{log.config_id}_tool_0"


def test_cache_and_reasoning_counts_are_extra_fields_the_sdk_accepts(
    hl: Humanloop, fake: FakeOpenAI
) -> None:
    """The counts v4 has no field for arrive as additional keys: the typed SDK objects ignore
    them and keep working, the SDK's raw responses carry them."""
    fake.cached_tokens, fake.reasoning_tokens = 1024, 8
    request = {
        "project": "p",
        "model_config": {"model": "o4-mini"},
        "messages": [{"role": "user", "content": " ".join(["word"] * 1100)}],
    }
    typed = hl.chat(**request)
    assert typed.usage.prompt_tokens == 1100 and typed.usage.generation_tokens == 1101 + 8
    raw = hl.chats.raw.create(**request).body
    assert raw["usage"]["cache_read_tokens"] == 1024 and raw["usage"]["reasoning_tokens"] == 8
    log = hl.logs.get(id=typed.data[0].id)
    assert log.prompt_tokens == 1100 and log.prompt_cost is not None
    raw_log = hl.logs.raw.get(id=typed.data[0].id).body
    assert raw_log["cache_read_tokens"] == 1024 and raw_log["cache_write_tokens"] is None
    assert raw_log["reasoning_tokens"] == 8
