"""FeedbackService against SQLite: value checks, batches, unset, project feedback types."""

from __future__ import annotations

import pytest

from chatgate.domain import ModelConfig
from chatgate.errors import InvalidRequest, NotFound
from chatgate.services.feedback import FeedbackInput, FeedbackTypeInput
from chatgate.services.logs import LoggedConfig, LogInput
from chatgate.services.resolve import Placement
from chatgate.state import AppState
from tests.services.conftest import Services


async def new_log(state: AppState, org_id: str, project: str = "p") -> tuple[str, str]:
    """(log id, project id) of a freshly recorded log."""
    [record] = await state.logs.record(
        org_id,
        [
            LogInput(
                where=Placement(project=project),
                config=LoggedConfig(ModelConfig(provider="openai", model="m")),
            )
        ],
        many=False,
    )
    return record.id, record.project_id


def refused(raised: pytest.ExceptionInfo[InvalidRequest]) -> list[tuple[object, ...]]:
    return [(p.loc, p.type) for p in raised.value.problems]


async def stored(state: AppState, org_id: str, log_id: str) -> list[tuple[str, object]]:
    return [(f.type, f.value) for f in (await state.logs.get(org_id, log_id)).feedback]


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (FeedbackInput("rating", "great"), (("body", 1, "value"), "enum")),
        (FeedbackInput("rating", ["good"]), (("body", 1, "value"), "string_type")),
        (FeedbackInput("rating"), (("body", 1, "value"), "missing")),
        (FeedbackInput("comment", 3), (("body", 1, "value"), "string_type")),
        (FeedbackInput("action", True), (("body", 1, "value"), "string_type")),
        (FeedbackInput("rating", "good", unset=True), (("body", 1, "value"), "value_error")),
        (FeedbackInput("mood", "happy"), (("body", 1, "type"), "value_error.feedback_type")),
    ],
)
def test_a_batch_with_one_bad_item_stores_nothing(
    services: Services, item: FeedbackInput, problem: tuple[object, ...]
) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        log_id, _ = await new_log(state, org)
        good = FeedbackInput("comment", "ok", log_id=log_id)
        with pytest.raises(InvalidRequest) as raised:
            await state.feedback.submit(
                org,
                [good, FeedbackInput(item.type, item.value, log_id, unset=item.unset)],
                many=True,
            )
        assert refused(raised) == [problem]
        assert await stored(state, org, log_id) == []

    services.run(work)


def test_built_in_feedback_is_stored_and_unset(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        log_id, _ = await new_log(state, org)
        rows = await state.feedback.submit(
            org,
            [
                FeedbackInput("rating", "bad", log_id, user="u1", created_at=10.0),
                FeedbackInput("action", ["copied", "shared"], log_id, created_at=11.0),
                FeedbackInput("issue", "rude", log_id, created_at=12.0),
                FeedbackInput("issue", "slow", log_id, created_at=13.0),
            ],
            many=True,
        )
        assert [r.id[:4] for r in rows] == ["ann_"] * 4
        assert (rows[0].user, rows[0].created_at, rows[0].log_id) == ("u1", 10.0, log_id)
        unset = await state.feedback.submit(
            org,
            [
                FeedbackInput("rating", log_id=log_id, unset=True),
                FeedbackInput("issue", "rude", log_id, unset=True),
            ],
            many=True,
        )
        assert [r.value for r in unset] == [None, "rude"]  # what was unset is echoed
        assert await stored(state, org, log_id) == [
            ("action", ["copied", "shared"]),
            ("issue", "slow"),
        ]
        with pytest.raises(InvalidRequest) as raised:
            await state.feedback.submit(org, [FeedbackInput("rating", "good")], many=False)
        assert refused(raised) == [(("body", "data_id"), "missing")]

    services.run(work)


def test_custom_types_belong_to_their_project(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        log_id, project_id = await new_log(state, org)
        other_log, _ = await new_log(state, org, project="other")
        tone = await state.feedback.create_type(
            org,
            project_id,
            FeedbackTypeInput(
                "tone",
                "select",
                [
                    {"value": "friendly", "sentiment": "positive"},
                    {"value": "curt", "sentiment": "neutral"},
                ],
            ),
        )
        assert (tone.type, tone.class_, tone.project_id) == ("tone", "select", project_id)
        types = await state.feedback.update_types(
            org,
            project_id,
            [FeedbackTypeInput("score", "number"), FeedbackTypeInput("note", "text")],
            many=True,
        )
        assert [t.type for t in types] == ["note", "score", "tone"]
        assert [t.type for t in await state.feedback.types(org, project_id)] == [
            "note",
            "score",
            "tone",
        ]
        await state.feedback.submit(
            org,
            [
                FeedbackInput("tone", "friendly", log_id),
                FeedbackInput("score", 4.5, log_id),
                FeedbackInput("note", "fine", log_id),
            ],
            many=True,
        )
        assert await stored(state, org, log_id) == [
            ("tone", "friendly"),
            ("score", 4.5),
            ("note", "fine"),
        ]
        with pytest.raises(InvalidRequest) as raised:
            await state.feedback.submit(org, [FeedbackInput("tone", "angry", log_id)], many=False)
        assert refused(raised) == [(("body", "value"), "enum")]
        with pytest.raises(InvalidRequest) as raised:
            await state.feedback.submit(org, [FeedbackInput("score", "high", log_id)], many=False)
        assert refused(raised) == [(("body", "value"), "float_type")]
        with pytest.raises(InvalidRequest):  # the other project does not know "tone"
            await state.feedback.submit(org, [FeedbackInput("tone", "curt", other_log)], many=False)

        for bad, loc in [
            (FeedbackTypeInput("rating", "text"), ("body", "type")),
            (FeedbackTypeInput("mood", "select"), ("body", "values")),
            (FeedbackTypeInput("mood", "text", [{"value": "x"}]), ("body", "values")),
        ]:
            with pytest.raises(InvalidRequest) as raised:
                await state.feedback.create_type(org, project_id, bad)
            assert [p.loc for p in raised.value.problems] == [loc]
        with pytest.raises(InvalidRequest) as raised:  # checked all before any is stored
            await state.feedback.update_types(
                org,
                project_id,
                [FeedbackTypeInput("fresh", "text"), FeedbackTypeInput("comment", "text")],
                many=True,
            )
        assert [p.loc for p in raised.value.problems] == [("body", 1, "type")]
        assert "fresh" not in {t.type for t in await state.feedback.types(org, project_id)}

    services.run(work)


def test_another_organisations_logs_and_projects_are_not_found(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        log_id, project_id = await new_log(state, acme)
        with pytest.raises(NotFound):
            await state.feedback.submit(
                globex, [FeedbackInput("rating", "good", log_id)], many=False
            )
        with pytest.raises(NotFound):
            await state.feedback.create_type(globex, project_id, FeedbackTypeInput("x", "text"))
        with pytest.raises(NotFound):
            await state.feedback.update_types(globex, project_id, [], many=True)
        with pytest.raises(NotFound):
            await state.feedback.types(globex, project_id)
        assert await stored(state, acme, log_id) == []
        assert await state.feedback.types(acme, project_id) == []

    services.run(work)
