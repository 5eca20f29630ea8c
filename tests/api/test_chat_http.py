"""POST /v4/chat over HTTP: validation, field semantics and error bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.fakes.openai_server import FakeOpenAI

USER = [{"role": "user", "content": "hello"}]


def body(**overrides: Any) -> dict[str, Any]:
    return {"project": "p", "model_config": {"model": "gpt-4o"}, "messages": USER, **overrides}


def chat_ok(server: RunningServer, **overrides: Any) -> dict[str, Any]:
    response = server.post_chat(body(**overrides))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-KEY": "cg_not-a-real-key"},
        {"X-API-KEY": "garbage"},
        {"Authorization": "Bearer whatever"},
    ],
)
def test_missing_or_unknown_key_is_401(server: RunningServer, headers: dict[str, str]) -> None:
    import httpx

    response = httpx.post(f"{server.url}/chat", json=body(), headers=headers)
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail["code"] == 401 and detail["origin"] == "chatgate"
    assert detail["type"] == "unauthorized_error"


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "loc", "kind"),
    [
        (body(unknown_field=1), ["body", "unknown_field"], "extra_forbidden"),
        (
            body(model_config={"model": "gpt-4o", "nope": 1}),
            ["body", "model_config", "nope"],
            "extra_forbidden",
        ),
        ({"project": "p", "messages": USER}, ["body", "model_config"], "missing"),
        ({"project": "p", "model_config": {"model": "x"}}, ["body", "messages"], "missing"),
        (body(model_config={}), ["body", "model_config", "model"], "missing"),
        (
            body(messages=[{"role": "robot", "content": "x"}]),
            ["body", "messages", 0, "role"],
            "literal_error",
        ),
        (
            body(model_config={"model": "x", "endpoint": "embed"}),
            ["body", "model_config", "endpoint"],
            "literal_error",
        ),
        (body(tool_choice="sometimes"), ["body", "tool_choice"], None),
        (body(num_samples=0), ["body", "num_samples"], "greater_than_equal"),
        (body(reasoning_effort="extreme"), ["body", "reasoning_effort"], None),
        (body(template_language="mustache"), ["body", "template_language"], None),
        (body(response_format={"type": "xml"}), ["body", "response_format", "type"], None),
        (
            body(model_config={"model": "x", "provider": "acme-ai"}),
            ["body", "model_config", "provider"],
            "enum",
        ),
        (
            {"model_config": {"model": "x"}, "messages": USER},
            ["body", "project"],
            "value_error.missing",
        ),
        (
            body(session_id="sesh_1", session_reference_id="r"),
            ["body", "session_reference_id"],
            "value_error",
        ),
        (
            body(parent_id="data_1", parent_reference_id="r"),
            ["body", "parent_reference_id"],
            "value_error",
        ),
    ],
)
def test_invalid_bodies_are_422_in_the_v4_shape(
    server: RunningServer,
    fake: FakeOpenAI,
    payload: dict[str, Any],
    loc: list[Any],
    kind: str | None,
) -> None:
    response = server.post_chat(payload)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert any(item["loc"][: len(loc)] == loc for item in detail), detail
    if kind:
        assert any(item["type"] == kind for item in detail if item["loc"][: len(loc)] == loc), (
            detail
        )
    assert fake.requests == []


def test_invalid_json_is_422(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post(
            "/chat", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_validation_errors_never_echo_provider_keys(server: RunningServer) -> None:
    response = server.post_chat(body(provider_api_keys={"openai": 12345678987654321}))
    assert response.status_code == 422
    assert "12345678987654321" not in response.text


def test_body_without_json_content_type_is_still_read(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    import orjson

    with server.client() as client:
        response = client.post(
            "/chat",
            content=orjson.dumps(body()),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200, response.text


def test_late_fields_are_accepted(server: RunningServer, fake: FakeOpenAI) -> None:
    result = chat_ok(
        server,
        reasoning_effort="low",
        template_language="default",
        messages=[
            {
                "role": "user",
                "content": "hi",
                "thinking": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}],
            }
        ],
    )
    assert result["data"][0]["output"] == "Echo: hi"
    assert fake.last.body["reasoning_effort"] == "low"


# --- response shape ---------------------------------------------------------------------------

CHAT_RESPONSE_KEYS = {
    "project_id",
    "num_samples",
    "logprobs",
    "suffix",
    "user",
    "data",
    "usage",
    "metadata",
    "provider_responses",
    "provider_request",
    "session_id",
    "tool_choice",
}
DATA_KEYS = {
    "id",
    "index",
    "output",
    "raw_output",
    "inputs",
    "finish_reason",
    "model_config_id",
    "tool_results",
    "messages",
    "tool_call",
    "tool_calls",
    "output_message",
}


def test_every_response_key_is_present(server: RunningServer, fake: FakeOpenAI) -> None:
    result = chat_ok(server)
    assert set(result) == CHAT_RESPONSE_KEYS
    assert set(result["data"][0]) == DATA_KEYS
    assert (
        result["session_id"] is None and result["logprobs"] is None and result["metadata"] is None
    )
    assert result["usage"] == {
        "prompt_tokens": 1,
        "generation_tokens": 2,
        "total_tokens": 3,
        "reasoning_tokens": 0,
        "cache_read_tokens": 0,
    }
    assert result["provider_responses"][0]["object"] == "chat.completion"


def test_output_is_stripped_raw_output_is_not(server: RunningServer, fake: FakeOpenAI) -> None:
    from tests.fakes.openai_server import completion

    reply = completion({"model": "gpt-4o", "messages": USER})
    reply["choices"][0]["message"]["content"] = "  spaced out \n"
    fake.enqueue(200, reply)
    data = chat_ok(server)["data"][0]
    assert data["output"] == "spaced out"
    assert data["raw_output"] == "  spaced out \n"
    assert data["output_message"]["content"] == "  spaced out \n"


def test_return_inputs_false_returns_empty_inputs_but_logs_them(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    config = {"model": "gpt-4o", "chat_template": [{"role": "system", "content": "{{a}}"}]}
    result = chat_ok(server, model_config=config, inputs={"a": "x"}, return_inputs=False)
    assert result["data"][0]["inputs"] == {}
    with server.client() as client:
        log = client.get(f"/logs/{result['data'][0]['id']}").json()
    assert log["inputs"] == {"a": "x"}


def test_save_false_keeps_ids_timing_usage_status_but_no_payloads(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    result = chat_ok(
        server,
        save=False,
        inputs={"secret": "s3cr3t-input"},
        messages=[{"role": "user", "content": "private words"}],
        metadata={"k": "v"},
    )
    assert result["data"][0]["output"] == "Echo: private words"  # the caller still gets the answer
    with server.client() as client:
        log = client.get(f"/logs/{result['data'][0]['id']}").json()
    assert log["save"] is False
    for field in (
        "inputs",
        "messages",
        "output",
        "raw_output",
        "output_message",
        "provider_request",
        "provider_response",
    ):
        assert log[field] is None, field
    assert log["finish_reason"] == "stop"
    assert log["prompt_tokens"] == 2 and log["output_tokens"] == 3
    assert log["duration"] > 0
    assert log["project_id"] == result["project_id"]
    for path in server.data_dir.iterdir():
        if path.is_file():
            assert b"private words" not in path.read_bytes()
            assert b"s3cr3t-input" not in path.read_bytes()


# --- model_config mapping to the OpenAI wire ------------------------------------------------------


def test_every_model_config_field_is_mapped(server: RunningServer, fake: FakeOpenAI) -> None:
    chat_ok(
        server,
        model_config={
            "model": "gpt-4o-mini",
            "max_tokens": 77,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": ["END"],
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "seed": 7,
            "response_format": {"type": "json_object"},
            "other": {"logit_bias": {"50256": -100}, "temperature": 2},
        },
        user="end-user",
        num_samples=2,
    )
    sent = fake.last.body
    assert sent == {
        "model": "gpt-4o-mini",
        "messages": USER,
        "max_tokens": 77,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["END"],
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "seed": 7,
        "response_format": {"type": "json_object"},
        "logit_bias": {"50256": -100},
        "user": "end-user",
        "n": 2,
    }


def test_max_tokens_minus_one_means_no_limit(server: RunningServer, fake: FakeOpenAI) -> None:
    chat_ok(server, model_config={"model": "gpt-4o", "max_tokens": -1})
    assert "max_tokens" not in fake.last.body and "max_completion_tokens" not in fake.last.body


def test_reasoning_models_get_max_completion_tokens(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    chat_ok(
        server, model_config={"model": "o3-mini", "max_tokens": 500, "reasoning_effort": "high"}
    )
    assert fake.last.body["max_completion_tokens"] == 500
    assert "max_tokens" not in fake.last.body
    assert fake.last.body["reasoning_effort"] == "high"


def test_top_level_late_fields_win_over_model_config(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    chat_ok(
        server,
        reasoning_effort="low",
        template_language="jinja",
        inputs={"items": ["a", "b"]},
        model_config={
            "model": "o3-mini",
            "reasoning_effort": "high",
            "template_language": "default",
            "chat_template": [
                {"role": "system", "content": "{% for i in items %}[{{ i }}]{% endfor %}"}
            ],
        },
    )
    assert fake.last.body["reasoning_effort"] == "low"
    assert fake.last.body["messages"][0]["content"] == "[a][b]"


def test_integer_reasoning_budget_maps_to_the_openai_enum(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    for budget, level in (
        (512, "low"),
        (1024, "low"),
        (4000, "medium"),
        (8192, "medium"),
        (8193, "high"),
        (32000, "high"),
    ):
        chat_ok(server, reasoning_effort=budget, model_config={"model": "o3-mini"})
        assert fake.last.body["reasoning_effort"] == level, budget


def test_deprecated_seed_and_tool_call(server: RunningServer, fake: FakeOpenAI) -> None:
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {}}}]
    chat_ok(
        server, seed=11, tool_call={"name": "f"}, model_config={"model": "gpt-4o", "tools": tools}
    )
    assert fake.last.body["seed"] == 11
    assert fake.last.body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    chat_ok(server, seed=11, model_config={"model": "gpt-4o", "seed": 3})
    assert fake.last.body["seed"] == 3  # model_config.seed wins over the deprecated top level


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_tool_choice_strings_pass_through(
    server: RunningServer, fake: FakeOpenAI, choice: str
) -> None:
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {}}}]
    result = chat_ok(server, tool_choice=choice, model_config={"model": "gpt-4o", "tools": tools})
    assert fake.last.body["tool_choice"] == choice
    assert result["tool_choice"] == choice


def test_response_format_top_level_wins(server: RunningServer, fake: FakeOpenAI) -> None:
    schema = {"name": "s", "schema": {"type": "object"}}
    chat_ok(
        server,
        response_format={"type": "json_schema", "json_schema": schema},
        model_config={"model": "gpt-4o", "response_format": {"type": "json_object"}},
    )
    assert fake.last.body["response_format"] == {"type": "json_schema", "json_schema": schema}


def test_images_and_names_are_sent_in_openai_shape(server: RunningServer, fake: FakeOpenAI) -> None:
    messages = [
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
            ],
        }
    ]
    chat_ok(server, messages=messages)
    assert fake.last.body["messages"] == messages


def test_jinja_runs_in_a_sandbox(server: RunningServer, fake: FakeOpenAI) -> None:
    template = [{"role": "system", "content": "{{ x.__class__.__mro__[1].__subclasses__() }}"}]
    response = server.post_chat(
        body(
            template_language="jinja",
            inputs={"x": "s"},
            model_config={"model": "gpt-4o", "chat_template": template},
        )
    )
    assert response.status_code == 422
    assert fake.requests == []


def test_jinja_undefined_input_is_422(server: RunningServer, fake: FakeOpenAI) -> None:
    template = [{"role": "system", "content": "Hi {{ who }}"}]
    response = server.post_chat(
        body(template_language="jinja", model_config={"model": "gpt-4o", "chat_template": template})
    )
    assert response.status_code == 422
    assert "who" in response.json()["detail"][0]["msg"]


# --- model config identity --------------------------------------------------------------------


def test_model_config_identity_ignores_display_fields(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    one = chat_ok(server, model_config={"model": "gpt-4o", "name": "first", "temperature": 0.5})
    two = chat_ok(
        server,
        model_config={"model": "gpt-4o", "name": "second", "description": "d", "temperature": 0.5},
    )
    three = chat_ok(server, model_config={"model": "gpt-4o", "temperature": 0.6})
    four = chat_ok(
        server, reasoning_effort="low", model_config={"model": "gpt-4o", "temperature": 0.5}
    )
    ids = [r["data"][0]["model_config_id"] for r in (one, two, three, four)]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert ids[0].startswith("config_")
    other_org = server.post_chat(
        body(model_config={"model": "gpt-4o", "temperature": 0.5}), key=server.key_b
    )
    assert other_org.json()["data"][0]["model_config_id"] not in ids


# --- providers -------------------------------------------------------------------------------


def test_connection_error_is_502_and_timeout_is_504(tmp_path: Any, fake: FakeOpenAI) -> None:
    import socket

    from tests.conftest import start_server

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/v1"
    dead.close()
    runner, running = start_server(tmp_path / "a", dead_url)
    with runner:
        response = running.post_chat(body())
        assert response.status_code == 502
        assert response.json()["detail"]["origin"] == "OpenAI"
    runner, running = start_server(tmp_path / "b", fake.url, provider_timeout_seconds=0.3)
    fake.enqueue(200, {}, delay=2)
    with runner:
        response = running.post_chat(body())
        assert response.status_code == 504
        assert response.json()["detail"]["type"] == "provider_timeout_error"


def test_provider_non_json_error_body(server: RunningServer, fake: FakeOpenAI) -> None:
    for _ in range(3):  # the first answer and both retries
        fake.enqueue(503, raw=b"<html>upstream unavailable</html>")
    response = server.post_chat(body())
    assert response.status_code == 503
    assert response.json()["detail"] == {
        "type": "provider_error",
        "message": "<html>upstream unavailable</html>",
        "code": 503,
        "origin": "OpenAI",
    }


def test_named_openai_compatible_provider(tmp_path: Any, fake: FakeOpenAI) -> None:
    from chatgate.settings import NamedProvider
    from tests.conftest import start_server

    runner, running = start_server(
        tmp_path, fake.url, providers={"ollama": NamedProvider(base_url=fake.url)}
    )
    with runner:
        result = running.post_chat(body(model_config={"model": "llama3.2", "provider": "ollama"}))
        assert result.status_code == 200, result.text
        assert "Authorization" not in fake.last.headers
        assert fake.last.body["model"] == "llama3.2"


def test_groq_without_key_is_a_400_naming_the_provider(server: RunningServer) -> None:
    response = server.post_chat(
        body(model_config={"model": "llama-3.1-8b-instant", "provider": "groq"})
    )
    assert response.status_code == 400
    assert "groq" in response.json()["detail"]["message"]
    assert "GROQ_API_KEY" in response.json()["detail"]["message"]


def test_base_url_is_never_taken_from_the_request(server: RunningServer, fake: FakeOpenAI) -> None:
    response = server.post_chat(
        body(model_config={"model": "gpt-4o", "other": {"base_url": "http://10.0.0.1"}})
    )
    assert response.status_code == 200
    assert fake.last.path == "/v1/chat/completions"  # still the configured server


def test_malformed_provider_success_is_502_not_500(server: RunningServer, fake: FakeOpenAI) -> None:
    fake.enqueue(200, {"choices": "not-a-list-of-choices"})
    response = server.post_chat(body())
    assert response.status_code == 502
    assert response.json()["detail"]["type"] == "provider_response_error"
    fake.enqueue(200, raw=b"not json at all")
    assert server.post_chat(body()).status_code == 502


def test_oversized_body_is_413(tmp_path: Any, fake: FakeOpenAI) -> None:
    from tests.conftest import start_server

    runner, running = start_server(tmp_path, fake.url, max_body_bytes=1000)
    with runner:
        response = running.post_chat(body(messages=[{"role": "user", "content": "x" * 2000}]))
        assert response.status_code == 413
        assert response.json()["detail"]["code"] == 413


def test_n_in_other_cannot_desynchronise_samples(server: RunningServer, fake: FakeOpenAI) -> None:
    result = chat_ok(server, model_config={"model": "gpt-4o", "other": {"n": 4}})
    assert "n" not in fake.last.body
    assert len(result["data"]) == 1
    from tests.fakes.openai_server import completion

    fake.enqueue(
        200, completion({"model": "gpt-4o", "messages": USER, "n": 3})
    )  # a provider ignoring n
    result = chat_ok(server)
    assert [d["output"] for d in result["data"]] == ["Echo: hello"]


def test_retryable_failures_are_retried_with_backoff(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    import time

    fake.enqueue(429, {"error": {"message": "slow down"}})
    fake.enqueue(503, {"error": {"message": "busy"}})
    started = time.monotonic()
    result = chat_ok(server)
    assert result["data"][0]["output"] == "Echo: hello"
    assert len(fake.requests) == 3
    assert all(r.body == fake.requests[0].body for r in fake.requests)
    assert time.monotonic() - started < 2


def test_retry_after_is_honoured(server: RunningServer, fake: FakeOpenAI) -> None:
    import time

    fake.enqueue(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0.6"})
    started = time.monotonic()
    chat_ok(server)
    assert time.monotonic() - started >= 0.6
    assert len(fake.requests) == 2


def test_client_errors_and_long_retry_after_are_not_retried(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    fake.enqueue(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
    assert server.post_chat(body()).status_code == 400
    assert len(fake.requests) == 1
    fake.reset()
    fake.enqueue(429, {"error": {"message": "come back tomorrow"}}, headers={"Retry-After": "3600"})
    response = server.post_chat(body())
    assert response.status_code == 429  # waiting longer than the retry budget: answer at once
    assert len(fake.requests) == 1


def test_retries_are_bounded(tmp_path: Any, fake: FakeOpenAI) -> None:
    from tests.conftest import start_server

    runner, running = start_server(tmp_path, fake.url, provider_max_retries=1)
    for _ in range(5):
        fake.enqueue(500, {"error": {"message": "boom"}})
    with runner:
        assert running.post_chat(body()).status_code == 500
    assert len(fake.requests) == 2


def test_price_table_gives_costs_and_unknown_models_none(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    priced = chat_ok(server, model_config={"model": "gpt-4o-2024-08-06"})
    unpriced = chat_ok(server, model_config={"model": "my-finetune"})
    with server.client() as client:
        log = client.get(f"/logs/{priced['data'][0]['id']}").json()
        other = client.get(f"/logs/{unpriced['data'][0]['id']}").json()
    assert log["prompt_cost"] == pytest.approx(1 * 2.5 / 1_000_000)  # priced as gpt-4o
    assert log["output_cost"] == pytest.approx(2 * 10.0 / 1_000_000)
    assert other["prompt_cost"] is None and other["output_cost"] is None


def stream_log(server: RunningServer, payload: dict[str, Any]) -> dict[str, Any]:
    """Stream a chat; the log of its (single) sample, fetched over HTTP."""
    from tests.api.test_streaming import parse_frames

    with server.client() as client:
        response = client.post("/chat", json={**payload, "stream": True})
        assert response.status_code == 200, response.text
        frames = parse_frames(response.content)[0]
        log: dict[str, Any] = client.get(f"/logs/{frames[0]['data'][0]['id']}").json()
    assert log["prompt_tokens"] is not None, "the stream's usage chunk was recorded"
    return {"usage": frames[-1]["usage"], **log}


@pytest.mark.parametrize("stream", [False, True])
def test_cached_and_reasoning_tokens_are_logged_and_priced(
    server: RunningServer, fake: FakeOpenAI, stream: bool
) -> None:
    # OpenAI caches prompts of 1024 tokens and more: 1100 prompt tokens, 1024 of them a cache hit.
    fake.cached_tokens, fake.reasoning_tokens = 1024, 64
    payload = body(
        model_config={"model": "o4-mini-2025-04-16"},
        messages=[{"role": "user", "content": " ".join(["word"] * 1100)}],
    )
    if stream:
        log = stream_log(server, payload)
        usage = log["usage"]
    else:
        result = chat_ok(server, **payload)
        usage = result["usage"]
        with server.client() as client:
            log = client.get(f"/logs/{result['data'][0]['id']}").json()
    generated = 1101 + 64  # "Echo: " + the 1100 words, and the hidden reasoning
    assert usage == {
        "prompt_tokens": 1100,
        "generation_tokens": generated,
        "total_tokens": 1100 + generated,
        "reasoning_tokens": 64,
        "cache_read_tokens": 1024,
    }
    assert (log["prompt_tokens"], log["output_tokens"]) == (1100, generated)
    assert (log["cache_read_tokens"], log["cache_write_tokens"]) == (1024, None)
    assert log["reasoning_tokens"] == 64
    # o4-mini per 1M tokens: input 1.10, cached input 0.275, output (reasoning included) 4.40
    assert log["prompt_cost"] == pytest.approx((76 * 1.1 + 1024 * 0.275) / 1e6)
    assert log["output_cost"] == pytest.approx(generated * 4.4 / 1e6)
    with server.client() as client:
        listed = client.get("/logs", params={"project_id": log["project_id"]}).json()["records"]
    assert [(r["id"], r["cache_read_tokens"], r["reasoning_tokens"]) for r in listed] == [
        (log["id"], 1024, 64)
    ]


def test_deepseek_cache_hits_are_cache_reads(tmp_path: Any, fake: FakeOpenAI) -> None:
    import json
    from pathlib import Path

    from tests.conftest import start_server

    transcript = Path(__file__).parents[1] / "fixtures" / "deepseek" / "reasoner_cache_hit.json"
    fake.enqueue(json_body=json.loads(transcript.read_text()))
    env = {"DEEPSEEK_BASE_URL": fake.url, "DEEPSEEK_API_KEY": "sk-deepseek-0123456789"}
    runner, running = start_server(tmp_path, "", vendor_env=env)
    with runner:
        payload = body(model_config={"provider": "deepseek", "model": "deepseek-reasoner"})
        result = running.post_chat(payload).json()
        with running.client() as client:
            log = client.get(f"/logs/{result['data'][0]['id']}").json()
    assert result["usage"] == {
        "prompt_tokens": 1100,
        "generation_tokens": 120,
        "total_tokens": 1220,
        "reasoning_tokens": 108,
        "cache_read_tokens": 1024,  # prompt_cache_hit_tokens
    }
    assert (log["cache_read_tokens"], log["reasoning_tokens"]) == (1024, 108)
    # deepseek-reasoner per 1M tokens: cache miss 0.55, cache hit 0.14, output 2.19
    assert log["prompt_cost"] == pytest.approx((76 * 0.55 + 1024 * 0.14) / 1e6)
    assert log["output_cost"] == pytest.approx(120 * 2.19 / 1e6)


def test_operator_prices_override_the_table(tmp_path: Any, fake: FakeOpenAI) -> None:
    import json

    from tests.conftest import start_server

    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"openai": {"my-finetune": {"input": 1000000, "output": 2000000}}})
    )
    runner, running = start_server(tmp_path, fake.url, prices_file=prices)
    with runner:
        result = running.post_chat(body(model_config={"model": "my-finetune"})).json()
        with running.client() as client:
            log = client.get(f"/logs/{result['data'][0]['id']}").json()
    assert (log["prompt_cost"], log["output_cost"]) == (1.0, 4.0)


@pytest.mark.parametrize("stream", [False, True])
def test_operator_prices_for_cache_reads_and_reasoning(
    tmp_path: Any, fake: FakeOpenAI, stream: bool
) -> None:
    import json

    from tests.conftest import start_server

    prices = tmp_path / "prices.json"
    # USD per 1M tokens, so per token: input 1, output 2, cache read 0.5, reasoning 3.
    entry = {"input": 1e6, "output": 2e6, "cached_input": 5e5, "reasoning": 3e6}
    prices.write_text(json.dumps({"openai": {"my-reasoner": entry}}))
    fake.cached_tokens, fake.reasoning_tokens = 2, 5
    payload = body(
        model_config={"model": "my-reasoner"}, messages=[{"role": "user", "content": "a b c d"}]
    )
    runner, running = start_server(tmp_path, fake.url, prices_file=prices)
    with runner:
        if stream:
            log = stream_log(running, payload)
        else:
            result = running.post_chat(payload).json()
            with running.client() as client:
                log = client.get(f"/logs/{result['data'][0]['id']}").json()
    # 4 prompt tokens, 2 of them cached; "Echo: a b c d" is 5 tokens, plus 5 of reasoning
    assert (log["prompt_tokens"], log["cache_read_tokens"], log["output_tokens"]) == (4, 2, 10)
    assert log["prompt_cost"] == 2 * 1 + 2 * 0.5
    assert log["output_cost"] == 5 * 2 + 5 * 3


def test_a_bad_price_file_is_refused_naming_the_entry(tmp_path: Any) -> None:
    import json

    from chatgate.app import create_app
    from chatgate.providers.prices import PriceFileError
    from chatgate.settings import Settings

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai": {"gpt-4o": {"input": 2.5, "output": -10}}}))
    settings = Settings(data_dir=tmp_path, prices_file=prices)
    with pytest.raises(PriceFileError, match=r"\['openai'\]\['gpt-4o'\]\['output'\]"):
        create_app(settings)


def test_timeouts_are_configurable_per_provider(tmp_path: Any, fake: FakeOpenAI) -> None:
    from tests.conftest import start_server

    runner, running = start_server(
        tmp_path, fake.url, provider_timeouts={"openai": 0.3}, provider_max_retries=0
    )
    fake.enqueue(200, {}, delay=2)
    with runner:
        response = running.post_chat(body())
        assert response.status_code == 504
        # Another provider keeps the default timeout.
        mock = running.post_chat(body(model_config={"model": "m", "provider": "mock"}))
        assert mock.status_code == 200
