"""ProjectService against a real SQLite file: create, read, list, rename, delete, per
organisation, and the shared Resolver forgetting what a rename or delete made stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from chatgate.domain import Message, ModelConfig
from chatgate.errors import BadRequest, NotFound
from chatgate.services.chat import ChatInput
from chatgate.state import AppState
from tests.services.conftest import Services

CONFIG = ModelConfig(provider="stub", model="m")


async def _chat(state: AppState, services: Services, project: str) -> str:
    """One logged chat call in the named project; its project id."""
    outcome = await state.chat.chat(
        services.acme,
        ChatInput(config=CONFIG, messages=(Message("user", "hi"),), project=project),
    )
    return outcome.project_id


def test_create_get_and_computed_fields(services: Services) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        created = await state.projects.create(acme, "alpha")
        assert created.project.name == "alpha" and created.project.org_id == acme
        assert (created.data_count, created.active, created.feedback_types) == (0, None, [])
        with pytest.raises(BadRequest, match="a project named 'alpha' already exists"):
            await state.projects.create(acme, "alpha")

        assert await _chat(state, services, "alpha") == created.project.id
        fetched = await state.projects.get(acme, created.project.id)
        assert fetched.project == created.project
        assert fetched.data_count == 1
        with pytest.raises(NotFound, match="project 'pr_missing' not found"):
            await state.projects.get(acme, "pr_missing")

    services.run(work)


def test_rename_makes_the_old_name_a_new_project(services: Services) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        old = await state.resolver.project(acme, name="old", project_id=None)  # now cached
        await state.projects.create(acme, "taken")
        with pytest.raises(BadRequest, match="'taken' already exists"):
            await state.projects.update(acme, old, name="taken")
        assert await state.resolver.project(acme, name="old", project_id=None) == old

        renamed = await state.projects.update(acme, old, name="new")
        assert renamed.project.id == old and renamed.project.name == "new"
        assert renamed.project.updated_at >= renamed.project.created_at
        assert await state.resolver.project(acme, name="new", project_id=None) == old
        fresh = await state.resolver.project(acme, name="old", project_id=None)
        assert fresh != old
        assert (await state.projects.get(acme, fresh)).project.name == "old"

    services.run(work)


def test_update_sets_the_active_config(services: Services) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        project_id = await _chat(state, services, "p")
        config_id = await state.resolver.config(acme, CONFIG)
        with pytest.raises(NotFound, match="model config 'config_missing' not found"):
            await state.projects.update(acme, project_id, active_config_id="config_missing")
        view = await state.projects.update(acme, project_id, active_config_id=config_id)
        assert view.active is not None
        assert view.active.config.id == config_id and view.active.num_datapoints == 1
        assert view.project.name == "p"  # no name given: unchanged
        with pytest.raises(NotFound):
            await state.projects.update(acme, "pr_missing", name="x")

    services.run(work)


def test_delete_removes_the_project_and_the_cached_name(services: Services) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        project_id = await _chat(state, services, "doomed")
        await state.projects.delete(acme, project_id)
        with pytest.raises(NotFound):
            await state.projects.get(acme, project_id)
        with pytest.raises(NotFound, match=f"project '{project_id}' not found"):
            await state.projects.delete(acme, project_id)
        # The name resolves afresh: a new, empty project (the old one's logs went with it).
        again = await _chat(state, services, "doomed")
        assert again != project_id
        assert (await state.projects.get(acme, again)).data_count == 1

    services.run(work)


def test_another_organisation_sees_nothing(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        mine = (await state.projects.create(acme, "shared-name")).project.id
        theirs = (await state.projects.create(globex, "shared-name")).project.id
        assert theirs != mine
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: state.projects.get(globex, mine),
            lambda: state.projects.update(globex, mine, name="stolen"),
            lambda: state.projects.configs(globex, mine),
            lambda: state.projects.delete(globex, mine),
        ]
        for attempt in attempts:
            with pytest.raises(NotFound):
                await attempt()
        listed = await state.projects.list(globex, page=1, size=10)
        assert [v.project.id for v in listed.projects] == [theirs] and listed.total == 1
        assert (await state.projects.get(acme, mine)).project.name == "shared-name"

    services.run(work)


def test_list_filters_sorts_and_pages(services: Services) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        for name in ("b-two", "A-one", "c-three"):
            await state.projects.create(acme, name)
        by_name = await state.projects.list(acme, page=1, size=2, sort_by="name", order="asc")
        assert [v.project.name for v in by_name.projects] == ["A-one", "b-two"]
        assert by_name.total == 3
        rest = await state.projects.list(acme, page=2, size=2, sort_by="name", order="asc")
        assert [v.project.name for v in rest.projects] == ["c-three"] and rest.total == 3
        newest = await state.projects.list(acme, page=1, size=10)  # created_at, desc
        assert [v.project.name for v in newest.projects] == ["c-three", "A-one", "b-two"]
        filtered = await state.projects.list(acme, page=1, size=10, name_filter="T", order="asc")
        assert [v.project.name for v in filtered.projects] == ["b-two", "c-three"]
        assert filtered.total == 2
        # LIKE's wildcards are plain characters in a filter.
        assert (await state.projects.list(acme, page=1, size=10, name_filter="%")).total == 0
        nobody = await state.projects.list(acme, page=1, size=10, user_filter="someone")
        assert (nobody.projects, nobody.total) == ([], 0)

    services.run(work)


def test_configs_of_a_project_are_the_used_and_registered_ones(services: Services) -> None:
    acme = services.acme.org_id
    other = ModelConfig(provider="stub", model="m", temperature=0.5)

    async def work(state: AppState) -> None:
        project_id = await _chat(state, services, "p")
        registered = await state.configs.register(acme, other, project_id=project_id)
        found = await state.projects.configs(acme, project_id)
        assert found.project.id == project_id
        used = await state.resolver.config(acme, CONFIG)
        assert [(u.config.id, u.num_datapoints) for u in found.uses] == [
            (used, 1),
            (registered.use.config.id, 0),
        ]

    services.run(work)
