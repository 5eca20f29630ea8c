"""Projects, project configs and deployments as v4 response bodies (plain dicts for orjson).

Every key of the v4 schema is present; chatgate has no users, evaluators, directories or
evaluation aggregates, so those are empty lists or ``null``.
"""

from __future__ import annotations

from typing import Any

from chatgate.api.render import feedback_type_response, model_config_response
from chatgate.domain.projects import ConfigRow, ConfigUse, Deployment, ProjectRow
from chatgate.moments import iso
from chatgate.services.configs import ActiveConfig
from chatgate.services.projects import ProjectView


def config_response(config: ConfigRow) -> dict[str, Any]:
    """A stored model config as the v4 ``ModelConfigResponse``."""
    return model_config_response(config.id, config.body, config.name, config.description)


def project_config_response(project: ProjectRow, use: ConfigUse) -> dict[str, Any]:
    """The v4 ``ProjectConfigResponse``: a config in a project, with its usage there."""
    return {
        "project_id": project.id,
        "project_name": project.name,
        "created_at": iso(use.created_at),
        "updated_at": iso(use.updated_at),
        "last_used": iso(use.last_used),
        "num_datapoints": use.num_datapoints,
        "evaluation_aggregates": [],
        "config": config_response(use.config),
    }


def project_response(view: ProjectView) -> dict[str, Any]:
    """The v4 ``ProjectResponse``. ``team_id`` is the organisation's id."""
    project, active = view.project, view.active
    return {
        "id": project.id,
        "name": project.name,
        "active_config": project_config_response(project, active) if active else None,
        "users": [],
        "data_count": view.data_count,
        "feedback_types": [feedback_type_response(row) for row in view.feedback_types],
        "team_id": project.org_id,
        "config_type": "model" if active else None,
        "active_evaluators": [],
        "directory_id": None,
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


def active_config_response(active: ActiveConfig) -> dict[str, Any]:
    """The v4 ``GetModelConfigResponse``: the config deployed to one environment."""
    return {
        **project_config_response(active.project, active.use),
        "environment_id": active.environment.id,
    }


def deployment_response(project: ProjectRow, deployment: Deployment) -> dict[str, Any]:
    """The v4 ``EnvironmentProjectConfigResponse`` (config keys ``null`` when none is deployed)."""
    env, config = deployment.environment, deployment.config
    return {
        "project_id": project.id,
        "project_name": project.name,
        "model_config_id": config.id if config else None,
        "model_config_name": config.name if config else None,
        "environment_id": env.id,
        "environment_name": env.name,
        "environment_tag": env.tag,
    }


def page_response(
    records: list[dict[str, Any]], *, page: int, size: int, total: int
) -> dict[str, Any]:
    """The v4 ``PaginatedData_*`` shape (1-based ``page``)."""
    return {"records": records, "page": page, "size": size, "total": total}
