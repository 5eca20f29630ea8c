"""Bounded templates and logs through a real server (issue 22, item 2 and ``{{ lipsum }}``).

Every template is answered within about a second or refused with a 422 pointing at it, while
other clients' calls keep their latency; a log over CHATGATE_MAX_LOG_BYTES is stored truncated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, backend_url, start_server
from tests.fakes.openai_server import FakeOpenAI

MARKER = "…[truncated by chatgate: "
PLAIN = {
    "project": "limits",
    "model_config": {"model": "m", "provider": "mock"},
    "messages": [{"role": "user", "content": "hello"}],
}


def templated(template: str, language: str = "jinja", **inputs: Any) -> dict[str, Any]:
    return {
        **PLAIN,
        "model_config": {
            "model": "m",
            "provider": "mock",
            "chat_template": [{"role": "system", "content": template}],
            "template_language": language,
        },
        "inputs": inputs,
    }


def _serve(
    tmp_path: Path, fake: FakeOpenAI, request: pytest.FixtureRequest, **overrides: Any
) -> Iterator[RunningServer]:
    database_url = backend_url(request)
    runner, running = start_server(tmp_path, fake.url, database_url=database_url, **overrides)
    with runner:
        yield running


@pytest.fixture
def bounded(
    tmp_path: Path, fake: FakeOpenAI, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    """The default bounds, with the smallest renderer memory (the tests need no more)."""
    yield from _serve(tmp_path, fake, request, template_memory_bytes=256 << 20)


SLOW = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
#: The review's findings, and more of their kind: (request body, what the 422 says).
BAD_TEMPLATES: list[tuple[str, dict[str, Any], str]] = [
    ("power", templated("{{ (10**10)**(10**10) }}"), "the result of '**' would have"),
    ("format width", templated("{{ '%999999999d'|format(1) }}"), "asks for a width"),
    ("str.format width", templated("{{ '{:999999999}'.format(1) }}"), "asks for a width"),
    ("repeat", templated("{{ 'x' * 400000000 }}"), "the repeated value would be"),
    (
        "doubling",
        templated(
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        ),
        "the concatenated text would be",
    ),
    ("nested loops", templated(SLOW), "the template took longer than 1 s to render"),
    (
        "memory",
        templated(
            "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
            "{{ ns.l.extend(ns.l) or '' }}{% endfor %}"
        ),
        "needs more than 256 MiB of memory",
    ),
    # A 7 MB source of 875,000 expressions: Jinja's compiler alone needs minutes.
    ("7 MB source", templated("{{ a }} " * 875_000, a="x"), "took longer than 1 s"),
    # 130 bytes of template times a 100 kB input: 400 MB of output (and of log), refused first.
    (
        "default multiplied",
        templated("{{a}}" * 4000, "default", a="x" * 100_000),
        "the rendered template would be 400000000 characters",
    ),
    ("lipsum", templated("{{ lipsum }}"), "'lipsum' is undefined"),
    ("generator", templated("{{ xs|map('upper') }}", xs=["a"]), "which is not data"),
    ("method", templated("{{ 'a' ~ ''.upper }}"), "which is not data"),
]


def _post(url: str, key: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(f"{url}/chat", json=body, headers={"X-API-KEY": key}, timeout=60)
    return response, time.perf_counter() - started


@pytest.mark.parametrize(
    ("body", "message"), [b[1:] for b in BAD_TEMPLATES], ids=[b[0] for b in BAD_TEMPLATES]
)
def test_each_bad_template_is_a_422_within_about_a_second(
    bounded: RunningServer, body: dict[str, Any], message: str
) -> None:
    _post(bounded.url, bounded.key_a, templated("{{ 1 }}"))  # the renderers are started
    response, elapsed = _post(bounded.url, bounded.key_a, body)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert message in problem["msg"]
    assert problem["loc"][:2] in (["body", "model_config"], ["body", "inputs"])
    assert "0x" not in response.text
    assert elapsed < 3.0, f"answered after {elapsed:.2f} s"
    # The server keeps answering, templates included.
    assert _post(bounded.url, bounded.key_a, PLAIN)[0].status_code == 200
    ok, _ = _post(bounded.url, bounded.key_a, templated("{{ x|upper }}", x="fine"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"][0]["messages"][0]["content"] == "FINE"


def test_a_refusal_points_at_the_message_of_the_template(bounded: RunningServer) -> None:
    body = templated("fine")
    body["model_config"]["chat_template"].append({"role": "user", "content": "{{ 2 ** 99999 }}"})
    response, _ = _post(bounded.url, bounded.key_a, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [
        "body",
        "model_config",
        "chat_template",
        1,
        "content",
    ]


def test_other_clients_are_unaffected_while_bad_templates_are_sent(bounded: RunningServer) -> None:
    url, key = bounded.url, bounded.key_a
    assert _post(url, key, templated("{{ 1 }}"))[0].status_code == 200
    stop = threading.Event()
    attacks: list[tuple[int, float]] = []
    latencies: list[float] = []

    def attacker(offset: int) -> None:
        i = offset
        while not stop.is_set():
            response, elapsed = _post(url, key, BAD_TEMPLATES[i % len(BAD_TEMPLATES)][1])
            attacks.append((response.status_code, elapsed))
            i += 1

    def client() -> None:
        with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                assert http.post("/chat", json=PLAIN).status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)

    threads = [threading.Thread(target=attacker, args=(i * 4,)) for i in range(3)]
    threads.append(threading.Thread(target=client))
    for thread in threads:
        thread.start()
    time.sleep(6.0)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert len(attacks) >= 6
    assert {status for status, _ in attacks} == {422}
    # Three attackers share two renderers: a request may wait for one to be free.
    assert max(elapsed for _, elapsed in attacks) < 6.0
    assert len(latencies) >= 20
    assert max(latencies) < 0.5, f"plain calls took up to {max(latencies):.3f} s during the attack"


# --- the log limit ---------------------------------------------------------------------------

LOG_LIMIT = 300_000


@pytest.fixture
def capped(
    tmp_path: Path, fake: FakeOpenAI, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    yield from _serve(
        tmp_path, fake, request, max_body_bytes=LOG_LIMIT // 2, max_log_bytes=LOG_LIMIT
    )


PAYLOAD_FIELDS = (
    "inputs",
    "messages",
    "provider_request",
    "provider_response",
    "output_message",
    "metadata",
    "tools",
)


def stored_size(log: dict[str, Any]) -> int:
    import orjson

    size = sum(len(orjson.dumps(log[name])) for name in PAYLOAD_FIELDS if log[name] is not None)
    return size + sum(len((log[name] or "").encode()) for name in ("output", "raw_output", "error"))


def test_a_log_over_the_limit_is_stored_truncated_and_the_call_succeeds(
    capped: RunningServer,
) -> None:
    text = "é" * 60_000 + "the end"  # 120 kB of UTF-8, repeated by every payload field
    body = {**PLAIN, "messages": [{"role": "user", "content": text}], "inputs": {"k": "v"}}
    response, _ = _post(capped.url, capped.key_a, body)
    assert response.status_code == 200, response.text
    data = response.json()["data"][0]
    assert data["output"] == f"You said: {text}"  # the answer is whole

    log = capped.get_log(data["id"])
    assert stored_size(log) <= LOG_LIMIT
    # What the request sent is kept whole, then the output; copies of them give way.
    assert log["inputs"] == {"k": "v"}
    assert log["messages"][0]["role"] == "user"
    assert log["messages"][0]["content"] == text
    assert log["output"] == f"You said: {text}"
    for copy in (
        log["provider_request"]["messages"][0]["content"],
        log["raw_output"],
        log["output_message"]["content"],
    ):
        assert copy.startswith(("ééé", "You said: ééé")), copy[:40]
        assert MARKER in copy and copy.endswith(" bytes]")


def test_a_log_under_the_limit_is_stored_whole(capped: RunningServer) -> None:
    body = {**PLAIN, "messages": [{"role": "user", "content": "x" * 20_000}]}
    response, _ = _post(capped.url, capped.key_a, body)
    assert response.status_code == 200
    log = capped.get_log(response.json()["data"][0]["id"])
    assert log["output"] == "You said: " + "x" * 20_000
    assert MARKER not in str(log)


def test_a_log_smaller_than_a_body_is_refused_at_start(tmp_path: Path, fake: FakeOpenAI) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be at least CHATGATE_MAX_BODY_BYTES"):
        start_server(tmp_path, fake.url, max_body_bytes=1000, max_log_bytes=999)
