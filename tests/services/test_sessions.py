"""SessionService against SQLite: create, list a project's sessions, read one."""

from __future__ import annotations

import pytest

from chatgate.domain import ModelConfig
from chatgate.errors import NotFound
from chatgate.services.logs import LoggedConfig, LogInput
from chatgate.services.resolve import Placement
from chatgate.state import AppState
from tests.services.conftest import Services

CONFIG = LoggedConfig(ModelConfig(provider="openai", model="m"))


def test_sessions_of_a_project_newest_first_with_their_summaries(services: Services) -> None:
    org = services.acme.org_id

    async def work(state: AppState) -> None:
        created = await state.sessions.create(org)
        assert created.startswith("sesh_")
        empty = await state.sessions.get(org, created)
        assert (empty.datapoints_count, empty.projects, empty.reference_id) == (0, (), None)
        assert empty.updated_at == empty.created_at

        def item(project: str, session: str, when: float, text: str) -> LogInput:
            return LogInput(
                where=Placement(project=project, session_reference_id=session),
                config=CONFIG,
                inputs={"q": text},
                output=text.upper(),
                created_at=when,
            )

        records = await state.logs.record(
            org,
            [
                item("p", "first", 1.0, "a"),
                item("p", "first", 2.0, "b"),
                item("q", "first", 3.0, "c"),
                item("p", "second", 4.0, "d"),
            ],
            many=True,
        )
        project_id = records[0].project_id
        # Unused sessions (like ``created``) are not in a project's listing.
        page = await state.sessions.list(org, project_id, offset=0, limit=10)
        assert page.total == 2
        assert [s.reference_id for s in page.rows] == ["second", "first"]
        first = page.rows[1]
        assert first.datapoints_count == 3
        assert [p.name for p in first.projects] == ["p", "q"]
        assert (first.first_inputs, first.last_output, first.updated_at) == ({"q": "a"}, "C", 3.0)
        paged = await state.sessions.list(org, project_id, offset=1, limit=1)
        assert [s.reference_id for s in paged.rows] == ["first"] and paged.total == 2
        assert await state.sessions.get(org, first.id) == first

        with pytest.raises(NotFound):
            await state.sessions.list(org, "pr_nope", offset=0, limit=10)
        with pytest.raises(NotFound):
            await state.sessions.get(org, "sesh_nope")
        globex = services.globex.org_id
        with pytest.raises(NotFound):
            await state.sessions.get(globex, first.id)
        with pytest.raises(NotFound):
            await state.sessions.list(globex, project_id, offset=0, limit=10)

    services.run(work)
