"""v4 request bodies and query values of the Projects tag (no ``additionalProperties: false`` in
the spec for these, so unknown keys are ignored)."""

from __future__ import annotations

from pydantic import Field

from chatgate.api.schemas.common import _Lenient
from chatgate.domain.projects import ProjectSortBy, SortOrder

__all__ = [
    "CreateProjectRequest",
    "EnvironmentProjectConfigRequest",
    "EnvironmentRequest",
    "ProjectSortBy",
    "SortOrder",
    "UpdateProjectRequest",
]


class CreateProjectRequest(_Lenient):
    name: str = Field(min_length=1, max_length=500)
    #: Accepted and ignored: chatgate has no directories.
    directory_id: str | None = None


class UpdateProjectRequest(_Lenient):
    name: str | None = Field(default=None, min_length=1, max_length=500)
    #: Deploys this config to the organisation's default environment.
    active_config_id: str | None = None
    #: Accepted and ignored: chatgate has no directories.
    directory_id: str | None = None


class EnvironmentRequest(_Lenient):
    id: str
    name: str | None = None


class EnvironmentProjectConfigRequest(_Lenient):
    config_id: str
    #: Environments by id; the default environment when omitted or empty.
    environments: list[EnvironmentRequest] | None = None
