"""Every v4 operation of the tags chatgate does not implement answers 501 after authentication."""

from __future__ import annotations

import re

import pytest

from chatgate.api.routes.not_implemented import NOT_IMPLEMENTED
from tests.api.test_openapi_drift import load_spec
from tests.conftest import RunningServer

UNIMPLEMENTED_PREFIXES = ("/completion", "/datapoints", "/datasets", "/evaluations", "/evaluators")


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x_1", path)


def test_the_table_covers_every_unimplemented_operation_of_the_spec() -> None:
    spec = load_spec()
    if spec is None:
        pytest.skip("the v4 OpenAPI document is not available")
    expected = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith(UNIMPLEMENTED_PREFIXES)
        or re.fullmatch(r"/projects/\{project_id\}/(datasets|evaluations)", path)
    }
    assert {(method, path) for method, path, _ in NOT_IMPLEMENTED} == expected


def test_each_answers_501_with_the_v4_error_body(server: RunningServer) -> None:
    with server.client() as client:
        for method, path, feature in NOT_IMPLEMENTED:
            response = client.request(method, _concrete(path), json={})
            assert response.status_code == 501, (method, path)
            detail = response.json()["detail"]
            assert detail["type"] == "not_implemented_error"
            assert detail["code"] == 501 and detail["origin"] == "chatgate"
            assert feature in detail["message"] and path in detail["message"]


def test_authentication_comes_first(server: RunningServer) -> None:
    with server.client("cg_wrong") as client:
        for method, path, _ in NOT_IMPLEMENTED:
            assert client.request(method, _concrete(path)).status_code == 401, (method, path)
