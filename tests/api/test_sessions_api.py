"""Sessions endpoints through the real SDK against a real server."""

from __future__ import annotations

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer

CONFIG = {"model": "gpt-4o"}


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


def test_create_log_to_and_list_sessions(hl: Humanloop, server: RunningServer) -> None:
    created = hl.sessions.create()
    assert created.id.startswith("sesh_")
    first = hl.log(
        project="tracked", config=CONFIG, session_id=created.id, inputs={"q": 1}, output="one"
    )
    hl.chat(
        project="tracked",
        session_id=created.id,
        parent_id=first.id,
        model_config=CONFIG,
        messages=[{"role": "user", "content": "two"}],
    )
    by_reference = hl.log(
        project="tracked", config=CONFIG, session_reference_id="conv-1", output="x"
    )
    hl.log(project="elsewhere", config=CONFIG, session_reference_id="conv-2", output="y")

    session = hl.sessions.get(id=created.id)
    assert session.datapoints_count == 2 and session.first_inputs == {"q": 1}
    assert [p.name for p in session.projects] == ["tracked"]

    listed = hl.sessions.list(project_id=first.project_id)
    assert (listed.page, listed.size, listed.total) == (1, 10, 2)
    assert [s.id for s in listed.records] == [by_reference.session_id, created.id]
    assert listed.records[0].reference_id == "conv-1"
    second = hl.sessions.list(project_id=first.project_id, page=2, size=1)
    assert [s.id for s in second.records] == [created.id] and second.total == 2

    with server.client() as client:
        raw = client.post("/sessions")
    assert raw.status_code == 201 and set(raw.json()) == {"id"}


def test_another_organisation_gets_404(hl: Humanloop, server: RunningServer) -> None:
    created = hl.sessions.create()
    logged = hl.log(project="tracked", config=CONFIG, session_id=created.id, output="x")
    hl_b = Humanloop(api_key=server.key_b, host=server.url)
    calls = [
        lambda: hl_b.sessions.get(id=created.id),
        lambda: hl_b.sessions.list(project_id=logged.project_id),
        lambda: hl_b.log(project="mine", config=CONFIG, session_id=created.id),
    ]
    for call in calls:
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 404
    with server.client(server.key_b) as client:
        assert client.get("/logs", params={"session_id": created.id}).status_code == 404
    assert hl.sessions.get(id=created.id).datapoints_count == 1
