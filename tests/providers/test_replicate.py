"""The Replicate predictions wire: the exact prediction request built from v4 requests, and the v4
responses, logs and errors produced from Replicate's answers, through a real chatgate server and
a fake Replicate API speaking the real wire (transcripts in tests/fixtures/replicate)."""

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
from chatgate.providers import replicate as replicate_wire
from chatgate.providers.replicate import ReplicateWire
from tests.conftest import RunningServer, start_server
from tests.fakes.replicate_server import FakeReplicate, sse
from tests.providers._transcripts import read_json, read_pieces

FIXTURES = Path(__file__).parent.parent / "fixtures" / "replicate"
ENV_KEY = "r8_env0123456789abcdef"
SPEC = BUILTIN["replicate"]
MODEL = "meta/meta-llama-3-8b-instruct"
USER = Message("user", "Hi")


fixture_json = functools.partial(read_json, FIXTURES)


fixture_pieces = functools.partial(read_pieces, FIXTURES, size=23)


@pytest.fixture(scope="session")
def fake_replicate_server() -> Iterator[FakeReplicate]:
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture
def replicate(
    fake_replicate_server: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> FakeReplicate:
    fake_replicate_server.reset()
    monkeypatch.setattr(replicate_wire, "POLL_INTERVAL", 0.01)
    return fake_replicate_server


@pytest.fixture
def server(tmp_path: Path, replicate: FakeReplicate) -> Iterator[RunningServer]:
    runner, running = start_server(
        tmp_path,
        "",
        vendor_env={"REPLICATE_BASE_URL": replicate.url, "REPLICATE_API_TOKEN": ENV_KEY},
        provider_max_retries=0,  # each scripted error answers exactly one call
    )
    with runner:
        yield running


def body(**overrides: Any) -> dict[str, Any]:
    config = {"provider": "replicate", "model": MODEL, **overrides.pop("model_config", {})}
    return {
        "project": "llama",
        "model_config": config,
        "messages": [{"role": "user", "content": "tell me a story"}],
        **overrides,
    }


def prepare(*messages: Message, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    config_fields = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ModelConfig.__dataclass_fields__ and k not in ("provider", "model")
    }
    config = ModelConfig(provider="replicate", model=kwargs.pop("model", MODEL), **config_fields)
    call = ChatCall(config=config, messages=messages, api_key="r8_secret", **kwargs)
    upstream = ReplicateWire().prepare(call, SPEC)
    assert upstream.headers == {"Prefer": "wait", "Authorization": "Bearer r8_secret"}
    assert "r8_secret" not in json.dumps(upstream.body)
    return upstream.url, upstream.body


def refusal(*messages: Message, **kwargs: Any) -> list[Any]:
    with pytest.raises(InvalidRequest) as caught:
        prepare(*messages, **kwargs)
    (problem_,) = caught.value.problems
    assert "replicate" in problem_.msg
    return list(problem_.loc)


# --- the provider request -----------------------------------------------------------------------


def test_one_user_message_is_the_prompt_and_sampling_fields_use_the_models_names() -> None:
    url, sent = prepare(
        Message("system", "You are terse."),
        Message("user", [{"type": "text", "text": "Write a haiku"}]),
        max_tokens=64,
        temperature=0.7,
        top_p=0.95,
        stop=["<|eot_id|>", "END"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        other={"top_k": 50, "prompt": "ignored", "min_tokens": 1},
    )
    assert url == "https://api.replicate.com/v1/models/meta/meta-llama-3-8b-instruct/predictions"
    assert sent == {
        "input": {
            "top_k": 50,
            "prompt": "Write a haiku",
            "min_tokens": 1,
            "system_prompt": "You are terse.",
            "max_tokens": 64,
            "temperature": 0.7,
            "top_p": 0.95,
            "stop_sequences": "<|eot_id|>,END",
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
        }
    }


def test_a_conversation_is_rendered_as_a_transcript() -> None:
    _, sent = prepare(
        Message("system", "Be kind."),
        Message("user", "Hi"),
        Message("assistant", "Hello! How can I help?"),
        Message("system", "Answer in French."),
        Message("user", "Tell me a joke"),
        stream=True,
    )
    assert sent == {
        "input": {
            "prompt": "User: Hi\n\nAssistant: Hello! How can I help?\n\nUser: Tell me a joke",
            "system_prompt": "Be kind.\n\nAnswer in French.",
            "temperature": 1.0,
            "top_p": 1.0,
        },
        "stream": True,
    }


@pytest.mark.parametrize(
    ("model", "path", "version"),
    [
        (
            "meta/meta-llama-3-70b-instruct",
            "/v1/models/meta/meta-llama-3-70b-instruct/predictions",
            None,
        ),
        ("a" * 64, "/v1/predictions", "a" * 64),
        ("acme/my-llm:" + "b" * 64, "/v1/predictions", "b" * 64),
    ],
)
def test_model_names_and_version_ids(model: str, path: str, version: str | None) -> None:
    url, sent = prepare(USER, model=model)
    assert url == f"https://api.replicate.com{path}"
    assert sent.get("version") == version


def test_parameters_replicate_cannot_honour_are_422() -> None:
    weather = Tool(name="get_weather", parameters={"type": "object"})
    assert refusal(USER, tools=(weather,)) == ["body", "model_config", "tools"]
    assert refusal(USER, tool_choice="required") == ["body", "tool_choice"]
    assert refusal(USER, response_format={"type": "json_object"}) == [
        "body",
        "model_config",
        "response_format",
    ]
    assert refusal(USER, reasoning_effort="low") == ["body", "model_config", "reasoning_effort"]
    assert refusal(USER, stop=["a,b"]) == ["body", "model_config", "stop", 0]
    image = Message("user", [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    assert refusal(image) == ["body", "messages", 0, "content", 0]
    assert refusal(Message("user", "Hi", name="bob")) == ["body", "messages", 0, "name"]
    calls = Message("assistant", None, tool_calls=(ToolCall("c", "f", "{}"),))
    assert refusal(USER, calls) == ["body", "messages", 1, "tool_calls"]
    assert refusal(USER, Message("tool", "x", tool_call_id="c")) == ["body", "messages", 1, "role"]


def test_v4_defaults_are_not_refused() -> None:
    _, sent = prepare(
        USER, response_format={"type": "text"}, tool_choice="none", presence_penalty=0.0
    )
    assert sent == {"input": {"prompt": "Hi", "temperature": 1.0, "top_p": 1.0}}


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
    "provider_response",
    "messages",
    "error",
)


def test_synchronous_prediction_joins_the_output_tokens(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.enqueue(201, fixture_json("prediction_succeeded.json"))
    response = server.post_chat(body(model_config={"max_tokens": 64}))
    assert response.status_code == 200, response.text
    (created,) = replicate.requests
    assert created.path == f"/v1/models/{MODEL}/predictions"
    assert created.headers["Authorization"] == f"Bearer {ENV_KEY}"
    assert created.headers["Prefer"] == "wait"
    result = response.json()
    assert result["provider_request"] == created.body
    data = result["data"][0]
    assert data["output"] == "Soft wool on the hills,\nllamas hum at dusk"
    assert data["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 17, "generation_tokens": 11, "total_tokens": 28}
    assert result["provider_responses"] == [fixture_json("prediction_succeeded.json")]


def test_a_prediction_still_processing_is_polled_until_it_finishes(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.polls = 2
    response = server.post_chat(body())
    assert response.status_code == 200, response.text
    assert [(r.method, r.path) for r in replicate.requests] == [
        ("POST", f"/v1/models/{MODEL}/predictions"),
        ("GET", "/v1/predictions/fake1"),
        ("GET", "/v1/predictions/fake1"),
        ("GET", "/v1/predictions/fake1"),
    ]
    assert all(r.headers["Authorization"] == f"Bearer {ENV_KEY}" for r in replicate.requests)
    result = response.json()
    assert result["data"][0]["output"] == "Echo: tell me a story"
    assert result["provider_responses"][0]["status"] == "succeeded"


def test_polling_is_bounded_in_time(
    server: RunningServer, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicate_wire, "POLL_DEADLINE", 0.2)
    replicate.polls = 10_000
    response = server.post_chat(body())
    assert response.status_code == 504
    assert response.json()["detail"]["origin"] == "Replicate"


def test_streamed_log_equals_the_non_streamed_log(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    plain = server.post_chat(body()).json()
    replicate.reset()
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 200, streamed.text
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames] == ["Echo: ", "tell ", "me ", "a ", "story", ""]
    created = replicate.created[0]
    assert created.body["stream"] is True and "Prefer" not in created.headers
    assert [(r.method, r.path) for r in replicate.requests[1:]] == [
        ("GET", "/v1/streams/fake1"),
        ("GET", "/v1/predictions/fake1"),
    ]
    assert replicate.requests[1].headers["Accept"] == "text/event-stream"
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "stop"
    assert last["usage"] == plain["usage"]
    plain_log = server.get_log(plain["data"][0]["id"])
    streamed_log = server.get_log(last["data"][0]["id"])
    for key in COMPARED:
        if key == "provider_response":  # the streamed prediction also has urls.stream
            urls = streamed_log[key].pop("urls")
            assert urls.pop("stream").endswith("/v1/streams/fake1")
            assert urls == plain_log[key].pop("urls")
        assert streamed_log[key] == plain_log[key], key


def test_multi_line_output_events(server: RunningServer, replicate: FakeReplicate) -> None:
    replicate.enqueue_stream(fixture_pieces("stream_multiline.sse"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    frames = parse_frames(streamed.content)
    assert [f["data"][0]["output"] for f in frames][:2] == ["Line one", "\nline two"]


def test_provider_errors_keep_status_with_the_problem_detail(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.enqueue(422, fixture_json("error_invalid_input.json"))
    response = server.post_chat(body())
    assert response.status_code == 422
    assert response.json() == {
        "detail": {
            "type": "invalid_request_error",
            "message": "- input.max_tokens: Must be less than or equal to 8192\n",
            "code": 422,
            "origin": "Replicate",
        }
    }
    replicate.enqueue(401, fixture_json("error_unauthenticated.json"))
    with server.client() as client:
        streamed = client.post("/chat", json=body(stream=True))
    assert streamed.status_code == 401
    assert streamed.json()["detail"]["type"] == "authentication_error"
    assert streamed.json()["detail"]["message"] == "You did not pass a valid authentication token"


def test_request_key_wins_and_goes_only_in_the_header(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    response = server.post_chat(body(provider_api_keys={"replicate": "r8_request"}))
    assert response.status_code == 200
    assert replicate.last_header("Authorization") == "Bearer r8_request"
    assert "r8_request" not in json.dumps(response.json())


def test_a_failed_prediction_is_a_plain_error(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.enqueue(201, fixture_json("prediction_failed.json"))
    response = server.post_chat(body())
    assert response.status_code == 502
    assert response.json()["detail"] == {
        "type": "prediction_failed",
        "message": "CUDA out of memory. Tried to allocate 2.00 GiB",
        "code": 502,
        "origin": "Replicate",
    }


def test_error_event_mid_stream_keeps_the_partial_output(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.enqueue_stream(fixture_pieces("stream_error_midway.sse"))
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 200
    frames = parse_frames(response.content)
    assert frames[0]["data"][0]["output"] == "Once"
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["origin"] == "Replicate"
    log = server.get_log(last["data"][0]["id"])
    assert log["output"] == "Once upon"
    assert log["error"] == "Prediction interrupted; please retry (code: PA)"
    assert log["provider_response"]["id"] == "fake1"


def test_error_event_before_output_is_a_plain_error(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.enqueue_stream([sse("error", json.dumps({"detail": "model crashed"}))])
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    assert response.status_code == 502
    assert response.json()["detail"]["message"] == "model crashed"


def test_a_stream_cut_short_is_an_error(server: RunningServer, replicate: FakeReplicate) -> None:
    replicate.enqueue_stream([sse("output", "Once")])  # no done
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True))
    last = parse_frames(response.content)[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502


def test_unsupported_parameter_is_a_422_before_any_call(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    response = server.post_chat(
        body(model_config={"tools": [{"name": "f", "parameters": {"type": "object"}}]})
    )
    assert response.status_code == 422
    (problem_,) = response.json()["detail"]
    assert problem_["loc"] == ["body", "model_config", "tools"]
    assert "replicate" in problem_["msg"]
    assert replicate.requests == []


def test_num_samples_runs_concurrent_predictions_with_usage_per_sample(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    replicate.delay = 0.3
    response = server.post_chat(body(num_samples=2))
    assert response.status_code == 200, response.text
    assert len(replicate.created) == 2 and replicate.max_in_flight == 2
    result = response.json()
    assert {d["output"] for d in result["data"]} == {"Echo: tell me a story"}
    assert {r["id"] for r in result["provider_responses"]} == {"fake1", "fake2"}
    logs = [server.get_log(d["id"]) for d in result["data"]]
    assert [(log["prompt_tokens"], log["output_tokens"]) for log in logs] == [(4, 5), (4, 5)]
    assert result["usage"] == {"prompt_tokens": 8, "generation_tokens": 10, "total_tokens": 18}


def test_num_samples_streamed(server: RunningServer, replicate: FakeReplicate) -> None:
    with server.client() as client:
        response = client.post("/chat", json=body(stream=True, num_samples=2))
    assert response.status_code == 200, response.text
    frames = parse_frames(response.content)
    for index in (0, 1):
        mine = [f["data"][0] for f in frames if f["data"][0]["index"] == index]
        assert "".join(d["output"] for d in mine) == "Echo: tell me a story"
        assert mine[-1]["finish_reason"] == "stop"


def test_humanloop_sdk_0_7_35_chats_with_replicate(
    server: RunningServer, replicate: FakeReplicate
) -> None:
    from humanloop import Humanloop

    hl = Humanloop(api_key=server.key_a, host=server.url)
    response = hl.chat(
        project="sdk-llama",
        model_config={
            "provider": "replicate",
            "model": MODEL,
            "max_tokens": 100,
            "temperature": 0.6,
            "top_p": 0.9,
            "chat_template": [{"role": "system", "content": "You are {{ persona }}."}],
        },
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Ahoy there"}],
    )
    assert replicate.created[-1].body == {
        "input": {
            "prompt": "Ahoy there",
            "system_prompt": "You are a pirate.",
            "max_tokens": 100,
            "temperature": 0.6,
            "top_p": 0.9,
        }
    }
    assert response.data[0].output == "Echo: Ahoy there"
    assert response.data[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 2

    async def stream() -> list[dict[str, Any]]:
        streamed = await hl.chat_stream(
            project="sdk-llama",
            model_config={"provider": "replicate", "model": MODEL},
            messages=[{"role": "user", "content": "stream this"}],
        )
        return [chunk async for chunk in streamed.content]

    chunks = asyncio.run(stream())
    assert [c["output"] for c in chunks] == ["Echo: ", "stream ", "this", ""]
    assert chunks[-1]["finish_reason"] == "stop"


def test_base_url_and_key_come_only_from_the_environment() -> None:
    registry = build_registry({}, {"REPLICATE_BASE_URL": "http://replicate.internal:8080/"})
    assert registry["replicate"].base_url == "http://replicate.internal:8080/"
    assert registry["replicate"].key_env == "REPLICATE_API_TOKEN"
    call = ChatCall(ModelConfig(provider="replicate", model=MODEL), (USER,), api_key="k")
    call.base_url = registry["replicate"].base_url
    upstream = ReplicateWire().prepare(call, registry["replicate"])
    assert upstream.url == f"http://replicate.internal:8080/v1/models/{MODEL}/predictions"


def test_the_token_is_not_sent_to_other_hosts() -> None:
    call = ChatCall(ModelConfig(provider="replicate", model=MODEL), (USER,), api_key="r8_k")
    upstream = ReplicateWire().prepare(call, SPEC)
    client = replicate_wire.Client(None, upstream, SPEC)  # type: ignore[arg-type]
    assert client._headers("https://api.replicate.com/v1/predictions/x") == {
        "Authorization": "Bearer r8_k"
    }
    assert client._headers("https://streaming-api.svc.us.c.replicate.com/v1/streams/x") == {
        "Authorization": "Bearer r8_k"
    }
    assert client._headers("https://evil.example/v1/predictions/x") == {}
    assert client._headers("http://stream.replicate.com/x") == {}
