"""Logs endpoints (list, log, get, update, delete) through the real SDK against a real server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer

CONFIG = {"model": "gpt-4o", "provider": "openai", "temperature": 0.3}


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


@pytest.fixture
def hl_b(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_b, host=server.url)


def log(hl: Humanloop, **fields: Any) -> Any:
    return hl.log(**{"project": "logged", "config": CONFIG, **fields})


def test_log_is_durably_stored_and_read_back_with_every_field(
    hl: Humanloop, server: RunningServer
) -> None:
    created = log(
        hl,
        inputs={"city": "Paris"},
        output="Sunny",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        output_message={"role": "assistant", "content": "Sunny"},
        metadata={"tenant": "blue"},
        source="batch-job",
        reference_id="ref-1",
        judgment="good",
        environment="production",
        stdout="called the weather API",
        duration=1.5,
        prompt_tokens=7,
        output_tokens=1,
        prompt_cost=0.01,
        output_cost=0.02,
        provider_request={"model": "gpt-4o"},
        provider_response={"id": "cmpl-1"},
        feedback={"type": "rating", "value": "good", "user": "ann"},
    )
    assert created.id.startswith("data_") and created.project_id.startswith("pr_")
    assert created.session_id is None

    # The 200 means committed: another connection to the database file sees the row.
    store = server.store()
    assert store.logs.log(store.orgs.org_id_by_name("acme") or "", created.id) is not None
    store.close()

    got = hl.logs.get(id=created.id)
    assert got.project == "logged"
    assert got.inputs == {"city": "Paris"} and got.output == "Sunny"
    assert got.messages[0].content == "Weather in Paris?"
    assert got.output_message.content == "Sunny"
    assert got.metadata == {"tenant": "blue"} and got.source == "batch-job"
    assert got.reference_id == "ref-1" and got.judgment == "good"
    assert got.environment == "production" and got.stdout == "called the weather API"
    assert got.duration == 1.5 and got.tokens == 8
    assert got.prompt_cost == 0.01 and got.output_cost == 0.02
    assert got.provider_response == {"id": "cmpl-1"}
    assert got.config.model == "gpt-4o" and got.config.temperature == 0.3
    assert [(f.type, f.value, f.user) for f in got.feedback] == [("rating", "good", "ann")]
    assert got.feedback[0].id.startswith("ann_")


def test_identical_config_parameters_give_the_chat_config_id(
    hl: Humanloop, server: RunningServer
) -> None:
    chat = hl.chat(
        project="logged",
        model_config={"model": "gpt-4o", "temperature": 0.3},
        messages=[{"role": "user", "content": "hi"}],
    )
    first = log(hl, output="a")
    second = log(hl, output="b", config={**CONFIG, "name": "display only"})
    other = log(hl, output="c", config={**CONFIG, "temperature": 0.9})
    ids = {hl.logs.get(id=x.id).config_id for x in (first, second)}
    assert ids == {chat.data[0].model_config_id_}
    assert hl.logs.get(id=other.id).config_id not in ids
    by_id = log(hl, output="d", config=None, config_id=chat.data[0].model_config_id_)
    assert hl.logs.get(id=by_id.id).config_id == chat.data[0].model_config_id_


def test_a_list_of_logs_links_sessions_and_parents(hl: Humanloop, server: RunningServer) -> None:
    parent = log(hl, output="plan", reference_id="step-1", session_reference_id="conv-9")
    children = hl.log(
        body=[
            {"project": "logged", "config": CONFIG, "output": "a", "parent_reference_id": "step-1"},
            {"project": "logged", "config": CONFIG, "output": "b", "parent_id": parent.id},
        ]
    )
    assert isinstance(children, list) and len(children) == 2
    assert {c.session_id for c in children} == {parent.session_id}
    assert parent.session_id.startswith("sesh_")

    with server.client() as client:
        listed = client.get("/logs", params={"session_id": parent.session_id}).json()
    assert listed["total"] == 3
    assert {r["id"]: r["parent_id"] for r in listed["records"]} == {
        parent.id: None,
        children[0].id: parent.id,
        children[1].id: parent.id,
    }
    assert {r["parent_reference_id"] for r in listed["records"][:2]} == {"step-1"}


def test_list_pages_newest_first_and_filters(hl: Humanloop, server: RunningServer) -> None:
    made = []
    for i in range(5):
        made.append(
            log(hl, inputs={"n": f"item {i}"}, output=f"Answer {i}", metadata={"batch": i % 2})
        )
        time.sleep(0.002)
    project_id = made[0].project_id
    page1 = hl.logs.list(project_id=project_id, size=2, page=1)
    page3 = hl.logs.list(project_id=project_id, size=2, page=3)
    assert (page1.page, page1.size, page1.total) == (1, 2, 5)
    assert [r.id for r in page1.records] == [made[4].id, made[3].id]
    assert [r.id for r in page3.records] == [made[0].id]
    assert hl.logs.list(project_id=project_id, size=2).records[0].id == made[4].id  # page 0
    assert hl.logs.list(project_id=project_id, page=9).records == []

    assert [r.id for r in hl.logs.list(project_id=project_id, search="ANSWER 3").records] == [
        made[3].id
    ]
    assert [r.id for r in hl.logs.list(project_id=project_id, search="item 1").records] == [
        made[1].id
    ]
    assert hl.logs.list(project_id=project_id, search="50%").total == 0
    odd = hl.logs.list(project_id=project_id, metadata_search='"batch": 1').records
    assert {r.id for r in odd} == {made[1].id, made[3].id}

    old = log(hl, output="old", created_at="2020-01-02T10:00:00Z")
    assert [
        r.id
        for r in hl.logs.list(
            project_id=project_id, start_date="2020-01-02", end_date="2020-01-02"
        ).records
    ] == [old.id]
    assert hl.logs.list(project_id=project_id, end_date="2020-01-01").total == 0
    assert hl.logs.list(project_id=project_id, start_date="2021-01-01T00:00:00Z").total == 5


def test_update_by_id_and_by_reference(hl: Humanloop) -> None:
    created = log(hl, output=None, reference_id="job-7")
    updated = hl.logs.update(id=created.id, output="done", duration=2.0)
    assert updated.output == "done" and updated.duration == 2.0 and updated.error is None
    assert updated.updated_at != updated.created_at
    by_ref = hl.logs.update_by_ref(reference_id="job-7", error="timed out")
    assert by_ref.id == created.id
    assert by_ref.error == "timed out" and by_ref.output == "done"
    with pytest.raises(ApiException) as raised:
        hl.logs.update_by_ref(reference_id="nope", output="x")
    assert raised.value.status == 404


def test_delete_removes_only_the_callers_logs(hl: Humanloop, hl_b: Humanloop) -> None:
    mine = [log(hl, output=str(i)) for i in range(3)]
    theirs = log(hl_b, output="globex")
    log(hl, output="x", feedback=[{"type": "comment", "value": "nice"}])
    hl.logs.delete(id=[mine[0].id, mine[1].id, theirs.id])
    for gone in mine[:2]:
        with pytest.raises(ApiException) as raised:
            hl.logs.get(id=gone.id)
        assert raised.value.status == 404
    assert hl.logs.get(id=mine[2].id).output == "2"
    assert hl_b.logs.get(id=theirs.id).output == "globex"


def test_another_organisations_logs_are_404(hl: Humanloop, hl_b: Humanloop) -> None:
    created = log(hl, output="secret", reference_id="r-a")
    calls = [
        lambda: hl_b.logs.get(id=created.id),
        lambda: hl_b.logs.update(id=created.id, output="stolen"),
        lambda: hl_b.logs.update_by_ref(reference_id="r-a", output="stolen"),
        lambda: hl_b.logs.list(project_id=created.project_id),
        lambda: hl_b.projects.export(id=created.project_id),
        lambda: hl_b.log(project_id=created.project_id, config=CONFIG, output="x"),
        lambda: hl_b.log(project="p", config=CONFIG, parent_id=created.id),
    ]
    for call in calls:
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 404, call
        assert raised.value.body["detail"]["type"] == "not_found_error"
    assert hl.logs.get(id=created.id).output == "secret"


def test_invalid_log_requests_are_422(hl: Humanloop, server: RunningServer) -> None:
    with server.client() as client:
        no_config = client.post("/logs", json={"project": "p", "output": "x"})
        no_project = client.post("/logs", json={"config": CONFIG})
        both = client.post(
            "/logs",
            json=[
                {"project": "p", "config": CONFIG, "session_id": "s", "session_reference_id": "r"}
            ],
        )
        bad_key = client.post("/logs", json={"project": "p", "config": {**CONFIG, "oops": 1}})
        bad_feedback = client.post(
            "/logs",
            json={"project": "p", "config": CONFIG, "feedback": {"type": "rating", "value": "ok"}},
        )
        no_query = client.get("/logs")
        bad_date = client.get("/logs", params={"project_id": "pr_x", "start_date": "yesterday"})
    assert no_config.status_code == 422
    assert no_config.json()["detail"][0]["loc"] == ["body", "config"]
    assert no_project.json()["detail"][0]["loc"] == ["body", "project"]
    assert both.json()["detail"][0]["loc"] == ["body", 0, "session_reference_id"]
    assert bad_key.status_code == 422
    assert bad_feedback.json()["detail"][0]["loc"] == ["body", "feedback", "value"]
    assert no_query.status_code == 422
    assert bad_date.status_code in (404, 422)
    # Nothing was stored by the failed requests.
    assert hl.logs.list(project_id=hl.log(project="p", config=CONFIG).project_id).total == 1


def test_project_export_pages_newest_first(hl: Humanloop) -> None:
    made = [log(hl, project="exported", output=str(i)) for i in range(3)]
    time.sleep(0.001)
    project_id = made[0].project_id
    first = hl.projects.export(id=project_id, page=1, size=2)
    second = hl.projects.export(id=project_id, page=2, size=2)
    assert first.total == 3 and first.size == 2 and first.page == 1
    exported = [r.id for r in first.records] + [r.id for r in second.records]
    assert sorted(exported) == sorted(m.id for m in made)
    assert exported[0] == max(m.id for m in made)
