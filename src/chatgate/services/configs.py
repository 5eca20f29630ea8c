"""Model configs (register, read, the ``.prompt`` format's lookups), environments and
deployments, and the config lookups of ``/chat-model-config`` and ``/chat-deployed``.

Registration shares the chat path's identity rule (fingerprint get-or-create through the
Resolver's cache): the same parameters give the same ``config_…`` id however they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chatgate.domain import ModelConfig
from chatgate.domain.projects import (
    ConfigRow,
    ConfigUse,
    Deployment,
    EnvironmentRow,
    ProjectRow,
)
from chatgate.errors import InvalidRequest, NotFound
from chatgate.providers.base import ProviderSpec
from chatgate.services.projects import ProjectView, project_or_404, project_view
from chatgate.services.resolve import Resolver
from chatgate.store.sql import Store


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A config in a project, with its use there (the v4 ``ProjectConfigResponse``)."""

    project: ProjectRow
    use: ConfigUse


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    """The config deployed to one environment of a project."""

    project: ProjectRow
    use: ConfigUse
    environment: EnvironmentRow


@dataclass(frozen=True, slots=True)
class ProjectDeployments:
    """Every environment of the organisation with what the project deployed there."""

    project: ProjectRow
    deployments: list[Deployment]


@dataclass(frozen=True, slots=True)
class ChatConfig:
    """A stored config to chat with, and the project the chat is logged to (None: the one the
    request names)."""

    config: ConfigRow
    project_id: str | None


def _environment_or_404(
    store: Store, org_id: str, *, env_id: str | None = None, name: str | None = None
) -> EnvironmentRow:
    env = store.projects.environment(org_id, env_id=env_id, name=name)
    if env is None:
        raise NotFound(f"environment '{env_id or name}' not found")
    return env


def _config_or_404(store: Store, org_id: str, config_id: str) -> ConfigRow:
    config = store.projects.config(org_id, config_id)
    if config is None:
        raise NotFound(f"model config '{config_id}' not found")
    return config


def _nothing_deployed(project: ProjectRow, env: EnvironmentRow) -> NotFound:
    return NotFound(f"project '{project.name}' has no config deployed to environment '{env.name}'")


class ConfigService:
    def __init__(
        self, store: Store, resolver: Resolver, provider: Callable[[str], ProviderSpec]
    ) -> None:
        self._store = store
        self._resolver = resolver
        #: The chat path's provider check (ChatService.provider): an unknown one is the same 422.
        self._provider = provider

    # --- model configs -------------------------------------------------------------------------

    async def _config_id(
        self, org_id: str, config: ModelConfig, linked_tool_ids: Sequence[str]
    ) -> str:
        """Check a config as the chat path would, then get-or-create its id."""
        if linked_tool_ids:
            raise NotFound(
                f"tool '{linked_tool_ids[0]}' not found: this server has no organisation tools; "
                "define the tool inline in tools"
            )
        self._provider(config.provider)
        return await self._resolver.config(org_id, config)

    async def register(
        self,
        org_id: str,
        config: ModelConfig,
        *,
        project: str | None = None,
        project_id: str | None = None,
        linked_tool_ids: Sequence[str] = (),
    ) -> ProjectConfig:
        """Register the config to the project (by name, created on first use, or by id)."""
        project_id = await self._resolver.project(org_id, name=project, project_id=project_id)
        config_id = await self._config_id(org_id, config, linked_tool_ids)
        store, placed = self._store, project_id

        def work() -> ProjectConfig:
            store.projects.register_config(org_id, placed, config_id)
            row = store.projects.project(org_id, placed)
            uses = store.projects.config_uses(org_id, placed, [config_id])
            if row is None or not uses:
                raise NotFound(f"project '{placed}' not found")  # deleted meanwhile
            return ProjectConfig(row, uses[0])

        return await store.call(work)

    async def add(
        self, org_id: str, config: ModelConfig, *, linked_tool_ids: Sequence[str] = ()
    ) -> ConfigRow:
        """Register the config in the organisation only (a deserialized ``.prompt`` file) and
        return it as stored."""
        config_id = await self._config_id(org_id, config, linked_tool_ids)
        return await self.get(org_id, config_id)

    async def get(self, org_id: str, config_id: str) -> ConfigRow:
        """A stored config of the organisation (also what ``.prompt`` export writes)."""
        return await self._store.call(_config_or_404, self._store, org_id, config_id)

    # --- the configs chats are made with -------------------------------------------------------

    async def for_chat(
        self, org_id: str, config_id: str, *, project: str | None, project_id: str | None
    ) -> ChatConfig:
        """``/chat-model-config``: the stored config; a request naming no project is logged to
        the project the config was last registered to (if any)."""
        store = self._store

        def work() -> ChatConfig:
            row = _config_or_404(store, org_id, config_id)
            if project is not None or project_id is not None:
                return ChatConfig(row, None)
            # Not in the spec's required list: default to the config's home project.
            return ChatConfig(row, store.projects.home_project(org_id, row.id))

        return await store.call(work)

    async def deployed(
        self,
        org_id: str,
        *,
        project: str | None,
        project_id: str | None,
        environment: str | None,
    ) -> ChatConfig:
        """``/chat-deployed``: the config deployed to the project's environment (by name; the
        default one when None). The chat is logged to that project."""
        if project is None and project_id is None:
            raise InvalidRequest.at(
                ("body", "project"),
                "either project or project_id must be provided",
                "value_error.missing",
            )
        store = self._store

        def work() -> ChatConfig:
            repo = store.projects
            if project_id is not None:
                found = repo.project(org_id, project_id)
                if found is None:
                    raise NotFound(f"project '{project_id}' not found")
            else:
                assert project is not None
                found = repo.project_by_name(org_id, project)
                if found is None:
                    raise NotFound(f"project '{project}' not found, so nothing is deployed to it")
            env = repo.environment(org_id, name=environment)
            if env is None:
                raise NotFound(f"environment '{environment}' not found")
            config_id = repo.deployed_config_id(org_id, found.id, env.id)
            row = repo.config(org_id, config_id) if config_id is not None else None
            if row is None:
                raise NotFound(
                    f"project '{found.name}' has no model config deployed to environment "
                    f"'{env.name}'"
                )
            return ChatConfig(row, found.id)

        return await store.call(work)

    # --- environments and deployments ----------------------------------------------------------

    def _deployed(
        self, org_id: str, project_id: str, environment: str | None
    ) -> tuple[ProjectRow, EnvironmentRow, str | None]:
        store = self._store
        project = project_or_404(store, org_id, project_id)
        env = _environment_or_404(store, org_id, name=environment)
        return project, env, store.projects.deployed_config_id(org_id, project_id, env.id)

    async def active(self, org_id: str, project_id: str, environment: str | None) -> ActiveConfig:
        """The config deployed to the project's environment (by name; None: the default)."""

        def work() -> ActiveConfig:
            project, env, config_id = self._deployed(org_id, project_id, environment)
            uses = (
                self._store.projects.config_uses(org_id, project_id, [config_id])
                if config_id
                else []
            )
            if not uses:
                raise _nothing_deployed(project, env)
            return ActiveConfig(project, uses[0], env)

        return await self._store.call(work)

    async def deactivate(
        self, org_id: str, project_id: str, environment: str | None
    ) -> ProjectView:
        """Remove the deployment of the project's environment; 404 when nothing is deployed."""

        def work() -> ProjectView:
            project, env, config_id = self._deployed(org_id, project_id, environment)
            if config_id is None:
                raise _nothing_deployed(project, env)
            self._store.projects.undeploy(org_id, project_id, env.id)
            return project_view(self._store, org_id, project_id)

        return await self._store.call(work)

    async def deployments(self, org_id: str, project_id: str) -> ProjectDeployments:
        def work() -> ProjectDeployments:
            project = project_or_404(self._store, org_id, project_id)
            return ProjectDeployments(project, self._store.projects.deployments(org_id, project_id))

        return await self._store.call(work)

    async def deploy(
        self, org_id: str, project_id: str, config_id: str, environment_ids: Sequence[str] = ()
    ) -> ProjectDeployments:
        """Deploy the config to the environments (by id; none: the default one), replacing
        what each had."""
        store = self._store

        def work() -> ProjectDeployments:
            repo = store.projects
            project = project_or_404(store, org_id, project_id)
            _config_or_404(store, org_id, config_id)
            if environment_ids:
                env_ids = [_environment_or_404(store, org_id, env_id=e).id for e in environment_ids]
            else:
                env_ids = [repo.default_environment(org_id).id]
            repo.deploy(org_id, project_id, config_id, env_ids)
            return ProjectDeployments(project, repo.deployments(org_id, project_id))

        return await store.call(work)

    async def undeploy(
        self, org_id: str, project_id: str, environment_id: str
    ) -> ProjectDeployments:
        """Remove the project's deployment in the environment (by id); 404 when none."""
        store = self._store

        def work() -> ProjectDeployments:
            project = project_or_404(store, org_id, project_id)
            env = _environment_or_404(store, org_id, env_id=environment_id)
            if not store.projects.undeploy(org_id, project_id, env.id):
                raise _nothing_deployed(project, env)
            return ProjectDeployments(project, store.projects.deployments(org_id, project_id))

        return await store.call(work)
