"""The operator's tasks behind the ``chatgate`` command: keys, provider keys, environments,
recent logs, export and import. Synchronous, on a store of its own (no server needs to run).

Mistakes are chatgate errors with a message for the operator (``NotFound``, ``BadRequest``); the
command line prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from chatgate.domain.logs import LogRow
from chatgate.domain.orgs import ApiKeyRow
from chatgate.domain.projects import EnvironmentRow
from chatgate.errors import BadRequest, NotFound
from chatgate.providers import BUILTIN
from chatgate.providers.prices import PriceFileError, PriceTable
from chatgate.providers.url_guard import CallerURLSpec
from chatgate.services.auth import create_key
from chatgate.services.credentials import fernet_for, load_or_create_secret, save_provider_key
from chatgate.settings import Settings
from chatgate.store.engine import display_url
from chatgate.store.sql import Store


class InvalidPriceFile(BadRequest):
    """CHATGATE_PRICES_FILE cannot be read as a price table."""


def check_price_file(settings: Settings) -> None:
    """Refuse a bad CHATGATE_PRICES_FILE before any server process starts."""
    try:
        PriceTable(settings.prices_file)
    except PriceFileError as exc:
        raise InvalidPriceFile(str(exc)) from None


def database_of(settings: Settings) -> str:
    """The database URL to show the operator, with any password masked."""
    return display_url(settings.resolved_database_url)


class Admin:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store = Store(
            settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self._store.upgrade()

    def __enter__(self) -> Admin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()

    @property
    def database(self) -> str:
        return database_of(self._settings)

    # --- organisations and keys --------------------------------------------------------------

    def org_id(self, name: str) -> str:
        org_id = self._store.orgs.org_id_by_name(name)
        if org_id is None:
            raise NotFound(
                f"no organisation named {name!r} "
                f"(create one with `chatgate keys create --org {name}`)"
            )
        return org_id

    def first_start(self) -> str | None:
        """Before the first serve: the secret for saved keys, and on an empty database the
        ``default`` organisation with a key, returned (shown once)."""
        load_or_create_secret(self._settings)
        if self._store.orgs.count_orgs() > 0:
            return None
        key, _prefix = create_key(self._store, "default")
        return key

    def create_key(self, org_name: str) -> tuple[str, str]:
        """A new key for the organisation (created if new): (key, prefix)."""
        return create_key(self._store, org_name)

    def keys(self, org_name: str | None = None) -> list[ApiKeyRow]:
        org_id = self.org_id(org_name) if org_name else None
        return self._store.orgs.list_api_keys(org_id)

    def revoke_key(self, prefix: str) -> None:
        if not self._store.orgs.revoke_api_key(prefix):
            raise NotFound(f"no active key with prefix {prefix!r}")

    # --- provider keys -----------------------------------------------------------------------

    def check_provider_key_target(self, provider: str, endpoint: str | None) -> None:
        """Refuse an endpoint for a provider whose endpoint is fixed, or one that is no URL."""
        if endpoint is not None and not isinstance(BUILTIN.get(provider), CallerURLSpec):
            raise BadRequest(
                f"--endpoint is only for providers whose endpoint varies per customer "
                f"(openai_azure), not {provider!r}"
            )
        if endpoint is not None and not endpoint.startswith(("https://", "http://")):
            raise BadRequest(f"--endpoint must be an http(s) URL, got {endpoint!r}")

    def save_provider_key(
        self, org_name: str, provider: str, key: str, endpoint: str | None
    ) -> str | None:
        """Save the key encrypted; returns the server-side endpoint variable the key is bound
        to when a per-customer provider's key is saved without an endpoint."""
        self.check_provider_key_target(provider, endpoint)
        org_id = self.org_id(org_name)
        fernet = fernet_for(load_or_create_secret(self._settings))
        save_provider_key(self._store, fernet, org_id, provider, key, endpoint)
        spec = BUILTIN.get(provider)
        if endpoint is None and isinstance(spec, CallerURLSpec):
            return spec.base_url_env
        return None

    # --- environments ------------------------------------------------------------------------

    def create_environment(self, org_name: str, name: str) -> EnvironmentRow:
        created = self._store.projects.create_environment(self.org_id(org_name), name)
        if created is None:
            raise BadRequest(f"organisation {org_name!r} already has an environment {name!r}")
        return created

    def environments(self, org_name: str) -> list[EnvironmentRow]:
        return self._store.projects.environments(self.org_id(org_name))

    # --- logs ----------------------------------------------------------------------------------

    def _project_id(self, org_id: str, org_name: str, project: str) -> str:
        project_id = self._store.projects.project_id_by_name(org_id, project)
        if project_id is None:
            raise NotFound(f"no project named {project!r} in {org_name!r}")
        return project_id

    def recent_logs(self, org_name: str | None, project: str | None, limit: int) -> list[LogRow]:
        """The newest logs, of an organisation and a project (a ``pr_`` id, or a name with
        the organisation) when given."""
        org_id = self.org_id(org_name) if org_name else None
        project_id = None
        if project:
            if project.startswith("pr_"):
                project_id = project
            elif org_id and org_name:
                project_id = self._project_id(org_id, org_name, project)
            else:
                raise BadRequest("--project by name needs --org")
        return self._store.logs.recent_logs(org_id=org_id, project_id=project_id, limit=limit)

    def export_project(self, org_name: str, project: str) -> tuple[int, Iterator[dict[str, Any]]]:
        """How many logs the project has, and its JSON-Lines entries, oldest first."""
        org_id = self.org_id(org_name)
        project_id = self._project_id(org_id, org_name, project)
        total = self._store.logs.count_project_logs(org_id, project_id)
        return total, self._store.logs.export_project(org_id, project_id)

    def import_target(self, org_name: str) -> str:
        """The organisation an import goes to (created if needed)."""
        return self._store.orgs.get_or_create_org(org_name)

    def import_entry(self, org_id: str, entry: dict[str, Any]) -> bool:
        """Store one exported entry; False when it was already there. A malformed entry raises
        ValueError, KeyError or TypeError naming what is wrong."""
        return self._store.logs.import_entry(org_id, entry)
