"""ConfigService against a real SQLite file: registering configs, environments and deployments,
and the config lookups of /chat-model-config and /chat-deployed."""

from __future__ import annotations

import pytest

from chatgate.domain import Message, ModelConfig, Tool
from chatgate.errors import InvalidRequest, NotFound
from chatgate.services.chat import ChatInput
from chatgate.state import AppState
from tests.services.conftest import Services

CONFIG = ModelConfig(
    provider="stub",
    model="m",
    temperature=0.2,
    chat_template=(Message("system", "You are {{ persona }}"),),
    tools=(Tool("lookup", parameters={"type": "object"}),),
    name="first name",
)


def test_registering_the_same_config_twice_gives_one_id_the_chat_path_shares(
    services: Services,
) -> None:
    acme = services.acme.org_id

    async def work(state: AppState) -> None:
        first = await state.configs.register(acme, CONFIG, project="p")
        # Display fields are not the config's identity.
        renamed = ModelConfig(**{**_fields(CONFIG), "name": "second name"})
        again = await state.configs.register(acme, renamed, project_id=first.project.id)
        assert again.use.config.id == first.use.config.id
        assert again.project == first.project and first.project.name == "p"
        assert first.use.config.body == CONFIG.identity()
        assert first.use.num_datapoints == 0
        outcome = await state.chat.chat(
            services.acme,
            ChatInput(
                config=CONFIG,
                messages=(Message("user", "hi"),),
                project="p",
                inputs={"persona": "terse"},
            ),
        )
        assert outcome.config_id == first.use.config.id
        stored = await state.configs.get(acme, first.use.config.id)
        assert (stored.name, stored.body) == ("first name", CONFIG.identity())
        # The .prompt import path registers in the organisation only, by the same identity.
        assert (await state.configs.add(acme, CONFIG)).id == first.use.config.id

    services.run(work)


def _fields(config: ModelConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in ModelConfig.__dataclass_fields__}


def test_what_registration_refuses(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        unknown = ModelConfig(provider="nonesuch", model="m")
        with pytest.raises(InvalidRequest) as refused:
            await state.configs.register(acme, unknown, project="p")
        assert refused.value.status == 422
        assert refused.value.problems[0].loc == ("body", "model_config", "provider")
        assert "unknown provider 'nonesuch'" in refused.value.problems[0].msg
        with pytest.raises(InvalidRequest) as same:
            await state.configs.add(acme, unknown)
        assert same.value.problems == refused.value.problems

        with pytest.raises(InvalidRequest) as no_project:
            await state.configs.register(acme, CONFIG)
        assert no_project.value.problems[0].loc == ("body", "project")
        with pytest.raises(NotFound, match="project 'pr_missing' not found"):
            await state.configs.register(acme, CONFIG, project_id="pr_missing")
        with pytest.raises(NotFound, match="tool 'oc_1' not found"):
            await state.configs.register(acme, CONFIG, project="p", linked_tool_ids=["oc_1"])

        mine = await state.configs.register(acme, CONFIG, project="p")
        with pytest.raises(NotFound, match=f"model config '{mine.use.config.id}' not found"):
            await state.configs.get(globex, mine.use.config.id)
        with pytest.raises(NotFound):
            await state.configs.register(globex, CONFIG, project_id=mine.project.id)

    services.run(work)


def test_deploy_undeploy_and_the_active_config(services: Services) -> None:
    acme = services.acme.org_id
    store = services.store()
    try:
        staging = store.projects.create_environment(acme, "staging")
    finally:
        store.close()
    assert staging is not None
    hotter = ModelConfig(provider="stub", model="m", temperature=0.9)

    async def work(state: AppState) -> None:
        prod = await state.configs.register(acme, CONFIG, project="p")
        project_id, config_id = prod.project.id, prod.use.config.id
        staged = (await state.configs.register(acme, hotter, project_id=project_id)).use.config

        before = await state.configs.deployments(acme, project_id)
        assert [(d.environment.name, d.environment.tag, d.config) for d in before.deployments] == [
            ("production", "default", None),
            ("staging", "other", None),
        ]
        with pytest.raises(NotFound, match="project 'p' has no config deployed to environment"):
            await state.configs.active(acme, project_id, None)

        deployed = await state.configs.deploy(acme, project_id, config_id)  # default env
        assert [d.config.id if d.config else None for d in deployed.deployments] == [
            config_id,
            None,
        ]
        deployed = await state.configs.deploy(acme, project_id, staged.id, [staging.id])
        assert [d.config.id if d.config else None for d in deployed.deployments] == [
            config_id,
            staged.id,
        ]
        active = await state.configs.active(acme, project_id, None)
        assert (active.use.config.id, active.environment.name) == (config_id, "production")
        assert (await state.configs.active(acme, project_id, "staging")).use.config.id == staged.id
        assert (await state.projects.get(acme, project_id)).active is not None

        with pytest.raises(NotFound, match="environment 'env_missing' not found"):
            await state.configs.deploy(acme, project_id, config_id, ["env_missing"])
        with pytest.raises(NotFound, match="model config 'config_missing' not found"):
            await state.configs.deploy(acme, project_id, "config_missing")
        with pytest.raises(NotFound, match="environment 'qa' not found"):
            await state.configs.active(acme, project_id, "qa")

        view = await state.configs.deactivate(acme, project_id, None)
        assert view.active is None and view.project.id == project_id
        with pytest.raises(NotFound, match="environment 'production'"):
            await state.configs.deactivate(acme, project_id, None)
        left = await state.configs.undeploy(acme, project_id, staging.id)
        assert [d.config for d in left.deployments] == [None, None]
        with pytest.raises(NotFound, match="project 'p' has no config deployed to environment"):
            await state.configs.undeploy(acme, project_id, staging.id)

    services.run(work)


def test_another_organisation_cannot_deploy_or_see_deployments(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        mine = await state.configs.register(acme, CONFIG, project="p")
        await state.configs.deploy(acme, mine.project.id, mine.use.config.id)
        theirs = await state.configs.register(globex, CONFIG, project="p")
        with pytest.raises(NotFound):
            await state.configs.deployments(globex, mine.project.id)
        with pytest.raises(NotFound):
            await state.configs.active(globex, mine.project.id, None)
        with pytest.raises(NotFound, match="model config"):
            await state.configs.deploy(globex, theirs.project.id, mine.use.config.id)
        prod = (await state.configs.deployments(acme, mine.project.id)).deployments[0]
        with pytest.raises(NotFound, match="environment"):
            await state.configs.deploy(
                globex, theirs.project.id, theirs.use.config.id, [prod.environment.id]
            )

    services.run(work)


def test_the_config_of_chat_deployed(services: Services) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id

    async def work(state: AppState) -> None:
        registered = await state.configs.register(acme, CONFIG, project="p")
        project_id = registered.project.id
        with pytest.raises(
            NotFound,
            match="project 'p' has no model config deployed to environment 'production'",
        ):
            await state.configs.deployed(acme, project="p", project_id=None, environment=None)

        await state.configs.deploy(acme, project_id, registered.use.config.id)
        by_name = await state.configs.deployed(acme, project="p", project_id=None, environment=None)
        assert (by_name.config.id, by_name.project_id) == (registered.use.config.id, project_id)
        by_id = await state.configs.deployed(
            acme, project=None, project_id=project_id, environment="production"
        )
        assert by_id == by_name

        with pytest.raises(NotFound, match="environment 'staging' not found"):
            await state.configs.deployed(acme, project="p", project_id=None, environment="staging")
        with pytest.raises(NotFound, match="project 'q' not found, so nothing is deployed"):
            await state.configs.deployed(acme, project="q", project_id=None, environment=None)
        with pytest.raises(NotFound, match=f"project '{project_id}' not found"):
            await state.configs.deployed(
                globex, project=None, project_id=project_id, environment=None
            )
        with pytest.raises(InvalidRequest) as neither:
            await state.configs.deployed(acme, project=None, project_id=None, environment=None)
        assert neither.value.problems[0].loc == ("body", "project")

    services.run(work)


def test_the_config_of_chat_model_config_defaults_to_its_home_project(
    services: Services,
) -> None:
    acme, globex = services.acme.org_id, services.globex.org_id
    unregistered = ModelConfig(provider="stub", model="loose")

    async def work(state: AppState) -> None:
        home = await state.configs.register(acme, CONFIG, project="home")
        config_id = home.use.config.id
        chosen = await state.configs.for_chat(acme, config_id, project=None, project_id=None)
        assert (chosen.config.id, chosen.project_id) == (config_id, home.project.id)
        # A request naming its project keeps it.
        named = await state.configs.for_chat(acme, config_id, project="elsewhere", project_id=None)
        assert (named.config.body, named.project_id) == (CONFIG.identity(), None)
        # Registered in the organisation only: no home, the request must name one.
        loose = await state.configs.add(acme, unregistered)
        free = await state.configs.for_chat(acme, loose.id, project=None, project_id=None)
        assert free.project_id is None
        with pytest.raises(NotFound, match=f"model config '{config_id}' not found"):
            await state.configs.for_chat(globex, config_id, project=None, project_id=None)

    services.run(work)
