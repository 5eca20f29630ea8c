"""v4 endpoints chatgate does not offer: an authenticated caller gets a 501 naming the feature.

Listed here rather than left to the router's 404 so a v4 client learns the endpoint exists in the
API but not in this server. They are kept out of the OpenAPI document, which describes only what
chatgate serves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter

from chatgate.api.deps import OrgDep
from chatgate.errors import NotImplementedByServer

router = APIRouter()

#: (method, path, what is missing) for every v4 operation of the unimplemented tags.
NOT_IMPLEMENTED: tuple[tuple[str, str, str], ...] = (
    ("POST", "/completion", "completions"),
    ("POST", "/completion-deployed", "completions"),
    ("POST", "/completion-model-config", "completions"),
    ("GET", "/datapoints/{id}", "datapoints"),
    ("PATCH", "/datapoints/{id}", "datapoints"),
    ("DELETE", "/datapoints", "datapoints"),
    ("GET", "/projects/{project_id}/datasets", "datasets"),
    ("POST", "/projects/{project_id}/datasets", "datasets"),
    ("GET", "/datasets", "datasets"),
    ("GET", "/datasets/{id}", "datasets"),
    ("DELETE", "/datasets/{id}", "datasets"),
    ("PATCH", "/datasets/{id}", "datasets"),
    ("GET", "/datasets/{dataset_id}/datapoints", "datasets"),
    ("POST", "/datasets/{dataset_id}/datapoints", "datasets"),
    ("GET", "/evaluations/{id}", "evaluations"),
    ("GET", "/evaluations/{id}/datapoints", "evaluations"),
    ("GET", "/projects/{project_id}/evaluations", "evaluations"),
    ("POST", "/projects/{project_id}/evaluations", "evaluations"),
    ("POST", "/evaluations/{evaluation_id}/log", "evaluations"),
    ("POST", "/evaluations/{evaluation_id}/result", "evaluations"),
    ("PATCH", "/evaluations/{id}/status", "evaluations"),
    ("PATCH", "/evaluations/{id}/evaluators", "evaluations"),
    ("GET", "/evaluations", "evaluations"),
    ("GET", "/evaluators", "evaluators"),
    ("POST", "/evaluators", "evaluators"),
    ("GET", "/evaluators/{id}", "evaluators"),
    ("DELETE", "/evaluators/{id}", "evaluators"),
    ("PATCH", "/evaluators/{id}", "evaluators"),
)


def _handler(method: str, path: str, feature: str) -> Callable[[OrgDep], Awaitable[None]]:
    async def not_implemented(principal: OrgDep) -> None:
        # OrgDep authenticates first: an unauthenticated caller gets the usual 401.
        raise NotImplementedByServer(
            f"{method} /v4{path}: {feature} are part of the v4 API but not implemented by "
            "chatgate (it serves chat, model configs, projects, deployments, logs, feedback "
            "and sessions)"
        )

    return not_implemented


for _method, _path, _feature in NOT_IMPLEMENTED:
    router.add_api_route(
        _path,
        _handler(_method, _path, _feature),
        methods=[_method],
        include_in_schema=False,
        name=f"not_implemented_{_method.lower()}_{_path}",
    )
