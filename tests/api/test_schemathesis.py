"""A bounded schemathesis run against chatgate's own /v4/openapi.json: no 500 from any input.

chatgate runs for real (uvicorn on 127.0.0.1, SQLite, or PostgreSQL in the second CI pass) with
every provider's base URL pointed at the local fake servers, so no call leaves the machine.
Every operation of the document gets schema-conforming and schema-violating requests (with a
valid ``X-API-KEY``), first with random ids, then with the ids of a seeded project, log, config,
session and environment, so the fuzzed values reach the handlers rather than stopping at a 404.

Every answer must be < 500, or one of the 5xx listed in :data:`ALLOWED_5XX` on the operations
that may give it; every error body must be in the v4 shape. The run is derandomised (the same
cases every time) and bounded by :data:`EXAMPLES` per operation and mode; it takes well under
the 3 minutes it is allowed on a loaded 2-core machine (measured: see :data:`EXAMPLES`).
Each 500 it found has a regression test of its own in tests/api/test_input_edges.py.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import RunningServer, backend_url, start_server
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_server import FakeAzure
from tests.fakes.bedrock_server import ACCESS_KEY, SECRET_KEY, FakeBedrock
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.replicate_server import FakeReplicate

#: Examples per operation and generation mode (positive, negative), for each id set: about
#: 2,900 requests, measured at 60 s on SQLite and 70 s on PostgreSQL on the shared 2-core
#: machine (`pytest -s` prints the count and the time).
EXAMPLES = 40
#: A stop for a machine far slower than expected: cases after it are skipped (the run still
#: fails on any 500 it saw), so the test never runs much past the 3 minutes it is allowed.
BUDGET_SECONDS = 150

#: Operations that call a provider.
CHAT = frozenset({"POST /v4/chat", "POST /v4/chat-model-config", "POST /v4/chat-deployed"})
#: The 5xx chatgate documents (docs/compat.md "Errors"), and where each may appear here. 503
#: (database unreachable or busy) is not listed: the database stays up during this run, so a
#: 503 would be a bug (a log that could not be written, say).
ALLOWED_5XX: dict[int, frozenset[str] | None] = {
    501: None,  # v4 features chatgate does not offer (completion configs, tool configs): any
    502: CHAT,  # the provider could not be reached or answered nonsense
    504: CHAT,  # the provider did not answer in time
}
#: Where a generated request would send a call off the machine: a caller-supplied endpoint.
CALLER_ENDPOINTS = ("openai_azure_endpoint",)
#: Providers the chat cases are spread over (the generator never guesses these names).
PROVIDERS = (
    "openai",
    "openai_azure",
    "anthropic",
    "google",
    "cohere",
    "replicate",
    "bedrock",
    "groq",
    "deepseek",
    "mock",
)


@dataclass
class Fakes:
    openai: FakeOpenAI
    azure: FakeAzure
    anthropic: FakeAnthropic
    gemini: FakeGemini
    cohere: FakeCohere
    replicate: FakeReplicate
    bedrock: FakeBedrock

    def vendor_env(self) -> dict[str, str]:
        return {
            "OPENAI_BASE_URL": self.openai.url,
            "OPENAI_API_KEY": "sk-fuzz-openai",
            "GROQ_BASE_URL": self.openai.url,
            "GROQ_API_KEY": "gsk-fuzz-groq",
            "DEEPSEEK_BASE_URL": self.openai.url,
            "DEEPSEEK_API_KEY": "sk-fuzz-deepseek",
            "AZURE_OPENAI_ENDPOINT": self.azure.url,
            "AZURE_OPENAI_API_KEY": "azure-fuzz-key",
            "ANTHROPIC_BASE_URL": self.anthropic.url,
            "ANTHROPIC_API_KEY": "sk-ant-fuzz",
            "GOOGLE_GEMINI_BASE_URL": self.gemini.url,
            "GEMINI_API_KEY": "AIza-fuzz",
            "CO_API_URL": self.cohere.url,
            "CO_API_KEY": "co-fuzz",
            "REPLICATE_BASE_URL": self.replicate.url,
            "REPLICATE_API_TOKEN": "r8_fuzz",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.bedrock.url,
            "AWS_REGION": "eu-central-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    started = Fakes(
        FakeOpenAI().start(),
        FakeAzure().start(),
        FakeAnthropic().start(),
        FakeGemini().start(),
        FakeCohere().start(),
        FakeReplicate().start(),
        FakeBedrock().start(),
    )
    yield started
    for fake in vars(started).values():
        fake.stop()


@pytest.fixture
def fuzzed_server(
    tmp_path: Path, fakes: Fakes, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    database_url = backend_url(request)
    runner, running = start_server(
        tmp_path,
        "",
        database_url=database_url,
        vendor_env=fakes.vendor_env(),
        provider_max_retries=0,
        provider_timeout_seconds=10,
    )
    with runner:
        yield running


def seed_ids(server: RunningServer) -> dict[str, str]:
    """A project with a logged call, a registered and deployed config and a session: the ids
    the second round puts into path and query parameters."""
    with server.client() as client:
        chat = client.post(
            "/chat",
            json={
                "project": "fuzzed",
                "messages": [{"role": "user", "content": "hello"}],
                "model_config": {"model": "gpt-4o-mini"},
            },
        )
        assert chat.status_code == 200, chat.text
        project_id, log_id = chat.json()["project_id"], chat.json()["data"][0]["id"]
        config_id = chat.json()["data"][0]["model_config_id"]
        deployed = client.patch(
            f"/projects/{project_id}/deploy-config", json={"config_id": config_id}
        )
        assert deployed.status_code == 200, deployed.text
        environment_id = deployed.json()[0]["environment_id"]
        session_id = client.post("/sessions").json()["id"]
    return {
        "project": project_id,
        "log": log_id,
        "config": config_id,
        "session": session_id,
        "environment": environment_id,
    }


def path_ids(path: str, ids: dict[str, str]) -> dict[str, str]:
    """Real ids for an operation's path parameters (by what the path addresses)."""
    if path.startswith("/v4/projects/{project_id}"):
        return {"project_id": ids["project"], "environment_id": ids["environment"]}
    kind = {
        "/v4/projects/": "project",
        "/v4/logs/": "log",
        "/v4/sessions/": "session",
        "/v4/model-configs/": "config",
    }
    for prefix, name in kind.items():
        if path.startswith(prefix) and "{id}" in path:
            return {"id": ids[name]}
    return {}


def query_ids(operation: Any, ids: dict[str, str]) -> dict[str, str]:
    names = {p.name for p in operation.query}
    return {"project_id": ids["project"]} if "project_id" in names else {}


def can_be_wrong(operation: Any, fixed: dict[str, dict[str, str]]) -> bool:
    """Whether negative mode has anything to break: a body or a query parameter not fixed (a
    path parameter is any string, so none can be wrong)."""
    pinned = set(fixed.get("query", {}))
    return len(operation.body) > 0 or any(p.name not in pinned for p in operation.query)


def v4_error_shape(body: Any) -> bool:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return all(isinstance(d, dict) and {"loc", "msg", "type"} <= d.keys() for d in detail)
    return isinstance(detail, dict) and {"type", "message", "code", "origin"} <= detail.keys()


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    return value


def reachable(label: str, body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A schema-conforming chat or log body that also meets the rules the schema cannot say
    (a project, at most one of each id pair, known ids, no NUL), so it gets past validation
    to the provider and the store instead of stopping at a 404 or 422."""
    body = without_nul(body)
    for name in ("project_id", "session_id", "parent_id", "config_id", "source_datapoint_id"):
        body.pop(name, None)
    body.setdefault("project", "fuzzed")
    if label == "POST /v4/chat-model-config":
        body["model_config_id"] = ids["config"]
    if label == "POST /v4/chat-deployed":
        body["project"] = "fuzzed"  # the seeded project, with a config deployed
        body.pop("environment", None)
    if label == "POST /v4/logs":
        body.setdefault("config", {"model": "gpt-4o-mini"})
    return body


@dataclass
class Fuzzer:
    """Sends the generated cases and keeps every answer that breaks the rules."""

    base_url: str
    headers: dict[str, str]
    ids: dict[str, str]
    deadline: float
    session: requests.Session = field(default_factory=requests.Session)
    failures: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    chats: int = 0

    def run(self, operation: Any, mode: GenerationMode, **fixed: dict[str, str]) -> None:
        if mode is GenerationMode.NEGATIVE and not can_be_wrong(operation, fixed):
            return
        strategy = operation.as_strategy(mode, headers=self.headers, **fixed)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def send(case: Any) -> None:
            if time.monotonic() < self.deadline:
                self.check(operation.label, mode, case)

        # Unsatisfiable: nothing in this operation's schema can be made invalid.
        with contextlib.suppress(Unsatisfiable):
            send()

    def check(self, label: str, mode: GenerationMode, case: Any) -> None:
        self.prepare(label, mode, case)
        response = case.call(base_url=self.base_url, session=self.session, headers=self.headers)
        status = response.status_code
        self.statuses[label, status] += 1
        if status >= 500:
            allowed = ALLOWED_5XX.get(status, frozenset())
            if status == 500 or (allowed is not None and label not in allowed):
                curl = case.as_curl_command(headers=self.headers)
                self.failures.append(f"{label}: {status} {response.text[:300]}\n  {curl[:1500]}")
                return
        if status >= 400:
            try:
                shaped = v4_error_shape(response.json())
            except ValueError:
                shaped = False
            if not shaped:
                self.failures.append(
                    f"{label}: {status} not in the v4 shape: {response.text[:300]}"
                )

    def prepare(self, label: str, mode: GenerationMode, case: Any) -> None:
        """Keep calls on this machine; let positive chat and log cases reach the provider and
        the store; spread chat cases over every provider."""
        if isinstance(case.body, list) and label == "POST /v4/logs" and mode.is_positive:
            case.body = [
                reachable(label, b, self.ids) if isinstance(b, dict) else b for b in case.body
            ]
        if not isinstance(case.body, dict):
            return
        if mode.is_positive and (label in CHAT or label == "POST /v4/logs"):
            case.body = reachable(label, case.body, self.ids)
        keys = case.body.get("provider_api_keys")
        if isinstance(keys, dict):
            for name in CALLER_ENDPOINTS:
                keys.pop(name, None)
        config = case.body.get("model_config")
        if label in CHAT and isinstance(config, dict) and isinstance(config.get("provider"), str):
            self.chats += 1
            config["provider"] = PROVIDERS[self.chats % len(PROVIDERS)]


def test_no_input_gets_a_500(fuzzed_server: RunningServer) -> None:
    server = fuzzed_server
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = [
        result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()
    ]
    assert len(operations) >= 25, [o.path for o in operations]
    ids = seed_ids(server)
    started = time.monotonic()
    fuzzer = Fuzzer(
        base_url=server.url.removesuffix("/v4"),
        headers={"X-API-KEY": server.key_a},
        ids=ids,
        deadline=started + BUDGET_SECONDS,
    )
    for operation in operations:
        for mode in GenerationMode:
            fuzzer.run(operation, mode)
    # Again with real ids where the operation addresses something, so the fuzzed query and body
    # values reach the handlers.
    for operation in operations:
        fixed = {
            "path_parameters": path_ids(operation.path, ids),
            "query": query_ids(operation, ids),
        }
        if any(fixed.values()):
            for mode in GenerationMode:
                fuzzer.run(operation, mode, **fixed)

    elapsed = time.monotonic() - started
    calls = fuzzer.statuses.total()
    print(f"schemathesis: {calls} requests, {len(operations)} operations, {elapsed:.0f} s")
    for (label, status), count in sorted(fuzzer.statuses.items()):
        print(f"  {label}: {status} x{count}")
    assert calls > 1000, calls
    assert not fuzzer.failures, f"{len(fuzzer.failures)} bad answers:\n" + "\n".join(
        fuzzer.failures[:20]
    )
