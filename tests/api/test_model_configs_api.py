"""POST/GET /v4/model-configs and the .prompt format (export, serialize, deserialize)."""

from __future__ import annotations

from typing import Any

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer

CONFIG: dict[str, Any] = {
    "model": "gpt-4o",
    "provider": "openai",
    "temperature": 0.7,
    "max_tokens": 120,
    "stop": ["END"],
    "seed": 3,
    "other": {"logit_bias": {"50256": -100}},
    "response_format": {"type": "json_object"},
    "tools": [
        {
            "name": "lookup",
            "description": "Find a thing",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ],
    "chat_template": [
        {"role": "system", "content": "You are {{persona}}.\n\n  Indented line\n"},
        {"role": "user", "content": "Question: {{q}}"},
        {"role": "assistant", "content": ""},
    ],
}


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


def test_register_is_get_or_create_and_matches_chat(hl: Humanloop) -> None:
    first = hl.model_configs.register(project="mc", name="v1", **CONFIG)
    again = hl.model_configs.register(project="mc", **CONFIG)
    assert first.config.id.startswith("config_")
    assert again.config.id == first.config.id
    assert first.project_name == "mc" and first.project_id.startswith("pr_")
    assert first.num_datapoints == 0
    different = hl.model_configs.register(project="mc", **{**CONFIG, "temperature": 0.1})
    assert different.config.id != first.config.id
    # /v4/chat with the same parameters logs against the same config.
    chat = hl.chat(
        project="mc",
        model_config={**CONFIG, "provider": "mock", "model": "gpt-4o"},
        inputs={"persona": "p", "q": "x"},
        messages=[{"role": "user", "content": "hi"}],
    )
    mock_config = hl.model_configs.register(project="mc", **{**CONFIG, "provider": "mock"})
    assert chat.data[0].model_config_id_ == mock_config.config.id
    assert mock_config.num_datapoints == 1


def test_get_returns_the_config(hl: Humanloop) -> None:
    registered = hl.model_configs.register(project="mc", name="named", **CONFIG)
    got = hl.model_configs.get(id=registered.config.id)
    assert got.id == registered.config.id
    assert got.type == "model"
    assert got.name == "named"
    assert got.model == "gpt-4o" and got.temperature == 0.7 and got.max_tokens == 120
    assert got.stop == ["END"] and got.seed == 3
    assert [m.content for m in got.chat_template] == [m["content"] for m in CONFIG["chat_template"]]


def test_register_needs_a_project_and_refuses_completion_configs(server: RunningServer) -> None:
    with server.client() as client:
        no_project = client.post("/model-configs", json={"model": "m"})
        assert no_project.status_code == 422
        assert no_project.json()["detail"][0]["loc"] == ["body", "project"]
        no_model = client.post("/model-configs", json={"project": "p"})
        assert no_model.status_code == 422
        assert no_model.json()["detail"][0]["loc"] == ["body", "model"]
        extra = client.post("/model-configs", json={"project": "p", "model": "m", "bogus": 1})
        assert extra.status_code == 422
        completion = client.post(
            "/model-configs", json={"project": "p", "model": "m", "prompt_template": "{{x}}"}
        )
        assert completion.status_code == 501
        assert completion.json()["detail"]["type"] == "not_implemented_error"
        bad_provider = client.post(
            "/model-configs", json={"project": "p", "model": "m", "provider": "nope"}
        )
        assert bad_provider.status_code == 422


def test_another_organisation_gets_404(hl: Humanloop, server: RunningServer) -> None:
    registered = hl.model_configs.register(project="mc", **CONFIG)
    other = Humanloop(api_key=server.key_b, host=server.url)
    with pytest.raises(ApiException) as caught:
        other.model_configs.get(id=registered.config.id)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        other.model_configs.export(id=registered.config.id)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        other.model_configs.register(project_id=registered.project_id, model="m")
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        hl.model_configs.get(id="config_missing")
    assert caught.value.status == 404


EXPECTED_PROMPT = """---
model: gpt-4o
temperature: 0.7
max_tokens: 120
top_p: 1.0
presence_penalty: 0.0
frequency_penalty: 0.0
provider: openai
endpoint: chat
stop:
- END
seed: 3
response_format:
  type: json_object
other:
  logit_bias:
    '50256': -100
tools:
- name: lookup
  description: Find a thing
  parameters:
    type: object
    properties:
      q:
        type: string
---
<system>
  You are {{persona}}.

    Indented line

</system>

<user>
  Question: {{q}}
</user>

<assistant>

</assistant>
"""


def test_export_and_serialize_write_the_prompt_format(hl: Humanloop) -> None:
    registered = hl.model_configs.register(project="mc", **CONFIG)
    assert hl.model_configs.export(id=registered.config.id) == EXPECTED_PROMPT
    assert hl.model_configs.serialize(**CONFIG) == EXPECTED_PROMPT


def test_deserialize_round_trips_exactly(hl: Humanloop) -> None:
    registered = hl.model_configs.register(project="mc", **CONFIG)
    parsed = hl.model_configs.deserialize(config=EXPECTED_PROMPT)
    # Same parameters, so the same config id; and text -> config -> text is the identity.
    assert parsed.id == registered.config.id
    assert hl.model_configs.export(id=parsed.id) == EXPECTED_PROMPT
    got = hl.model_configs.get(id=parsed.id)
    assert got.other == CONFIG["other"] and got.seed == 3


def test_prompt_format_errors_are_422(server: RunningServer) -> None:
    with server.client() as client:
        for text in (
            "no front matter",
            "---\nmodel: m\n",
            "---\nmodel: m\n---\n<robot>\n</robot>\n",
        ):
            response = client.post("/model-configs/deserialize", json={"config": text})
            assert response.status_code == 422, text
            assert response.json()["detail"][0]["loc"][:2] == ["body", "config"]
        missing_model = client.post("/model-configs/deserialize", json={"config": "---\n{}\n---\n"})
        assert missing_model.status_code == 422
        parts = client.post(
            "/model-configs/serialize",
            json={
                "model": "m",
                "chat_template": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            },
        )
        assert parts.status_code == 422
        assert parts.json()["detail"][0]["loc"] == ["body", "chat_template.0"]
    with server.client("cg_wrong") as client:
        assert client.post("/model-configs/serialize", json={"model": "m"}).status_code == 401
