"""Feedback and project feedback types through the real SDK against a real server."""

from __future__ import annotations

import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer


@pytest.fixture
def hl(server: RunningServer) -> Humanloop:
    return Humanloop(api_key=server.key_a, host=server.url)


@pytest.fixture
def chat_log(hl: Humanloop) -> tuple[str, str]:
    """(log id, project id) of a chat call."""
    response = hl.chat(
        project="rated",
        model_config={"model": "gpt-4o"},
        messages=[{"role": "user", "content": "hello"}],
    )
    return response.data[0].id, response.project_id


def status_of(call: object) -> tuple[int, object]:
    with pytest.raises(ApiException) as raised:
        call()  # type: ignore[operator]
    return raised.value.status, raised.value.body


def test_feedback_is_visible_on_the_log_right_after_the_chat(
    hl: Humanloop, chat_log: tuple[str, str]
) -> None:
    log_id, _ = chat_log
    given = hl.feedback(type="rating", value="good", data_id=log_id, user="u1")
    assert given.id.startswith("ann_") and given.value == "good" and given.data_id == log_id
    many = hl.feedback(
        body=[
            {"type": "action", "value": ["copied", "shared"], "data_id": log_id},
            {"type": "comment", "value": "Helpful", "data_id": log_id},
            {"type": "correction", "value": "Hello!", "data_id": log_id},
            {"type": "issue", "value": "slow", "data_id": log_id},
        ]
    )
    assert [f.type for f in many] == ["action", "comment", "correction", "issue"]
    feedback = hl.logs.get(id=log_id).feedback
    assert [(f.type, f.value) for f in feedback] == [
        ("rating", "good"),
        ("action", ["copied", "shared"]),
        ("comment", "Helpful"),
        ("correction", "Hello!"),
        ("issue", "slow"),
    ]
    assert feedback[0].user == "u1" and feedback[0].id == given.id


def test_unset_removes_feedback(hl: Humanloop, chat_log: tuple[str, str]) -> None:
    log_id, _ = chat_log
    hl.feedback(type="rating", value="bad", data_id=log_id)
    hl.feedback(type="issue", value="rude", data_id=log_id)
    hl.feedback(type="issue", value="slow", data_id=log_id)
    hl.feedback(type="rating", data_id=log_id, unset=True)
    hl.feedback(type="issue", value="rude", data_id=log_id, unset=True)
    assert [(f.type, f.value) for f in hl.logs.get(id=log_id).feedback] == [("issue", "slow")]


@pytest.mark.parametrize(
    ("item", "loc"),
    [
        ({"type": "rating", "value": "great"}, ["body", "value"]),
        ({"type": "rating", "value": ["good"]}, ["body", "value"]),
        ({"type": "rating"}, ["body", "value"]),
        ({"type": "comment", "value": 3}, ["body", "value"]),
        ({"type": "action", "value": True}, ["body", "value"]),
        ({"type": "rating", "value": "good", "unset": True}, ["body", "value"]),
        ({"type": "mood", "value": "happy"}, ["body", "type"]),
    ],
)
def test_invalid_feedback_is_422_and_stores_nothing(
    hl: Humanloop, server: RunningServer, chat_log: tuple[str, str], item: dict, loc: list
) -> None:
    log_id, _ = chat_log
    with server.client() as client:
        response = client.post(
            "/feedback",
            json=[
                {"type": "comment", "value": "ok", "data_id": log_id},
                {**item, "data_id": log_id},
            ],
        )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == [loc[0], 1, *loc[1:]]
    assert hl.logs.get(id=log_id).feedback == []


def test_custom_feedback_types_registered_on_the_project(
    hl: Humanloop, server: RunningServer, chat_log: tuple[str, str]
) -> None:
    log_id, project_id = chat_log
    created = hl.projects.create_feedback_type(
        id=project_id,
        type="tone",
        _class="select",
        values=[{"value": "friendly", "sentiment": "positive"}, {"value": "curt"}],
    )
    assert created.type == "tone"
    assert [(v.value, v.sentiment) for v in created.values] == [
        ("friendly", "positive"),
        ("curt", "neutral"),
    ]
    hl.projects.update_feedback_types(id=project_id)  # the SDK sends no body: nothing changes
    with server.client() as client:
        patched = client.patch(
            f"/projects/{project_id}/feedback-types",
            json=[{"type": "score", "class": "number"}, {"type": "note", "class": "text"}],
        )
        assert patched.status_code == 200
        assert [t["type"] for t in patched.json()["feedback_types"]] == ["note", "score", "tone"]
        builtin = client.post(
            f"/projects/{project_id}/feedback-types", json={"type": "rating", "class": "text"}
        )
        assert builtin.status_code == 422
    hl.feedback(type="tone", value="friendly", data_id=log_id)
    hl.feedback(type="score", value=4.5, data_id=log_id)
    hl.feedback(type="note", value="fine", data_id=log_id)
    status, body = status_of(lambda: hl.feedback(type="tone", value="angry", data_id=log_id))
    assert status == 422 and body["detail"][0]["type"] == "enum"
    status, _ = status_of(lambda: hl.feedback(type="score", value="high", data_id=log_id))
    assert status == 422
    assert [f.type for f in hl.logs.get(id=log_id).feedback] == ["tone", "score", "note"]

    # The types belong to the project: a log of another project does not know them.
    other = hl.chat(
        project="other",
        model_config={"model": "gpt-4o"},
        messages=[{"role": "user", "content": "x"}],
    )
    status, _ = status_of(lambda: hl.feedback(type="tone", value="curt", data_id=other.data[0].id))
    assert status == 422


def test_another_organisation_gets_404(server: RunningServer, chat_log: tuple[str, str]) -> None:
    log_id, project_id = chat_log
    hl_b = Humanloop(api_key=server.key_b, host=server.url)
    status, body = status_of(lambda: hl_b.feedback(type="rating", value="good", data_id=log_id))
    assert status == 404 and body["detail"]["type"] == "not_found_error"
    status, _ = status_of(
        lambda: hl_b.projects.create_feedback_type(id=project_id, type="x", _class="text")
    )
    assert status == 404
    with server.client(server.key_b) as client:
        assert client.patch(f"/projects/{project_id}/feedback-types", json=[]).status_code == 404
    status, _ = status_of(lambda: hl_b.feedback(type="rating", value="good", data_id="data_nope"))
    assert status == 404
    hl_a = Humanloop(api_key=server.key_a, host=server.url)
    assert hl_a.logs.get(id=log_id).feedback == []
