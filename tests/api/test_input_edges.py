"""No 500 from any input: each finding of the review (and of the schemathesis run) as a request to
a real server, answered with a 4xx in the v4 shape, before any provider is called.

The edge rules are in docs/compat.md ("Numbers, times and text a request may hold"). Tests that
depend on the database run on SQLite and PostgreSQL both.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chatgate.store import schema as t
from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI

BIG = 2**64
CHAT = {
    "project": "edges",
    "messages": [{"role": "user", "content": "hello"}],
    "model_config": {"model": "gpt-4o-mini"},
}


def chat_body(**overrides: Any) -> dict[str, Any]:
    config = {**CHAT["model_config"], **overrides.pop("model_config", {})}
    return {**CHAT, "model_config": config, **overrides}


def post_raw(server: RunningServer, path: str, raw: bytes) -> httpx.Response:
    with server.client() as client:
        return client.post(path, content=raw, headers={"Content-Type": "application/json"})


def assert_422_at(response: httpx.Response, loc: list[str | int], kind: str | None = None) -> None:
    """A 422 in the v4 validation shape with an item at ``loc`` (of type ``kind``)."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all(set(item) == {"loc", "msg", "type"} for item in detail), detail
    matching = [item for item in detail if item["loc"] == loc]
    assert matching, detail
    if kind is not None:
        assert matching[0]["type"] == kind, matching


@pytest.fixture(params=["sqlite", "postgres"])
def both(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeOpenAI
) -> Iterator[RunningServer]:
    """chatgate on SQLite, then on PostgreSQL, whatever CHATGATE_TEST_BACKEND says."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    runner, running = start_server(tmp_path, fake.url, database_url=url)
    with runner:
        yield running


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (chat_body(model_config={"max_tokens": BIG}), ["model_config", "max_tokens"], None),
        (chat_body(model_config={"max_tokens": 2**31}), ["model_config", "max_tokens"], None),
        (chat_body(model_config={"seed": BIG}), ["model_config", "seed"], None),
        (chat_body(seed=-(2**63) - 1), ["seed"], None),
        (chat_body(inputs={"n": BIG}), ["inputs"], "int64_range"),
        (chat_body(inputs={"deep": [{"n": -BIG}]}), ["inputs"], "int64_range"),
        (chat_body(metadata={"n": BIG}), ["metadata"], "int64_range"),
        (chat_body(model_config={"other": {"n": BIG}}), ["model_config", "other"], "int64_range"),
        (
            chat_body(
                model_config={
                    "tools": [{"name": "f", "parameters": {"type": "object", "maximum": BIG}}]
                }
            ),
            ["model_config", "tools", 0, "ModelConfigToolRequest", "parameters"],
            "int64_range",
        ),
        (
            chat_body(response_format={"type": "json_schema", "json_schema": {"n": BIG}}),
            ["response_format", "json_schema"],
            "int64_range",
        ),
    ],
    ids=[
        "max_tokens-2^64",
        "max_tokens-2^31",
        "seed-2^64",
        "top-level-seed-below-int64",
        "inputs",
        "inputs-nested",
        "metadata",
        "other",
        "tool-parameters",
        "response_format",
    ],
)
def test_integers_out_of_range_are_422_before_the_provider_is_called(
    server: RunningServer, fake: FakeOpenAI, body: dict[str, Any], loc: list[Any], kind: str | None
) -> None:
    response = server.post_chat(body)
    assert_422_at(response, ["body", *loc], kind)
    assert fake.requests == []  # refused before anything was called (and billed)


def test_metadata_beyond_64_bits_is_refused_before_the_provider_is_billed(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    """The review's case: this was a 503 *after* the provider call (the log could not be
    serialised); now the provider never sees it, and the connection stays usable."""
    with server.client() as client:
        refused = client.post("/chat", json=chat_body(metadata={"billing": BIG}))
        assert_422_at(refused, ["body", "metadata"], "int64_range")
        assert "['billing']" in refused.json()["detail"][0]["msg"]
        assert fake.requests == []
        fine = client.post("/chat", json=chat_body(metadata={"billing": 2**63 - 1}))
    assert fine.status_code == 200, fine.text
    assert server.get_log(fine.json()["data"][0]["id"])["metadata"] == {"billing": 2**63 - 1}


def test_reasoning_effort_must_be_a_word_or_a_32_bit_budget(server: RunningServer) -> None:
    big = post_raw(
        server,
        "/chat",
        b'{"project":"p","messages":[{"role":"user","content":"hi"}],'
        b'"model_config":{"model":"gpt-4o","reasoning_effort":1e30}}',
    )
    assert big.status_code == 422, big.text
    assert all(
        i["loc"][:3] == ["body", "model_config", "reasoning_effort"] for i in big.json()["detail"]
    )
    huge = server.post_chat(chat_body(reasoning_effort=BIG))
    assert huge.status_code == 422, huge.text
    assert all(i["loc"][:2] == ["body", "reasoning_effort"] for i in huge.json()["detail"])


@pytest.mark.parametrize(
    ("path", "raw", "loc"),
    [
        (
            "/chat",
            b'{"project":"p","messages":[{"role":"user","content":"hi"}],'
            b'"model_config":{"model":"gpt-4o","temperature":NaN}}',
            ["body", "model_config", "temperature"],
        ),
        (
            "/chat",
            b'{"project":"p","messages":[{"role":"user","content":"hi"}],'
            b'"inputs":{"x":Infinity},"model_config":{"model":"gpt-4o"}}',
            ["body", "inputs"],
        ),
        (
            "/chat",
            b'{"project":"p","messages":[{"role":"user","content":"hi"}],'
            b'"metadata":{"x":[1,-Infinity]},"model_config":{"model":"gpt-4o"}}',
            ["body", "metadata"],
        ),
        (
            "/chat",
            b'{"project":"p","messages":[{"role":"user","content":"hi"}],'
            b'"model_config":{"model":"gpt-4o","top_p":1e400}}',
            ["body", "model_config", "top_p"],
        ),
        (
            "/logs",
            b'{"project":"p","config":{"model":"m"},"duration":NaN}',
            ["body", "LogRequest", "duration"],
        ),
        (
            "/logs",
            b'{"project":"p","config":{"model":"m"},"provider_response":{"t":NaN}}',
            ["body", "LogRequest", "provider_response"],
        ),
    ],
    ids=["temperature", "inputs", "metadata", "overflow-to-infinity", "duration", "response"],
)
def test_nan_and_infinity_are_refused(
    server: RunningServer, fake: FakeOpenAI, path: str, raw: bytes, loc: list[Any]
) -> None:
    assert_422_at(post_raw(server, path, raw), loc, "finite_number")
    assert fake.requests == []


def test_logged_counts_beyond_their_columns_are_422(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post(
            "/logs", json={"project": "p", "config": {"model": "m"}, "prompt_tokens": 2**40}
        )
    assert_422_at(response, ["body", "LogRequest", "prompt_tokens"], "less_than_equal")


def test_page_numbers_past_their_bound_are_422_on_every_list(server: RunningServer) -> None:
    with server.client() as client:
        project_id = client.post("/chat", json=CHAT).json()["project_id"]
        lists = [
            ("GET", "/logs", {"project_id": project_id}),
            ("GET", "/projects", {}),
            ("GET", "/sessions", {"project_id": project_id}),
            ("POST", f"/projects/{project_id}/export", {}),
        ]
        for method, path, params in lists:
            for page in (BIG, 2**63, 2**31):
                response = client.request(method, path, params={**params, "page": page})
                assert_422_at(response, ["query", "page"], "less_than_equal")
            last = client.request(method, path, params={**params, "page": 2**31 - 1})
            assert last.status_code == 200, last.text
            assert last.json()["records"] == []
            assert last.json()["page"] == 2**31 - 1


def test_text_longer_than_its_column_is_422_before_the_provider_is_called(
    both: RunningServer, fake: FakeOpenAI
) -> None:
    """PostgreSQL enforces the store's VARCHAR lengths (SQLite does not): a 300-character model
    name was a 503 *after* the provider call, as the log could not be written."""
    server = both
    too_long = {
        ("project",): 501,
        ("session_reference_id",): 501,
        ("source",): 501,
        ("user",): 501,
        ("source_datapoint_id",): 101,
        ("model_config", "model"): 201,
        ("model_config", "name"): 501,
    }
    with server.client() as client:
        for path, length in too_long.items():
            body = chat_body()
            target = body["model_config"] if len(path) == 2 else body
            target[path[-1]] = "x" * length
            assert_422_at(client.post("/chat", json=body), ["body", *path], "string_too_long")
        assert fake.requests == []
        for name, length in {"reference_id": 501, "environment": 201}.items():
            logged = client.post(
                "/logs", json={"project": "p", "config": {"model": "m"}, name: "x" * length}
            )
            assert_422_at(logged, ["body", "LogRequest", name], "string_too_long")
        at_the_limit = chat_body(
            project="p" * 500, source="s" * 500, model_config={"model": "gpt-" + "4" * 196}
        )
        fine = client.post("/chat", json=at_the_limit)
    assert fine.status_code == 200, fine.text
    assert server.get_log(fine.json()["data"][0]["id"])["source"] == "s" * 500


# --- times --------------------------------------------------------------------------------------


def test_query_dates_at_the_ends_of_the_calendar(server: RunningServer) -> None:
    with server.client() as client:
        project_id = client.post("/chat", json=CHAT).json()["project_id"]
        everything = client.get(
            "/logs",
            params={"project_id": project_id, "start_date": "0001-01-01", "end_date": "9999-12-31"},
        )
        assert everything.status_code == 200, everything.text
        assert everything.json()["total"] == 1
        for name, value in [
            ("start_date", "0001-01-01T00:00:00+14:00"),  # before year 1 in UTC
            ("end_date", "9999-12-31T23:00:00-14:00"),  # after year 9999 in UTC
        ]:
            response = client.get("/logs", params={"project_id": project_id, name: value})
            assert_422_at(response, ["query", name], "datetime_range")


def test_logged_times_must_lie_in_years_1_to_9999_in_utc(server: RunningServer) -> None:
    with server.client() as client:
        earliest = client.post(
            "/logs",
            json={"project": "old", "config": {"model": "m"}, "created_at": "0001-01-01T00:00:00"},
        )
        assert earliest.status_code == 200, earliest.text
        assert server.get_log(earliest.json()["id"])["created_at"] == "0001-01-01T00:00:00Z"
        before = client.post(
            "/logs",
            json={
                "project": "old",
                "config": {"model": "m"},
                "created_at": "0001-01-01T00:00:00+14:00",
            },
        )
        assert_422_at(before, ["body", "LogRequest", "created_at"], "datetime_range")
        feedback = client.post(
            "/feedback",
            json={
                "type": "comment",
                "value": "late",
                "data_id": earliest.json()["id"],
                "created_at": "9999-12-31T23:59:59-00:01",
            },
        )
        assert_422_at(feedback, ["body", "FeedbackRequest", "created_at"], "datetime_range")
        # The project's logs still read.
        listed = client.get("/logs", params={"project_id": earliest.json()["project_id"]})
    assert listed.status_code == 200, listed.text
    assert [r["created_at"] for r in listed.json()["records"]] == ["0001-01-01T00:00:00Z"]


#: Values a database can hold in ``created_at`` that no datetime can (PostgreSQL also takes NaN;
#: SQLite stores a NaN as NULL, which the column refuses).
EXTREMES = [-1e300, 1e300, -62135647200.0, 253402300800.5, math.inf, -math.inf]


def test_a_stored_time_no_datetime_can_hold_never_breaks_a_read(both: RunningServer) -> None:
    server = both
    postgres = server.settings.resolved_database_url.startswith("postgresql")
    extremes = [*EXTREMES, math.nan] if postgres else EXTREMES
    with server.client() as client:
        session = client.post("/sessions").json()["id"]
        ids = []
        for _ in extremes:
            created = client.post("/chat", json={**CHAT, "session_id": session})
            assert created.status_code == 200, created.text
            ids.append(created.json()["data"][0]["id"])
        project_id = created.json()["project_id"]
        feedback = client.post(
            "/feedback", json={"type": "comment", "value": "x", "data_id": ids[0]}
        )
        assert feedback.status_code == 200, feedback.text
    store = server.store()
    with store.engine.begin() as connection:
        for log_id, value in zip(ids, extremes, strict=True):
            connection.execute(
                sa.update(t.logs).where(t.logs.c.id == log_id).values(created_at=value)
            )
        connection.execute(sa.update(t.feedback).values(created_at=-math.inf))
    store.close()

    with server.client() as client:
        reads = [
            client.get("/logs", params={"project_id": project_id, "size": 100}),
            client.get("/logs", params={"session_id": session}),
            client.post(f"/projects/{project_id}/export", params={"size": 100}),
            client.get(f"/sessions/{session}"),
            client.get("/sessions", params={"project_id": project_id}),
            client.get(f"/projects/{project_id}/configs"),
            *[client.get(f"/logs/{log_id}") for log_id in ids],
        ]
    for response in reads:
        assert response.status_code == 200, (response.request.url, response.text)
    listed = {r["id"]: r["created_at"] for r in reads[0].json()["records"]}
    assert listed[ids[0]] == "0001-01-01T00:00:00Z"  # -1e300: the earliest time there is
    assert listed[ids[1]] == "9999-12-31T23:59:59Z"  # 1e300: the latest
    assert listed[ids[2]] == "0001-01-01T00:00:00Z"  # "0001-01-01T00:00:00+14:00", as stored before
    assert reads[2].json()["total"] == len(extremes)

    env = {**os.environ, "CHATGATE_DATABASE_URL": server.settings.resolved_database_url}
    env["CHATGATE_DATA_DIR"] = str(server.data_dir)
    outputs = []
    for command in (
        ["logs", "--org", "acme", "--project", "edges"],
        ["export", "--org", "acme", "--project", "edges"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "chatgate", *command],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        outputs.append(result.stdout)
    # The table shows the clamped times (the newest first: 1e300 and +inf as the latest time).
    assert "9999-12-31" in outputs[0] and "0001-01-01" in outputs[0], outputs[0]
    assert len(outputs[1].splitlines()) == len(extremes)


# --- NUL ----------------------------------------------------------------------------------------


def test_a_nul_search_is_422_not_a_match_for_everything(both: RunningServer) -> None:
    server = both
    with server.client() as client:
        project_id = client.post("/chat", json=CHAT).json()["project_id"]
        for name in ("search", "metadata_search"):
            for value in ("\x00", "hel\x00lo"):
                response = client.get("/logs", params={"project_id": project_id, name: value})
                assert_422_at(response, ["query", name], "string_nul")
        projects = client.get("/projects", params={"filter": "\x00"})
        assert_422_at(projects, ["query", "filter"], "string_nul")
        # A search without NUL still finds what it should, and only that.
        found = client.get("/logs", params={"project_id": project_id, "search": "hello"})
        missing = client.get("/logs", params={"project_id": project_id, "search": "absent"})
    assert found.json()["total"] == 1
    assert missing.json()["total"] == 0


def test_nul_in_a_path_or_a_body_is_422(both: RunningServer, fake: FakeOpenAI) -> None:
    server = both
    with server.client() as client:
        for path in ("/logs/data_%00", "/projects/pr_%00", "/sessions/%00", "/model-configs/%00"):
            assert_422_at(client.get(path), ["path", "id"], "string_nul")
        response = client.post(
            "/chat", json=chat_body(messages=[{"role": "user", "content": "a\x00b"}])
        )
        assert_422_at(response, ["body", "messages", 0, "content"], "string_nul")
        assert fake.requests == []  # the provider was not called for a log PostgreSQL refuses
        logged = client.post(
            "/logs", json={"project": "n", "config": {"model": "m"}, "output": "\x00"}
        )
        assert_422_at(logged, ["body", "output"], "string_nul")
        named = client.post("/projects", json={"name": "x\x00"})
        assert_422_at(named, ["body", "name"], "string_nul")
        # The six characters \u0000 written as text are no NUL: stored and read back as sent.
        text = client.post(
            "/logs", json={"project": "n", "config": {"model": "m"}, "output": "a\\u0000"}
        )
    assert text.status_code == 200, text.text
    assert server.get_log(text.json()["id"])["output"] == "a\\u0000"


# --- caller-supplied endpoints -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("a" * 300 + ".example.com", "longer than 253"),
        ("a" * 64 + ".example.com", "longer than 63"),
        ("a..example.com", "empty label"),
        ("exa mple.com", "letters, digits"),
        ("-bad.example.com", "starts or ends with '-'"),
    ],
    ids=["300-char-label", "64-char-label", "empty-label", "space", "hyphen"],
)
def test_an_endpoint_host_that_is_no_dns_name_is_a_400(
    server: RunningServer, fake: FakeOpenAI, host: str, problem: str
) -> None:
    response = server.post_chat(
        chat_body(
            model_config={"provider": "openai_azure"},
            provider_api_keys={"openai_azure": "k", "openai_azure_endpoint": f"https://{host}/"},
        )
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail["type"] == "upstream_url_refused" and detail["origin"] == "chatgate"
    assert problem in detail["message"], detail
    assert fake.requests == []


@pytest.mark.parametrize("key", ["sk-a\nX-Injected: 1", "sk-\r", "sk-\t1", "sk-\x7f"])
def test_a_provider_key_with_control_characters_is_422_not_a_502(
    server: RunningServer, fake: FakeOpenAI, key: str
) -> None:
    """It goes into a header; the HTTP client refused it as a header injection, which was
    reported as a 502 blaming the provider."""
    response = server.post_chat(chat_body(provider_api_keys={"openai": key}))
    assert_422_at(response, ["body", "provider_api_keys", "openai"], "header_value")
    assert key not in response.text  # never echoed
    assert fake.requests == []


# --- stored configs ------------------------------------------------------------------------------


def test_a_logged_config_no_chat_can_use_is_a_4xx_not_a_500(server: RunningServer) -> None:
    """POST /logs records configs as called (a penalty of 5, a completion template); chatting
    with one, deploying it or exporting it was a 500."""
    with server.client() as client:
        odd = client.post(
            "/logs", json={"project": "cfg", "config": {"model": "gpt-4o", "presence_penalty": 5}}
        )
        completion = client.post(
            "/logs", json={"project": "cfg", "config": {"model": "gpt-4o", "prompt_template": "x"}}
        )
        odd_id = server.get_log(odd.json()["id"])["config"]["id"]
        completion_id = server.get_log(completion.json()["id"])["config"]["id"]
        messages = [{"role": "user", "content": "hi"}]
        chat = client.post(
            "/chat-model-config", json={"model_config_id": odd_id, "messages": messages}
        )
        assert chat.status_code == 400, chat.text
        assert "presence_penalty" in chat.json()["detail"]["message"]
        chat = client.post(
            "/chat-model-config", json={"model_config_id": completion_id, "messages": messages}
        )
        assert chat.status_code == 501, chat.text
        assert client.post(f"/model-configs/{completion_id}/export").status_code == 501
        assert client.post(f"/model-configs/{odd_id}/export").status_code == 400
        project_id = odd.json()["project_id"]
        deployed = client.patch(f"/projects/{project_id}/deploy-config", json={"config_id": odd_id})
        assert deployed.status_code == 200, deployed.text
        chat = client.post("/chat-deployed", json={"project_id": project_id, "messages": messages})
    assert chat.status_code == 400, chat.text
    assert chat.json()["detail"]["type"] == "bad_request_error"


# --- .prompt files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("front", "loc", "kind"),
    [
        ("other:\n  b: !!binary aGVsbG8=\n", ["other"], "json_type"),
        ("other:\n  when: 2020-01-01\n", ["other"], "json_type"),
        ("other:\n  s: !!set {a, b}\n", ["other"], "json_type"),
        ("other:\n  x: .inf\n", ["other"], "finite_number"),
        ("other:\n  x: 123456789012345678901234567890\n", ["other"], "int64_range"),
        ("temperature: .nan\n", ["temperature"], "finite_number"),
        ('name: "a\\0b"\n', ["name"], "string_nul"),
    ],
    ids=["binary", "date", "set", "infinity", "big-int", "nan", "nul"],
)
def test_prompt_file_yaml_that_json_cannot_hold_is_422(
    server: RunningServer, front: str, loc: list[Any], kind: str
) -> None:
    """A .prompt file's front matter is YAML, which has more than JSON; bytes in `other` were a
    500 (the config could not be serialised)."""
    text = f"---\nmodel: gpt-4o\n{front}---\n<user>\n  hi\n</user>\n"
    with server.client() as client:
        response = client.post("/model-configs/deserialize", json={"config": text})
    assert_422_at(response, ["body", "config", *loc], kind)
