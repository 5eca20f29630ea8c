"""chatgate's own OpenAPI document against Humanloop's v4 document, for what chatgate serves.

Every operation chatgate documents must exist in v4 with the same path and method, its request
body must require the same fields, and the operations of the chat, model config and project
endpoints must all be present. Skipped only when the v4 document is not available.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatgate.app import create_app
from chatgate.settings import Settings

SPEC_PATHS = (
    Path(__file__).resolve().parents[3] / "shared" / "spec" / "humanloop-v4-openapi.json",
    Path("/work/shared/spec/humanloop-v4-openapi.json"),
)

#: Operations this part of chatgate implements; each must be in chatgate's document.
REQUIRED = {
    ("post", "/chat"),
    ("post", "/chat-model-config"),
    ("post", "/chat-deployed"),
    ("post", "/model-configs"),
    ("get", "/model-configs/{id}"),
    ("post", "/model-configs/{id}/export"),
    ("post", "/model-configs/serialize"),
    ("post", "/model-configs/deserialize"),
    ("get", "/projects"),
    ("post", "/projects"),
    ("get", "/projects/{id}"),
    ("patch", "/projects/{id}"),
    ("delete", "/projects/{id}"),
    ("get", "/projects/{id}/configs"),
    ("get", "/projects/{id}/active-config"),
    ("delete", "/projects/{id}/active-config"),
    ("get", "/projects/{id}/deployed-configs"),
    ("patch", "/projects/{project_id}/deploy-config"),
    ("delete", "/projects/{project_id}/deployed-config/{environment_id}"),
    ("get", "/logs/{id}"),
    ("get", "/sessions/{id}"),
}
METHODS = {"get", "post", "put", "patch", "delete"}


def load_spec() -> dict[str, Any] | None:
    for path in SPEC_PATHS:
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    return None


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded = load_spec()
    if loaded is None:
        pytest.skip("the v4 OpenAPI document is not available (../shared/spec/)")
    return loaded


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("drift")
    document: dict[str, Any] = create_app(
        Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'x.db'}")
    ).openapi()
    return document


def operations(document: dict[str, Any], prefix: str = "") -> dict[tuple[str, str], Any]:
    return {
        (method, path.removeprefix(prefix)): operation
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
        if method in METHODS
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def required_fields(document: dict[str, Any], operation: dict[str, Any]) -> frozenset[str] | None:
    """The body's required fields; for a union, those every variant requires. None: no body."""
    body = operation.get("requestBody")
    if body is None:
        return None
    schema = _resolve(document, body["content"]["application/json"]["schema"])
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        sets = [
            frozenset(_resolve(document, v).get("required", []))
            for v in variants
            if _resolve(document, v).get("type", "object") == "object"
        ]
        return frozenset.intersection(*sets) if sets else frozenset()
    return frozenset(schema.get("required", []))


def test_every_documented_operation_is_a_v4_operation(
    spec: dict[str, Any], ours: dict[str, Any]
) -> None:
    theirs = operations(spec)
    mine = operations(ours, "/v4")
    assert set(mine) - set(theirs) == set(), "chatgate documents operations v4 does not have"
    assert REQUIRED - set(mine) == set(), "implemented operations missing from the document"
    assert all(path.startswith("/v4/") for path in ours["paths"])


def test_request_bodies_require_the_same_fields(spec: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs = operations(spec)
    drift = {}
    for key, operation in operations(ours, "/v4").items():
        if key not in theirs:
            continue
        expected = required_fields(spec, theirs[key])
        actual = required_fields(ours, operation)
        if expected != actual:
            drift[key] = {"v4": expected, "chatgate": actual}
    assert drift == {}


def test_path_parameters_have_v4_names(spec: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs = operations(spec)
    for key, operation in operations(ours, "/v4").items():
        if key not in theirs:
            continue
        mine = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        v4 = {p["name"] for p in theirs[key].get("parameters", []) if p["in"] == "path"}
        assert mine == v4, key


def test_the_comparison_can_fail(spec: dict[str, Any], ours: dict[str, Any]) -> None:
    """Guard against a vacuous check: a tampered copy of our document shows drift."""
    tampered = json.loads(json.dumps(ours))
    schema = tampered["components"]["schemas"]["ChatModelConfigRequest"]
    schema["required"] = ["messages"]
    key = ("post", "/chat-model-config")
    ops = operations(tampered, "/v4")
    assert required_fields(tampered, ops[key]) != required_fields(spec, operations(spec)[key])
