"""stream: true through a real uvicorn server, against the fake OpenAI server's SSE."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI, completion, sse_pieces

USER = [{"role": "user", "content": "tell me a story"}]


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "project": "stream",
        "stream": True,
        "model_config": {"model": "gpt-4o"},
        "messages": USER,
        **overrides,
    }


def parse_frames(raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """(data frames, keep-alive comments) of a complete chatgate stream, checked strictly."""
    assert raw.endswith(b"\n\n")
    frames, comments = [], 0
    for block in raw[:-2].split(b"\n\n"):
        if block.startswith(b": "):
            comments += 1
            continue
        assert block.startswith(b"data: ") and b"\n" not in block, block
        frames.append(json.loads(block[6:]))
    return frames, comments


def stream_chat(
    server: RunningServer, payload: dict[str, Any]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    with server.client() as client:
        response = client.post("/chat", json=payload)
    if response.status_code != 200:
        return response, []
    return response, parse_frames(response.content)[0]


def test_frames_are_v4_chat_responses_with_raw_deltas(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    response, frames = stream_chat(server, body())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert fake.last.body["stream"] is True
    assert fake.last.body["stream_options"] == {"include_usage": True}
    deltas = [f["data"][0]["output"] for f in frames[:-1]]
    assert deltas == ["Echo: ", "tell ", "me ", "a ", "story"]  # raw, not stripped
    assert all(f["data"][0]["finish_reason"] is None for f in frames[:-1])
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "stop" and last["data"][0]["output"] == ""
    assert last["usage"] == {
        "prompt_tokens": 4,
        "generation_tokens": 5,
        "total_tokens": 9,
        "reasoning_tokens": 0,
        "cache_read_tokens": 0,
    }
    assert last["provider_request"]["stream"] is True
    assert last["provider_responses"][0]["object"] == "chat.completion"
    log_id = frames[0]["data"][0]["id"]
    assert {f["data"][0]["id"] for f in frames} == {log_id}
    assert set(frames[0]) >= {
        "project_id",
        "num_samples",
        "data",
        "provider_responses",
        "usage",
        "session_id",
    }
    log = server.get_log(log_id)
    assert log["output"] == "Echo: tell me a story"
    assert log["prompt_tokens"] == 4 and log["output_tokens"] == 5


def test_streamed_and_non_streamed_logs_match_field_for_field(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    tool = {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    for extra in (
        {},
        {"tool_choice": "required", "model_config": {"model": "gpt-4o", "tools": [tool]}},
        {"num_samples": 3},
    ):
        payload = body(**extra, session_reference_id="match", metadata={"m": 1}, inputs={"x": "1"})
        _, frames = stream_chat(server, payload)
        plain = server.post_chat({**payload, "stream": False})
        assert plain.status_code == 200
        by_index = {f["data"][0]["index"]: f["data"][0]["id"] for f in frames}
        streamed_ids = [by_index[i] for i in sorted(by_index)]
        plain_ids = [d["id"] for d in plain.json()["data"]]
        assert len(streamed_ids) == len(plain_ids)
        for streamed_id, plain_id in zip(streamed_ids, plain_ids, strict=True):
            streamed, unstreamed = server.get_log(streamed_id), server.get_log(plain_id)
            for key in ("id", "created_at", "updated_at", "duration", "provider_latency"):
                streamed.pop(key), unstreamed.pop(key)
            sent = streamed.pop("provider_request")
            assert sent.pop("stream") is True and sent.pop("stream_options") == {
                "include_usage": True
            }
            assert sent == unstreamed.pop("provider_request")
            assert streamed == unstreamed


def test_tool_call_arguments_are_assembled(server: RunningServer, fake: FakeOpenAI) -> None:
    tool = {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    _, frames = stream_chat(
        server, body(tool_choice="required", model_config={"model": "gpt-4o", "tools": [tool]})
    )
    [last] = frames  # no text deltas: only the final frame, with the assembled call
    assert last["data"][0]["finish_reason"] == "tool_call"
    [call] = last["data"][0]["tool_calls"]
    assert call["id"] == "call_0" and call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"q": "tell me a story"}
    assert last["data"][0]["output_message"]["tool_calls"] == [call]


def test_samples_interleave_and_each_final_frame_follows_its_commit(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    with (
        server.client() as client,
        client.stream("POST", "/chat", json=body(num_samples=2)) as response,
    ):
        order, finals = [], []
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                frame = json.loads(block[6:])
                data = frame["data"][0]
                order.append(data["index"])
                if data["finish_reason"]:
                    # The log is readable the moment its sample's last frame arrives.
                    assert client.get(f"/logs/{data['id']}").status_code == 200
                    finals.append(data["index"])
    assert order[:4] == [0, 1, 0, 1]
    assert sorted(finals) == [0, 1]


def test_first_frame_arrives_before_the_provider_finishes(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    fake.chunk_delay = 0.3
    with server.client() as client, client.stream("POST", "/chat", json=body()) as response:
        started = time.monotonic()
        chunks = response.iter_raw()
        first = next(chunks)
        elapsed = time.monotonic() - started
        assert first.startswith(b"data: ")
        assert json.loads(first[6:].split(b"\n\n")[0])["data"][0]["output"] == "Echo: "
        assert fake.completed_streams == 0
        assert elapsed < 1.0
        rest = b"".join(chunks)
    assert fake.completed_streams == 1
    assert rest.count(b"data: ") == 5


def test_client_disconnect_cancels_upstream_and_logs_partial_output(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    fake.chunk_delay = 0.05
    with (
        server.client() as client,
        client.stream(
            "POST", "/chat", json=body(messages=[{"role": "user", "content": words}])
        ) as response,
    ):
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b"\n\n") >= 3:
                break
    log_id = json.loads(received.split(b"\n\n")[0][6:])["data"][0]["id"]
    deadline = time.monotonic() + 5
    while fake.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnects == 1, "the provider's connection was not closed"
    assert fake.completed_streams == 0
    while time.monotonic() < deadline:
        with server.client() as client:
            found = client.get(f"/logs/{log_id}")
        if found.status_code == 200:
            break
        time.sleep(0.05)
    log = found.json()
    assert log["error"].startswith("cancelled")
    assert log["output"].startswith("Echo: w0 w1")
    assert not log["output"].endswith("w99")
    assert log["finish_reason"] is None
    assert log["prompt_tokens"] is None and log["output_tokens"] is None  # none reported: not zero


def test_upstream_error_before_first_token_is_a_normal_error(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    for _ in range(3):  # the first answer and both retries
        fake.enqueue(429, {"error": {"message": "slow down", "type": "rate_limit_error"}})
    response, _ = stream_chat(server, body())
    assert response.status_code == 429
    assert response.json()["detail"] == {
        "type": "rate_limit_error",
        "message": "slow down",
        "code": 429,
        "origin": "OpenAI",
    }
    # An in-stream error before any token is the same.
    fake.enqueue(pieces=[b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'])
    response, _ = stream_chat(server, body())
    assert response.status_code == 502
    assert response.json()["detail"]["message"] == "overloaded"


def test_error_after_streaming_began_ends_with_an_error_frame(
    server: RunningServer, fake: FakeOpenAI
) -> None:
    request = {
        "model": "gpt-4o",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pieces = sse_pieces(request)[:3]
    pieces.append(
        b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    pieces += [b": still here\n\n"] * 40  # whatever follows the error is not waited for
    fake.enqueue(pieces=pieces, chunk_delay=0.05)
    response, frames = stream_chat(server, body())
    assert response.status_code == 200
    *deltas, last = frames
    assert [f["data"][0]["output"] for f in deltas] == ["Echo: ", "tell "]
    assert last["data"][0]["finish_reason"] == "error"
    assert last["data"][0]["id"] == deltas[0]["data"][0]["id"]
    assert last["error"] == {
        "type": "server_error",
        "message": "The server had an error",
        "code": 502,
        "origin": "OpenAI",
    }
    deadline = time.monotonic() + 3
    while fake.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnects == 1 and fake.completed_streams == 0
    log = server.get_log(last["data"][0]["id"])
    assert log["error"] == "The server had an error"
    assert log["output"] == "Echo: tell"
    assert log["raw_output"] == "Echo: tell "


def test_stream_cut_without_finish_is_an_error(server: RunningServer, fake: FakeOpenAI) -> None:
    request = {"model": "gpt-4o", "messages": USER, "stream": True}
    fake.enqueue(pieces=sse_pieces(request)[:4])  # role + three words, then the connection ends
    _, frames = stream_chat(server, body())
    last = frames[-1]
    assert last["data"][0]["finish_reason"] == "error"
    assert "ended the stream" in last["error"]["message"]
    log = server.get_log(last["data"][0]["id"])
    assert log["output"] == "Echo: tell me" and "ended the stream" in log["error"]


def test_keepalive_comments_during_long_silences(tmp_path: Any, fake: FakeOpenAI) -> None:
    runner, server = start_server(tmp_path, fake.url, sse_keepalive_seconds=0.1)
    fake.chunk_delay = 0.35
    with runner:
        with server.client() as client:
            response = client.post("/chat", json=body())
        frames, comments = parse_frames(response.content)
    assert comments >= 5
    assert "".join(f["data"][0]["output"] for f in frames) == "Echo: tell me a story"


def test_slow_client_pushes_back_on_the_provider(server: RunningServer, fake: FakeOpenAI) -> None:
    """A client that stops reading stalls the upstream read instead of growing a buffer."""
    big = "x" * 60_000
    reply = completion({"model": "gpt-4o", "messages": USER})
    total_chunks = 600  # ~36 MB of deltas
    chunk = {
        "id": reply["id"],
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": big}, "finish_reason": None}],
    }
    piece = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    finish = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    pieces = [piece] * total_chunks + [
        b"data: " + json.dumps(finish).encode() + b"\n\ndata: [DONE]\n\n"
    ]
    fake.enqueue(pieces=pieces)
    total = sum(len(p) for p in pieces)

    host, port = server.url.split("//")[1].split("/")[0].split(":")
    payload = json.dumps(body(save=False)).encode()
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(
        b"POST /v4/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-API-KEY: {server.key_a}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    time.sleep(2.0)  # the client reads nothing
    stalled_at = fake.stream_bytes_written
    assert stalled_at < total / 2, (stalled_at, total)
    sock.settimeout(10)
    received = 0
    while True:
        data = sock.recv(1 << 20)
        if not data or data.endswith(b"0\r\n\r\n"):
            received += len(data)
            break
        received += len(data)
    sock.close()
    assert fake.completed_streams == 1
    assert received > total  # everything arrived once the client read again
