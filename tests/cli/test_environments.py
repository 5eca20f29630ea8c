"""`chatgate environments create|list` as a real process, and the ids it prints in use."""

from __future__ import annotations

from pathlib import Path

import httpx

from chatgate.app import create_app
from chatgate.settings import Settings
from tests.cli.test_cli import run
from tests.conftest import UvicornThread


def key_for(data_dir: Path, org: str) -> str:
    return run(data_dir, "keys", "create", "--org", org).stdout.strip().splitlines()[-1]


def test_create_and_list(tmp_path: Path) -> None:
    key_for(tmp_path, "acme")
    listed = run(tmp_path, "environments", "list", "--org", "acme").stdout
    assert "production" in listed and "default" in listed
    env_id = run(tmp_path, "environments", "create", "staging", "--org", "acme").stdout.strip()
    assert env_id.startswith("env_")
    listed = run(tmp_path, "environments", "list", "--org", "acme").stdout
    assert env_id in listed and "staging" in listed and "other" in listed
    duplicate = run(tmp_path, "environments", "create", "staging", "--org", "acme", check=False)
    assert duplicate.returncode == 1
    unknown = run(tmp_path, "environments", "list", "--org", "nobody", check=False)
    assert unknown.returncode == 1


def test_created_environment_is_deployable_only_in_its_organisation(tmp_path: Path) -> None:
    key_a = key_for(tmp_path, "acme")
    key_b = key_for(tmp_path, "globex")
    env_id = run(tmp_path, "environments", "create", "staging", "--org", "acme").stdout.strip()
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'chatgate.db'}")
    with UvicornThread(create_app(settings)) as runner:
        url = f"http://127.0.0.1:{runner.port}/v4"
        results = {}
        for org, key in (("acme", key_a), ("globex", key_b)):
            with httpx.Client(base_url=url, headers={"X-API-KEY": key}) as client:
                registered = client.post(
                    "/model-configs", json={"project": "p", "model": "m", "provider": "mock"}
                ).json()
                project_id = registered["project_id"]
                deployed = client.patch(
                    f"/projects/{project_id}/deploy-config",
                    json={
                        "config_id": registered["config"]["id"],
                        "environments": [{"id": env_id}],
                    },
                )
                results[org] = deployed
        assert results["acme"].status_code == 200
        names = {d["environment_name"]: d for d in results["acme"].json()}
        assert names["staging"]["environment_id"] == env_id
        assert names["staging"]["model_config_id"] is not None
        assert names["production"]["model_config_id"] is None
        assert results["globex"].status_code == 404
