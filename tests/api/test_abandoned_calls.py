"""A client that hangs up stops its call: the upstream connection is closed at once (not at the
provider timeout) and the call is logged as cancelled — for non-streamed calls as for streams."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.fakes.openai_server import FakeOpenAI

SLOW_PROVIDER_SECONDS = 30.0


def body(project: str, **extra: Any) -> dict[str, Any]:
    return {
        "project": project,
        "model_config": {"provider": "openai", "model": "gpt-4o"},
        "messages": [{"role": "user", "content": "take your time"}],
        **extra,
    }


def _hang_up(server: RunningServer, payload: dict[str, Any]) -> None:
    """Send the call and give up on it after 0.5 s (the client's own timeout), closing the socket."""
    with server.client() as client:
        try:
            client.post("/chat", json=payload, timeout=0.5)
        except httpx.TimeoutException:
            return
    raise AssertionError("the slow provider answered early")


def _project_id(server: RunningServer, project: str) -> str:
    """Create the project with one completed call (its log is the project's first)."""
    response = server.post_chat(body(project))
    assert response.status_code == 200, response.text
    return str(response.json()["project_id"])


def _cancelled_logs(server: RunningServer, project_id: str, count: int) -> list[dict[str, Any]]:
    """The project's logs with an error, once ``count`` of them are there (or after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        with server.client() as client:
            listed = client.get("/logs", params={"project_id": project_id, "size": 100})
        assert listed.status_code == 200, listed.text
        records = [r for r in listed.json()["records"] if r["error"]]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_a_non_streamed_call_stops_when_its_client_leaves(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    project_id = _project_id(server, "abandoned")
    calls = 20
    for _ in range(calls):
        fake.enqueue(json_body={}, delay=SLOW_PROVIDER_SECONDS)
    started = time.monotonic()
    with ThreadPoolExecutor(calls) as pool:
        list(pool.map(lambda _: _hang_up(server, body("abandoned")), range(calls)))
    while fake.disconnects < calls and time.monotonic() - started < 10:
        time.sleep(0.02)
    # Every upstream call was closed within seconds, not at the provider's 30 s.
    assert fake.disconnects == calls, f"{calls - fake.disconnects} upstream calls still open"
    assert time.monotonic() - started < 10
    logs = _cancelled_logs(server, project_id, calls)
    assert len(logs) == calls
    for log in logs:
        assert log["error"] == "cancelled: the client disconnected before the answer was complete"
        assert log["output"] in ("", None) and log["finish_reason"] is None
    # The server is fine afterwards.
    response = server.post_chat(body("after"))
    assert response.status_code == 200 and response.json()["data"][0]["output"]


def test_a_stream_stops_when_its_client_leaves_before_the_first_token(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    project_id = _project_id(server, "abandoned-stream")
    fake.enqueue(json_body={}, delay=SLOW_PROVIDER_SECONDS)
    _hang_up(server, body("abandoned-stream", stream=True))
    deadline = time.monotonic() + 10
    while fake.disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnects == 1
    (log,) = _cancelled_logs(server, project_id, 1)
    assert log["error"].startswith("cancelled: the client disconnected")
