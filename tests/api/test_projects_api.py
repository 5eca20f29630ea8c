"""The v4 Projects endpoints through the humanloop SDK against a real server and SQLite file."""

from __future__ import annotations

import time
from typing import Any

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


def chat(hl: Humanloop, project: str, text: str = "hi", **config: Any) -> Any:
    return hl.chat(
        project=project,
        model_config={"model": "m", "provider": "mock", **config},
        messages=[{"role": "user", "content": text}],
    )


def test_create_get_and_computed_fields(hl: Humanloop) -> None:
    created = hl.projects.create(name="alpha")
    assert created.id.startswith("pr_")
    assert created.name == "alpha"
    assert created.data_count == 0
    assert created.active_config is None
    assert created.users == [] and created.feedback_types is not None
    chat(hl, "alpha", "one")
    chat(hl, "alpha", "two", temperature=0.5)
    got = hl.projects.get(id=created.id)
    assert got.data_count == 2
    assert got.team_id == created.team_id
    with pytest.raises(ApiException) as caught:
        hl.projects.create(name="alpha")
    assert caught.value.status == 400


def test_list_filters_sorts_and_paginates(hl: Humanloop) -> None:
    for name in ("Banana", "apple", "cherry", "apricot"):
        hl.projects.create(name=name)
        time.sleep(0.002)
    page = hl.projects.list(size=2, page=1)
    assert page.total == 4 and page.page == 1 and page.size == 2
    assert [p.name for p in page.records] == ["apricot", "cherry"]  # newest first by default
    second = hl.projects.list(size=2, page=2)
    assert [p.name for p in second.records] == ["apple", "Banana"]
    beyond = hl.projects.list(size=2, page=3)
    assert beyond.records == [] and beyond.total == 4
    by_name = hl.projects.list(sort_by="name", order="asc", size=10)
    assert [p.name for p in by_name.records] == ["apple", "apricot", "Banana", "cherry"]
    filtered = hl.projects.list(filter="AP")
    assert sorted(p.name for p in filtered.records) == ["apple", "apricot"]
    assert filtered.total == 2
    assert hl.projects.list(user_filter="someone").total == 0
    assert hl.projects.list(page=0, size=1).page == 1


def test_list_is_per_organisation(hl: Humanloop, server: RunningServer) -> None:
    hl.projects.create(name="mine")
    other = Humanloop(api_key=server.key_b, host=server.url)
    assert other.projects.list().total == 0
    other.projects.create(name="mine")  # the same name in another organisation is fine
    assert other.projects.list().total == 1


def test_update_renames_and_sets_the_active_config(hl: Humanloop) -> None:
    created = hl.projects.create(name="before")
    registered = hl.model_configs.register(project_id=created.id, model="m", provider="mock")
    updated = hl.projects.update(id=created.id, name="after", active_config_id=registered.config.id)
    assert updated.name == "after"
    assert updated.active_config.config.id == registered.config.id
    assert updated.config_type == "model"
    # The chat path's cache must follow the rename: the old name is a new project now.
    response = chat(hl, "before")
    assert response.project_id != created.id
    assert chat(hl, "after").project_id == created.id
    with pytest.raises(ApiException) as caught:
        hl.projects.update(id=created.id, active_config_id="config_missing")
    assert caught.value.status == 404
    hl.projects.create(name="taken")
    with pytest.raises(ApiException) as caught:
        hl.projects.update(id=created.id, name="taken")
    assert caught.value.status == 400


def test_delete_removes_the_project_its_logs_and_cached_names(
    hl: Humanloop, server: RunningServer
) -> None:
    first = chat(hl, "doomed")
    project_id = first.project_id
    registered = hl.model_configs.register(project_id=project_id, model="m", provider="mock")
    hl.projects.deploy_config(project_id=project_id, config_id=registered.config.id)
    hl.projects.delete(id=project_id)
    with pytest.raises(ApiException) as caught:
        hl.projects.get(id=project_id)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        hl.logs.get(id=first.data[0].id)
    assert caught.value.status == 404
    # The name resolves to a fresh project, not the deleted (cached) one.
    again = chat(hl, "doomed")
    assert again.project_id != project_id
    with server.client() as client:
        by_id = client.post(
            "/chat",
            json={
                "project_id": project_id,
                "model_config": {"model": "m", "provider": "mock"},
                "messages": [{"role": "user", "content": "x"}],
            },
        )
    assert by_id.status_code == 404
    with pytest.raises(ApiException) as caught:
        hl.projects.delete(id=project_id)
    assert caught.value.status == 404


def test_configs_lists_used_and_registered_configs(hl: Humanloop) -> None:
    used = chat(hl, "cfgs", "a")
    chat(hl, "cfgs", "b")
    registered = hl.model_configs.register(project="cfgs", model="other", provider="mock")
    configs = hl.projects.list_configs(id=used.project_id)
    by_id = {c.config.id: c for c in configs}
    assert set(by_id) == {used.data[0].model_config_id_, registered.config.id}
    assert by_id[used.data[0].model_config_id_].num_datapoints == 2
    assert by_id[registered.config.id].num_datapoints == 0
    assert all(c.project_name == "cfgs" for c in configs)


def test_deployments_and_active_config(hl: Humanloop) -> None:
    project = hl.projects.create(name="deploy")
    envs = hl.projects.list_deployed_configs(id=project.id)
    assert [(e.environment_name, e.environment_tag) for e in envs] == [("production", "default")]
    assert envs[0].model_config_id_ is None
    env_id = envs[0].environment_id
    with pytest.raises(ApiException) as caught:
        hl.projects.get_active_config(id=project.id)
    assert caught.value.status == 404

    registered = hl.model_configs.register(project_id=project.id, model="m", provider="mock")
    deployed = hl.projects.deploy_config(
        project_id=project.id, config_id=registered.config.id, environments=[{"id": env_id}]
    )
    assert deployed[0].model_config_id_ == registered.config.id
    active = hl.projects.get_active_config(id=project.id)
    assert active.config.id == registered.config.id
    assert active.environment_id == env_id
    assert hl.projects.get_active_config(id=project.id, environment="production").config.id == (
        registered.config.id
    )
    assert hl.projects.get(id=project.id).active_config.config.id == registered.config.id

    after = hl.projects.deactivate_config(id=project.id)
    assert after.active_config is None
    with pytest.raises(ApiException) as caught:
        hl.projects.deactivate_config(id=project.id)
    assert caught.value.status == 404

    hl.projects.deploy_config(project_id=project.id, config_id=registered.config.id)
    hl.projects.delete_deployed_config(project_id=project.id, environment_id=env_id)
    assert hl.projects.list_deployed_configs(id=project.id)[0].model_config_id_ is None
    with pytest.raises(ApiException) as caught:
        hl.projects.delete_deployed_config(project_id=project.id, environment_id=env_id)
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        hl.projects.deploy_config(
            project_id=project.id, config_id=registered.config.id, environments=[{"id": "env_x"}]
        )
    assert caught.value.status == 404


def test_another_organisation_gets_404_everywhere(hl: Humanloop, server: RunningServer) -> None:
    project = hl.projects.create(name="secret")
    registered = hl.model_configs.register(project_id=project.id, model="m", provider="mock")
    hl.projects.deploy_config(project_id=project.id, config_id=registered.config.id)
    env_id = hl.projects.list_deployed_configs(id=project.id)[0].environment_id
    other = Humanloop(api_key=server.key_b, host=server.url)
    own = other.projects.create(name="own")
    calls = [
        lambda: other.projects.get(id=project.id),
        lambda: other.projects.update(id=project.id, name="x"),
        lambda: other.projects.delete(id=project.id),
        lambda: other.projects.list_configs(id=project.id),
        lambda: other.projects.get_active_config(id=project.id),
        lambda: other.projects.deactivate_config(id=project.id),
        lambda: other.projects.list_deployed_configs(id=project.id),
        lambda: other.projects.deploy_config(project_id=project.id, config_id=registered.config.id),
        lambda: other.projects.delete_deployed_config(project_id=project.id, environment_id=env_id),
        # Their own project, with our config or our environment.
        lambda: other.projects.deploy_config(project_id=own.id, config_id=registered.config.id),
        lambda: other.projects.update(id=own.id, active_config_id=registered.config.id),
        lambda: other.projects.delete_deployed_config(project_id=own.id, environment_id=env_id),
    ]
    for call in calls:
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == 404
        assert caught.value.body["detail"]["type"] == "not_found_error"
    assert hl.projects.get(id=project.id).active_config.config.id == registered.config.id


def test_http_auth_and_validation(server: RunningServer) -> None:
    with server.client("cg_wrong") as client:
        assert client.get("/projects").status_code == 401
        assert client.post("/projects", json={}).status_code == 401
    with server.client() as client:
        missing = client.post("/projects", json={})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "name"]
        bad_sort = client.get("/projects", params={"sort_by": "size"})
        assert bad_sort.status_code == 422
        created = client.post("/projects", json={"name": "plain"})
        assert created.status_code == 201
        body = created.json()
        for key in ("id", "name", "users", "data_count", "feedback_types", "team_id"):
            assert key in body
        assert body["created_at"].endswith("Z")
        deleted = client.delete(f"/projects/{body['id']}")
        assert deleted.status_code == 204 and deleted.content == b""


def test_feedback_types_are_the_projects_own(hl: Humanloop, server: RunningServer) -> None:
    project = hl.projects.create(name="fb")
    with server.client() as client:
        created = client.post(
            f"/projects/{project.id}/feedback-types",
            json={
                "type": "mood",
                "class": "select",
                "values": [{"value": "happy", "sentiment": "positive"}],
            },
        )
        assert created.status_code == 201, created.text
        types = client.get(f"/projects/{project.id}").json()["feedback_types"]
    assert "mood" in [t["type"] for t in types]
