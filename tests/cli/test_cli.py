"""The chatgate command, run as a real process against a real SQLite file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from humanloop import Humanloop

from tests.cli._serving import wait_until_healthy
from tests.fakes.openai_server import FakeOpenAI


def run(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHATGATE_DATA_DIR": str(data_dir), "COLUMNS": "200", **(extra_env or {})}
    env.pop("CHATGATE_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check and result.returncode:
        raise AssertionError(f"chatgate {args} failed: {result.stdout}{result.stderr}")
    return result


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, fake: FakeOpenAI):  # type: ignore[no-untyped-def]
    """`chatgate serve` as a subprocess, as the README starts it; yields (url, first key, dir)."""
    port = free_port()
    env = {
        **os.environ,
        "CHATGATE_DATA_DIR": str(tmp_path),
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": "sk-from-env",
    }
    env.pop("CHATGATE_DATABASE_URL", None)
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}/v4"
    try:
        wait_until_healthy(process, output, f"http://127.0.0.1:{port}")
        printed = output.read_text()
        keys = [line.strip() for line in printed.splitlines() if line.startswith("cg_")]
        assert len(keys) == 1, printed
        assert url in printed
        yield url, keys[0], tmp_path
    finally:
        process.terminate()
        process.wait(15)


def test_first_start_prints_a_working_key_and_the_url(served) -> None:  # type: ignore[no-untyped-def]
    url, key, _ = served
    hl = Humanloop(api_key=key, host=url)
    response = hl.chat(
        project="quickstart",
        model_config={"model": "mock-1", "provider": "mock"},
        messages=[{"role": "user", "content": "hello chatgate"}],
    )
    assert response.data[0].output == "You said: hello chatgate"


def test_new_key_works_at_once_and_revocation(served, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    url, _, data_dir = served
    created = run(data_dir, "keys", "create", "--org", "acme")
    key = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"cg_[A-Za-z0-9_-]{43}", key)
    ok = httpx.post(
        f"{url}/chat",
        headers={"X-API-KEY": key},
        json={
            "project": "p",
            "model_config": {"model": "m", "provider": "mock"},
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert ok.status_code == 200

    listing = run(data_dir, "keys", "list", "--org", "acme").stdout
    assert key[:11] in listing and key not in listing
    assert "acme" in listing
    run(data_dir, "keys", "revoke", key[:11])
    listing = run(data_dir, "keys", "list").stdout
    assert "revoked" in listing
    assert run(data_dir, "keys", "revoke", "cg_nothing", check=False).returncode == 1


def test_logs_command(served) -> None:  # type: ignore[no-untyped-def]
    url, key, data_dir = served
    for text in ("first", "second"):
        httpx.post(
            f"{url}/chat",
            headers={"X-API-KEY": key},
            json={
                "project": "cli",
                "model_config": {"model": "m", "provider": "mock"},
                "messages": [{"role": "user", "content": text}],
            },
        ).raise_for_status()
    lines = run(
        data_dir, "logs", "--json", "--org", "default", "--project", "cli"
    ).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["output"] for r in rows] == ["You said: second", "You said: first"]
    assert rows[0]["project_name"] == "cli"
    table = run(data_dir, "logs").stdout
    assert "You said: second" in table and "mock/m" in table
    assert run(data_dir, "logs", "--org", "nobody", check=False).returncode == 1


def test_provider_keys_set_is_used_and_encrypted(served, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    url, key, data_dir = served
    secret = "sk-org-saved-key-abcdef123456"
    run(data_dir, "provider-keys", "set", "--org", "default", "openai", stdin=secret + "\n")
    response = httpx.post(
        f"{url}/chat",
        headers={"X-API-KEY": key},
        json={
            "project": "p",
            "model_config": {"model": "gpt-4o"},
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert response.status_code == 200, response.text
    assert fake.last.headers["Authorization"] == f"Bearer {secret}"
    for path in data_dir.iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes()


def test_provider_keys_set_binds_an_azure_key_to_its_endpoint(served) -> None:  # type: ignore[no-untyped-def]
    from tests.fakes.azure_server import FakeAzure

    url, key, data_dir = served
    saved, elsewhere = FakeAzure().start(), FakeAzure().start()
    try:
        secret = "azure-org-saved-key-0123456789"
        result = run(
            data_dir,
            *("provider-keys", "set", "--org", "default", "openai_azure"),
            *("--endpoint", saved.url),
            stdin=secret + "\n",
        )
        assert f"to be sent only to {saved.url}" in result.stdout
        payload = {
            "project": "p",
            "model_config": {"provider": "openai_azure", "model": "dep"},
            "messages": [{"role": "user", "content": "x"}],
        }
        headers = {"X-API-KEY": key}
        response = httpx.post(f"{url}/chat", headers=headers, json=payload)
        assert response.status_code == 200, response.text
        assert saved.last.headers["api-key"] == secret
        payload["provider_api_keys"] = {"openai_azure_endpoint": elsewhere.url}
        response = httpx.post(f"{url}/chat", headers=headers, json=payload)
        assert response.status_code == 400 and "same request" in response.text
        assert elsewhere.requests == []
    finally:
        saved.stop()
        elsewhere.stop()
    wrong = run(
        data_dir,
        *("provider-keys", "set", "--org", "default", "openai", "--endpoint", "https://x"),
        stdin="sk-x\n",
        check=False,
    )
    assert wrong.returncode == 2 and "only for providers" in wrong.stderr


def test_serve_refuses_a_bad_price_file_naming_the_entry(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai": {"my-model": {"input": 1, "cached_input": 0.5}}}))
    env = {"CHATGATE_PRICES_FILE": str(prices)}
    result = run(tmp_path, "serve", "--port", str(free_port()), check=False, extra_env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CHATGATE_PRICES_FILE" in result.stderr
    assert "['openai']['my-model'] is missing output" in result.stderr
    assert "listening" not in result.stdout


def test_db_upgrade(tmp_path: Path) -> None:
    result = run(tmp_path, "db", "upgrade")
    assert "up to date" in result.stdout
    assert (tmp_path / "chatgate.db").exists()


def _readme_blocks(language: str) -> list[str]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", readme, flags=re.S)


def test_readme_examples_work_as_printed(served) -> None:  # type: ignore[no-untyped-def]
    """The README's curl and SDK snippets, with only the key and port filled in."""
    url, key, _ = served
    port = url.split(":")[2].split("/")[0]
    [curl] = [block for block in _readme_blocks("bash") if "curl" in block]
    curl = curl.replace("cg_...", key).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    result = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(result.stdout)["data"][0]["output"] == "You said: Hi there"

    chat_snippet, stream_snippet = _readme_blocks("python")
    outputs = []
    for snippet in (chat_snippet, stream_snippet):
        snippet = snippet.replace('"cg_..."', repr(key)).replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        result = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0].splitlines()[0] == "You said: Hi there"
    assert "a helpful pirate" in outputs[0]
    assert outputs[1] == "You said: Stream this\n"
