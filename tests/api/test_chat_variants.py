"""POST /v4/chat-model-config and /v4/chat-deployed through the humanloop SDK and plain HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer
from tests.fakes.openai_server import FakeOpenAI

TEMPLATE = [{"role": "system", "content": "You are {{persona}}."}]


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


def register(hl: Humanloop, project: str = "variants", **config: Any) -> Any:
    config.setdefault("model", "gpt-4o")
    config.setdefault("chat_template", TEMPLATE)
    return hl.model_configs.register(project=project, **config)


async def collect(stream: Any) -> list[dict[str, Any]]:
    response = await stream
    return [chunk async for chunk in response.content]


def test_chat_model_config_uses_the_stored_config(hl: Humanloop, fake: FakeOpenAI) -> None:
    registered = register(hl, temperature=0.3, max_tokens=40)
    config_id = registered.config.id
    response = hl.chat_model_config(
        model_config_id=config_id,
        project="variants",
        inputs={"persona": "a pirate"},
        messages=[{"role": "user", "content": "Ahoy"}],
    )
    sent = fake.last.body
    assert sent["model"] == "gpt-4o"
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 40
    assert sent["messages"] == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Ahoy"},
    ]
    data = response.data[0]
    assert data.output == "Echo: Ahoy"
    # The same config, not a copy: its id is the registered one, and the log says so.
    assert data.model_config_id_ == config_id
    assert response.project_id == registered.project_id
    assert hl.logs.get(id=data.id).config.id == config_id


def test_chat_model_config_defaults_to_the_registered_project(hl: Humanloop) -> None:
    registered = register(hl, project="home", provider="mock")
    response = hl.chat_model_config(
        model_config_id=registered.config.id,
        inputs={"persona": "x"},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert response.project_id == registered.project_id
    assert response.data[0].output == "You said: hi"


def test_chat_model_config_stream(hl: Humanloop) -> None:
    registered = register(hl, provider="mock", model="m")
    chunks = asyncio.run(
        collect(
            hl.chat_model_config_stream(
                model_config_id=registered.config.id,
                project="variants",
                inputs={"persona": "x"},
                messages=[{"role": "user", "content": "stream me"}],
            )
        )
    )
    assert "".join(c["output"] for c in chunks) == "You said: stream me"
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["model_config_id"] == registered.config.id


def test_chat_model_config_unknown_or_foreign_config_is_404(
    hl: Humanloop, server: RunningServer
) -> None:
    registered = register(hl, provider="mock")
    other = Humanloop(api_key=server.key_b, host=server.url)
    for client, config_id in ((hl, "config_missing"), (other, registered.config.id)):
        with pytest.raises(ApiException) as caught:
            client.chat_model_config(
                model_config_id=config_id,
                project="x",
                messages=[{"role": "user", "content": "hi"}],
            )
        assert caught.value.status == 404
        assert caught.value.body["detail"]["type"] == "not_found_error"


def test_chat_model_config_http_validation(server: RunningServer) -> None:
    with server.client() as client:
        missing = client.post("/chat-model-config", json={"messages": []})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "model_config_id"]
        extra = client.post(
            "/chat-model-config",
            json={"model_config_id": "c", "messages": [], "model_config": {"model": "m"}},
        )
        assert extra.status_code == 422
        assert extra.json()["detail"][0]["type"] == "extra_forbidden"
    with server.client("cg_wrong") as client:
        assert client.post("/chat-model-config", json={}).status_code == 401


def deploy(hl: Humanloop, project: str, **config: Any) -> tuple[str, str]:
    registered = register(hl, project=project, **config)
    hl.projects.deploy_config(project_id=registered.project_id, config_id=registered.config.id)
    return registered.project_id, registered.config.id


def test_chat_deployed_uses_the_default_environment(hl: Humanloop) -> None:
    project_id, config_id = deploy(hl, "deployed", provider="mock", model="m")
    response = hl.chat_deployed(
        project="deployed", inputs={"persona": "x"}, messages=[{"role": "user", "content": "yo"}]
    )
    assert response.data[0].model_config_id_ == config_id
    assert response.project_id == project_id
    assert response.data[0].output == "You said: yo"
    by_id = hl.chat_deployed(
        project_id=project_id,
        environment="production",
        inputs={"persona": "x"},
        messages=[{"role": "user", "content": "again"}],
    )
    assert by_id.data[0].model_config_id_ == config_id


def test_chat_deployed_stream(hl: Humanloop) -> None:
    deploy(hl, "deployed-stream", provider="mock", model="m")
    chunks = asyncio.run(
        collect(
            hl.chat_deployed_stream(
                project="deployed-stream",
                inputs={"persona": "x"},
                messages=[{"role": "user", "content": "two words"}],
            )
        )
    )
    assert "".join(c["output"] for c in chunks) == "You said: two words"


def test_chat_deployed_follows_the_named_environment(hl: Humanloop, server: RunningServer) -> None:
    store = server.store()
    org_id = store.orgs.org_id_by_name("acme")
    assert org_id is not None
    staging = store.projects.create_environment(org_id, "staging")
    assert staging is not None
    store.close()
    project_id, prod_config = deploy(hl, "envs", provider="mock", model="m")
    staged = register(hl, project="envs", provider="mock", model="m", temperature=0.5)
    hl.projects.deploy_config(
        project_id=project_id, config_id=staged.config.id, environments=[{"id": staging.id}]
    )
    ask: dict[str, Any] = {
        "project": "envs",
        "inputs": {"persona": "x"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert hl.chat_deployed(**ask).data[0].model_config_id_ == prod_config
    assert (
        hl.chat_deployed(environment="staging", **ask).data[0].model_config_id_ == staged.config.id
    )
    with pytest.raises(ApiException) as caught:
        hl.chat_deployed(environment="nowhere", **ask)
    assert caught.value.status == 404


def test_chat_deployed_without_deployment_or_for_another_org_is_404(
    hl: Humanloop, server: RunningServer
) -> None:
    register(hl, project="undeployed", provider="mock")
    project_id, _ = deploy(hl, "mine", provider="mock")
    other = Humanloop(api_key=server.key_b, host=server.url)
    cases = [
        (hl, {"project": "undeployed"}),
        (hl, {"project": "never-created"}),
        (other, {"project_id": project_id}),
        (other, {"project": "mine"}),
    ]
    for client, target in cases:
        with pytest.raises(ApiException) as caught:
            client.chat_deployed(
                inputs={"persona": "x"}, messages=[{"role": "user", "content": "hi"}], **target
            )
        assert caught.value.status == 404, target
    with server.client() as client:
        missing = client.post("/chat-deployed", json={"messages": []})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "project"]
