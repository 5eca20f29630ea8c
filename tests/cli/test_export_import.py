"""`chatgate export` / `chatgate import` as real processes, between two real SQLite stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from humanloop import Humanloop

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI


def chatgate(data_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "CHATGATE_DATA_DIR": str(data_dir), "COLUMNS": "120"}
    env.pop("CHATGATE_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", *args], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    return result


def without_org(entry: dict[str, Any]) -> dict[str, Any]:
    """An exported line minus the organisation ids, which differ between the two stores."""
    out = {k: ({**v, "org_id": None} if isinstance(v, dict) else v) for k, v in entry.items()}
    out["feedback"] = [{**f, "org_id": None} for f in entry["feedback"]]
    return out


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def fill(server: RunningServer) -> tuple[Humanloop, str]:
    hl = Humanloop(api_key=server.key_a, host=server.url)
    chat = hl.chat(
        project="moving",
        session_reference_id="conv-1",
        model_config={"model": "gpt-4o", "temperature": 0.5},
        messages=[{"role": "user", "content": "hello"}],
    )
    chat_id = chat.data[0].id
    hl.projects.create_feedback_type(
        id=chat.project_id, type="tone", _class="select", values=[{"value": "warm"}]
    )
    hl.feedback(type="tone", value="warm", data_id=chat_id)
    hl.feedback(type="rating", value="good", data_id=chat_id)
    hl.log(
        project="moving",
        parent_id=chat_id,
        config={"model": "gpt-4o", "provider": "openai"},
        inputs={"x": "é"},
        output="child",
        judgment=0.75,
        reference_id="child-1",
    )
    hl.log(project="other", config={"model": "gpt-4o"}, output="not exported")
    return hl, chat_id


def test_export_then_import_into_a_new_store_keeps_everything(
    tmp_path: Path, server: RunningServer, fake: FakeOpenAI
) -> None:
    _, chat_id = fill(server)
    exported = tmp_path / "moving.jsonl"
    result = chatgate(
        server.data_dir, "export", "--org", "acme", "--project", "moving", "--output", str(exported)
    )
    assert b"exported 2 logs" in result.stderr
    lines = read_lines(exported)
    assert [e["log"]["output"] for e in lines] == ["Echo: hello", "child"]
    assert lines[1]["log"]["parent_id"] == chat_id
    assert [f["type"] for f in lines[0]["feedback"]] == ["tone", "rating"]

    # A second store, served by a second server: import into its "acme", then read through the API.
    runner, target = start_server(tmp_path / "target", fake.url)
    first = chatgate(target.data_dir, "import", "--org", "acme", str(exported))
    assert b"imported 2 logs, 0 already present" in first.stderr
    again = chatgate(target.data_dir, "import", "--org", "acme", str(exported))
    assert b"imported 0 logs, 2 already present" in again.stderr

    reexported = tmp_path / "again.jsonl"
    chatgate(
        target.data_dir,
        "export",
        "--org",
        "acme",
        "--project",
        "moving",
        "--output",
        str(reexported),
    )
    assert [without_org(e) for e in read_lines(reexported)] == [without_org(e) for e in lines]

    with runner:
        moved = Humanloop(api_key=target.key_a, host=target.url)
        log = moved.logs.get(id=chat_id)
        assert log.output == "Echo: hello" and log.session_reference_id == "conv-1"
        assert [(f.type, f.value) for f in log.feedback] == [("tone", "warm"), ("rating", "good")]
        child = moved.logs.list(project_id=log.project_id, search="child").records[0]
        assert child.parent_id == chat_id and child.judgment == 0.75
        assert child.inputs == {"x": "é"} and child.reference_id == "child-1"
        assert moved.logs.list(project_id=log.project_id).total == 2
        # The project's feedback types came along: the custom type still validates.
        moved.feedback(type="tone", value="warm", data_id=child.id)


def test_export_to_stdout_and_import_from_stdin(tmp_path: Path, server: RunningServer) -> None:
    fill(server)
    out = chatgate(server.data_dir, "export", "--org", "acme", "--project", "moving")
    assert len(out.stdout.splitlines()) == 2
    env = {**os.environ, "CHATGATE_DATA_DIR": str(tmp_path / "fresh")}
    env.pop("CHATGATE_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "import", "--org", "newco"],
        input=out.stdout,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"imported 2 logs" in result.stderr


def test_importing_another_organisations_ids_is_refused(
    tmp_path: Path, server: RunningServer
) -> None:
    fill(server)
    exported = tmp_path / "moving.jsonl"
    chatgate(
        server.data_dir, "export", "--org", "acme", "--project", "moving", "--output", str(exported)
    )
    env = {**os.environ, "CHATGATE_DATA_DIR": str(server.data_dir)}
    env.pop("CHATGATE_DATABASE_URL", None)
    refused = subprocess.run(
        [sys.executable, "-m", "chatgate", "import", "--org", "globex", str(exported)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert b"belongs to another organisation" in refused.stderr
    store = server.store()
    try:
        globex = store.orgs.org_id_by_name("globex")
        assert store.logs.recent_logs(org_id=globex) == []
    finally:
        store.close()
