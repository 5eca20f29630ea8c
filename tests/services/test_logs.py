"""LogService against SQLite: listing, reading, recording (POST /logs), updating, deleting."""

from __future__ import annotations

import pytest

from chatgate.domain import Message, ModelConfig
from chatgate.domain.logs import LogFilter
from chatgate.errors import InvalidRequest, NotFound, NotImplementedByServer
from chatgate.services.feedback import FeedbackInput
from chatgate.services.logs import LogChange, LoggedConfig, LogInput, ToolConfig
from chatgate.services.resolve import Placement
from chatgate.state import AppState
from tests.services.conftest import Services

CONFIG = LoggedConfig(ModelConfig(provider="openai", model="gpt-4o"))


def log(project: str = "p", **fields: object) -> LogInput:
    where = fields.pop("where", Placement(project=project))
    return LogInput(where=where, config=CONFIG, **fields)  # type: ignore[arg-type]


def problem_locs(raised: pytest.ExceptionInfo[InvalidRequest]) -> list[tuple[str | int, ...]]:
    return [p.loc for p in raised.value.problems]


def test_listing_filters_and_pages_newest_first(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        records = await state.logs.record(
            org,
            [
                log(output=f"answer {i}", created_at=1_700_000_000.0 + i, metadata={"n": i})
                for i in range(5)
            ],
            many=True,
        )
        project_id = records[0].project_id
        first = await state.logs.list(org, LogFilter(project_id=project_id), offset=0, limit=2)
        assert first.total == 5
        assert [v.log.output for v in first.rows] == ["answer 4", "answer 3"]
        last = await state.logs.list(org, LogFilter(project_id=project_id), offset=4, limit=2)
        assert [v.log.output for v in last.rows] == ["answer 0"] and last.total == 5
        found = await state.logs.list(
            org, LogFilter(project_id=project_id, search="ANSWER 2"), offset=0, limit=10
        )
        assert [v.log.id for v in found.rows] == [records[2].id]
        by_metadata = await state.logs.list(
            org, LogFilter(project_id=project_id, metadata_search='"n": 3'), offset=0, limit=10
        )
        assert [v.log.id for v in by_metadata.rows] == [records[3].id]
        since = await state.logs.list(
            org,
            LogFilter(project_id=project_id, start=1_700_000_003.0),
            offset=0,
            limit=10,
        )
        assert since.total == 2
        # Each listed log comes with its config, as the v4 LogResponse shows it.
        view = first.rows[0]
        assert view.config is not None and view.config.body["model"] == "gpt-4o"
        assert view.log.project_name == "p" and view.feedback == ()

        with pytest.raises(InvalidRequest) as raised:
            await state.logs.list(org, LogFilter(), offset=0, limit=10)
        assert problem_locs(raised) == [("query", "project_id")]
        with pytest.raises(NotFound):
            await state.logs.list(org, LogFilter(project_id="pr_nope"), offset=0, limit=10)
        with pytest.raises(NotFound):
            await state.logs.list(org, LogFilter(session_id="sesh_nope"), offset=0, limit=10)
        exported = await state.logs.export(org, project_id, offset=0, limit=10)
        assert exported.total == 5

    services.run(work)


def test_another_organisation_cannot_see_or_change_a_log(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        [record] = await state.logs.record(acme, [log(output="secret")], many=False)
        with pytest.raises(NotFound):
            await state.logs.get(globex, record.id)
        with pytest.raises(NotFound):
            await state.logs.list(
                globex, LogFilter(project_id=record.project_id), offset=0, limit=10
            )
        with pytest.raises(NotFound):
            await state.logs.export(globex, record.project_id, offset=0, limit=10)
        with pytest.raises(NotFound):
            await state.logs.update(globex, record.id, LogChange(output="stolen"))
        assert await state.logs.delete(globex, [record.id]) == 0
        assert (await state.logs.get(acme, record.id)).log.output == "secret"

    services.run(work)


def test_a_child_joins_its_parents_session_and_ids_with_reference_ids_are_refused(
    services: Services,
) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        [parent] = await state.logs.record(
            org,
            [log(where=Placement(project="p", session_reference_id="conv-1"), reference_id="r1")],
            many=False,
        )
        assert parent.session_id is not None
        [child] = await state.logs.record(
            org, [log(where=Placement(project="p", parent_reference_id="r1"))], many=False
        )
        assert (child.session_id, child.parent_id) == (parent.session_id, parent.id)
        seen = await state.logs.get(org, child.id)
        assert seen.log.session_reference_id == "conv-1"
        assert seen.log.parent_reference_id == "r1"

        both = Placement(project="p", session_id=parent.session_id, session_reference_id="x")
        with pytest.raises(InvalidRequest) as raised:
            await state.logs.record(org, [log(output="fine"), log(where=both)], many=True)
        assert problem_locs(raised) == [("body", 1, "session_reference_id")]
        with pytest.raises(NotFound):
            await state.logs.record(
                org, [log(where=Placement(project="p", parent_id="data_nope"))], many=False
            )
        with pytest.raises(InvalidRequest) as raised:
            await state.logs.record(org, [log(where=Placement())], many=False)
        assert problem_locs(raised) == [("body", "project")]

    services.run(work)
    store = services.store()
    try:
        # The refused batches stored nothing: their valid first item neither.
        assert [r.output for r in store.logs.recent_logs(org_id=org)] == [None, None]
    finally:
        store.close()


def test_a_log_with_feedback_is_stored_with_it_and_the_call_returns_once_stored(
    services: Services,
) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> tuple[str, str]:
        plain, rated = await state.logs.record(
            org,
            [
                log(
                    output="plain",
                    messages=(Message("user", "hi"),),
                    output_message=Message("assistant", "plain"),
                ),
                log(
                    output="rated",
                    judgment=["good", "short"],
                    environment="staging",
                    stdout="printed",
                    prompt_cost=0.5,
                    feedback=[FeedbackInput("rating", "good", user="u1")],
                ),
            ],
            many=True,
        )
        # Both the writer's commit and the transaction of their own are done on return: a
        # second connection sees them before the services close.
        store = services.store()
        try:
            stored_plain = store.logs.log(org, plain.id)
            assert stored_plain is not None and stored_plain.output == "plain"
            assert stored_plain.messages == [Message("user", "hi").to_v4()]
            assert stored_plain.environment is None and stored_plain.judgment is None
            stored_rated = store.logs.log(org, rated.id)
            assert stored_rated is not None
            assert stored_rated.judgment == ["good", "short"]
            assert (stored_rated.environment, stored_rated.stdout) == ("staging", "printed")
            assert stored_rated.prompt_cost == 0.5
            [feedback] = store.logs.feedback_for(org, [rated.id])[rated.id]
            assert (feedback.type, feedback.value, feedback.user) == ("rating", "good", "u1")
        finally:
            store.close()
        view = await state.logs.get(org, rated.id)
        assert [(f.type, f.value) for f in view.feedback] == [("rating", "good")]
        return plain.id, rated.id

    services.run(work)


def test_invalid_feedback_on_a_logged_item_stores_nothing(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        with pytest.raises(InvalidRequest) as raised:
            await state.logs.record(
                org,
                [
                    log(output="ok"),
                    log(feedback=[FeedbackInput("comment", "x"), FeedbackInput("rating", "great")]),
                ],
                many=True,
            )
        assert problem_locs(raised) == [("body", 1, "feedback", 1, "value")]
        with pytest.raises(InvalidRequest) as raised:
            await state.logs.record(org, [log(feedback=FeedbackInput("mood", "happy"))], many=False)
        assert problem_locs(raised) == [("body", "feedback", "type")]

    services.run(work)
    store = services.store()
    try:
        assert store.logs.recent_logs(org_id=org) == []
    finally:
        store.close()


def test_configs_of_logged_calls(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        [first] = await state.logs.record(org, [log()], many=False)
        # The same config again is the same stored config; by id it is found as well.
        [again] = await state.logs.record(
            org, [LogInput(where=Placement(project="p"), config_id=first.config_id)], many=False
        )
        assert again.config_id == first.config_id
        assert (again.provider, again.model) == ("openai", "gpt-4o")
        templated = LoggedConfig(CONFIG.config, prompt_template="Say {{x}}")
        [other] = await state.logs.record(
            org, [LogInput(where=Placement(project="p"), config=templated)], many=False
        )
        assert other.config_id != first.config_id
        view = await state.logs.get(org, other.id)
        assert view.config is not None and view.config.body["prompt_template"] == "Say {{x}}"

        with pytest.raises(InvalidRequest) as raised:
            await state.logs.record(org, [LogInput(where=Placement(project="p"))], many=False)
        assert problem_locs(raised) == [("body", "config")]
        with pytest.raises(NotImplementedByServer):
            await state.logs.record(
                org, [LogInput(where=Placement(project="p"), config=ToolConfig("t"))], many=False
            )
        linked = LoggedConfig(CONFIG.config, linked_tool_ids=("tool_1",))
        with pytest.raises(NotFound, match="tool_1"):
            await state.logs.record(
                org, [LogInput(where=Placement(project="p"), config=linked)], many=False
            )
        with pytest.raises(NotFound):
            await state.logs.record(
                services.globex.org_id,
                [LogInput(where=Placement(project="p"), config_id=first.config_id)],
                many=False,
            )

    services.run(work)


def test_update_by_id_and_by_reference_then_delete(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        older, newer = await state.logs.record(
            org,
            [
                log(output="one", error="boom", reference_id="ref", created_at=1.0),
                log(output="two", reference_id="ref", created_at=2.0),
            ],
            many=True,
        )
        changed = await state.logs.update(org, older.id, LogChange(output="uno"))
        assert (changed.log.output, changed.log.raw_output) == ("uno", "uno")
        assert changed.log.error == "boom"  # not given: unchanged
        assert changed.log.updated_at is not None
        cleared = await state.logs.update(org, older.id, LogChange(error=None, duration=1.5))
        assert (cleared.log.error, cleared.log.duration, cleared.log.output) == (None, 1.5, "uno")
        by_reference = await state.logs.update_by_reference(org, "ref", LogChange(output="dos"))
        assert by_reference.log.id == newer.id and by_reference.log.output == "dos"
        with pytest.raises(NotFound, match="reference id 'nope'"):
            await state.logs.update_by_reference(org, "nope", LogChange(output="x"))
        with pytest.raises(NotFound):
            await state.logs.update(org, "data_nope", LogChange(output="x"))

        assert await state.logs.delete(org, [older.id, "data_nope"]) == 1
        with pytest.raises(NotFound):
            await state.logs.get(org, older.id)
        assert (await state.logs.get(org, newer.id)).log.output == "dos"
        assert await state.logs.delete(org, []) == 0

    services.run(work)
