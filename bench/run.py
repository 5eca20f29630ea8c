"""Benchmark chatgate against a direct call to the provider and a minimal proxy (the floor).

One command, from the repository root::

    .venv/bin/python -m bench.run [--duration 10] [--repeat 3] [--quick] [--profile 10]

It starts a fast fake OpenAI provider (``bench.fake_provider``), chatgate (``python -m chatgate
serve``, durable SQLite logging on) and the floor proxy (``bench.floor_proxy``) as subprocesses.
The server under test is pinned to CPU core 0 (``taskset -c 0``); the fake provider, the load
generator (``wrk``) and this script are pinned to core 1. Each repetition starts chatgate afresh
(the start-up time is measured on a new data directory) and then, per concurrency, loads the
three targets one after another so that they share the machine's noise:

* ``direct``: the fake provider's ``/v1/chat/completions``;
* ``floor``: the floor proxy, forwarding to the fake;
* ``chatgate``: ``POST /v4/chat``, forwarding to the fake.

Results go to ``bench/results/latest.md`` (and ``latest.json``) and are printed. Only 127.0.0.1
is ever contacted, every load phase is bounded in time, and every subprocess is stopped at the
end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"
SERVER_CORE = "0"
LOAD_CORE = "1"
CONCURRENCIES = (1, 16, 64)
TARGETS = ("direct", "floor", "chatgate")
PACKAGES = (
    *("chatgate", "uvicorn", "fastapi", "starlette", "aiohttp", "pydantic", "pydantic-core"),
    *("sqlalchemy", "orjson", "uvloop", "httptools"),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
EN_DASH = "\u2013"
#: Lines of chatgate's stderr kept per repetition in bench/results.
STDERR_LINES = 200

V4_BODY: dict[str, Any] = {
    "project": "bench",
    "model_config": {"model": "gpt-4o", "max_tokens": 50},
    "messages": [{"role": "user", "content": "Hello"}],
}
#: What chatgate sends upstream for V4_BODY; the direct and floor targets get this body.
OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Hello"}],
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "max_tokens": 50,
}
OPENAI_STREAM_BODY = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
V4_STREAM_BODY = {**V4_BODY, "stream": True}

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,'
    .. '"max_us":%.1f,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


class BenchError(RuntimeError):
    pass


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Load:
    """One wrk phase against one target at one concurrency."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: str
    cpu_ms_per_request: float
    server_cpu_percent: float


@dataclass
class Stream:
    """Sequential streamed requests against one target."""

    count: int
    errors: int
    #: 2xx answers including the warm-up requests (for the log count check).
    ok_total: int
    ttfe_p50_ms: float
    ttfe_p90_ms: float
    total_p50_ms: float


@dataclass
class Repetition:
    load: dict[str, Load] = field(default_factory=dict)  # key "target@concurrency"
    stream: dict[str, Stream] = field(default_factory=dict)
    startup_s: float = 0.0
    restart_s: float = 0.0
    idle_rss_mib: float = 0.0
    rss_after_load_mib: float = 0.0
    rss_per_phase_mib: list[float] = field(default_factory=list)
    client_ok_responses: int = 0
    logs_in_db: int = 0
    logs_with_error: int = 0
    floor_idle_rss_mib: float = 0.0
    #: Python tracebacks on chatgate's stderr, counted after each phase (cumulative).
    tracebacks_after: dict[str, int] = field(default_factory=dict)
    #: The last line of each traceback (the exception), counted.
    exceptions: dict[str, int] = field(default_factory=dict)
    #: Other stderr lines that are not routine uvicorn start/stop messages.
    other_stderr: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds_of(stat_path: Path) -> float:
    """utime + stime from a /proc .../stat file."""
    stat = stat_path.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise BenchError(f"no VmRSS for pid {pid}")


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


class Processes:
    """Every subprocess this script starts; all are stopped on exit, by pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], core: str, port: int, env: dict[str, str]
    ) -> Proc:
        stdout = self.workdir / f"{name}.out"
        stderr = self.workdir / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                ["taskset", "-c", core, *argv],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
        proc = Proc(name, popen, stdout, stderr, port)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 35.0) -> None:
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(proc, grace=10.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited early:\n{tail(proc.stderr)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, proc.port), 0.5):
            return
        time.sleep(0.01)
    raise BenchError(f"{proc.name} did not listen on {proc.port} within {timeout} s")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHATGATE_", "OPENAI_", "GROQ_", "DEEPSEEK_"))
    }
    env.update(extra)
    return env


# --- HTTP helpers ---------------------------------------------------------------------------


def post_status(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class StreamClient:
    """A keep-alive HTTP/1.1 client that times the first ``data:`` frame of a streamed answer."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.sock: socket.socket | None = None
        self.file: IO[bytes] | None = None

    def _connect(self) -> tuple[socket.socket, IO[bytes]]:
        if self.sock is None or self.file is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.file = self.sock.makefile("rb")
        return self.sock, self.file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.file = None

    def once(self) -> tuple[float, float] | None:
        """(seconds to the first data frame, seconds to the end), or None on an error."""
        sock, f = self._connect()
        try:
            start = time.perf_counter()
            sock.sendall(self.request)
            status = int(f.readline().split(b" ", 2)[1])
            headers: dict[bytes, bytes] = {}
            while (line := f.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip().lower()
            first: float | None = None
            if headers.get(b"transfer-encoding") == b"chunked":
                while True:
                    size = int(f.readline().split(b";")[0], 16)
                    if size == 0:
                        while f.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    piece = f.read(size + 2)
                    if first is None and b"data:" in piece:
                        first = time.perf_counter()
            else:
                piece = f.read(int(headers.get(b"content-length", b"0")))
                if b"data:" in piece:
                    first = time.perf_counter()
            end = time.perf_counter()
            if headers.get(b"connection") == b"close":
                self.close()
        except (OSError, ValueError, IndexError):
            self.close()
            return None
        if status != 200 or first is None:
            return None
        return first - start, end - start


def measure_stream(
    port: int, path: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> Stream:
    client = StreamClient(port, raw_request(port, path, json.dumps(body).encode(), headers))
    ok_warmup = 0
    try:
        for _ in range(min(20, n)):  # warm-up: connections, caches
            ok_warmup += client.once() is not None
        firsts: list[float] = []
        totals: list[float] = []
        errors = 0
        for _ in range(n):
            result = client.once()
            if result is None:
                errors += 1
                continue
            firsts.append(result[0] * 1000)
            totals.append(result[1] * 1000)
    finally:
        client.close()
    return Stream(
        count=n,
        errors=errors,
        ok_total=ok_warmup + n - errors,
        ttfe_p50_ms=percentile(firsts, 50),
        ttfe_p90_ms=percentile(firsts, 90),
        total_p50_ms=percentile(totals, 50),
    )


# --- wrk ------------------------------------------------------------------------------------


def lua_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write_wrk_script(path: Path, body: dict[str, Any], headers: dict[str, str]) -> Path:
    lines = [
        'wrk.method = "POST"',
        f'wrk.body = "{lua_escape(json.dumps(body, separators=(",", ":")))}"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{lua_escape(k)}"] = "{lua_escape(v)}"' for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + WRK_DONE)
    return path


def wrk_command(url: str, script: Path, concurrency: int, seconds: int) -> list[str]:
    return [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def run_wrk(url: str, script: Path, concurrency: int, seconds: int, server_pid: int) -> Load:
    cpu_before = cpu_seconds(server_pid)
    started = time.monotonic()
    done = subprocess.run(
        wrk_command(url, script, concurrency, seconds),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    time.sleep(0.2)  # let requests cut off at the end of the phase finish
    cpu = cpu_seconds(server_pid) - cpu_before
    wall = time.monotonic() - started
    match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    kinds = ("connect", "read", "write", "status", "timeout")
    errors = sum(raw[k] for k in kinds)
    detail = ", ".join(f"{k} {raw[k]}" for k in kinds if raw[k])
    requests = int(raw["requests"])
    seconds_run = raw["duration_us"] / 1e6
    return Load(
        requests=requests,
        seconds=seconds_run,
        rps=requests / seconds_run,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        error_detail=detail,
        cpu_ms_per_request=cpu * 1000 / requests if requests else float("nan"),
        server_cpu_percent=100 * cpu / wall,
    )


# --- the run --------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    proc: Proc
    path: str
    script: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.proc.port}{self.path}"


@dataclass
class Options:
    duration: int
    repeat: int
    warmup: int
    streams: int
    latency_ms: float
    profile: int
    only_profile: bool
    command: str


def start_fake(procs: Processes, latency_ms: float) -> Proc:
    port = free_port()
    argv = [PYTHON, "-m", "bench.fake_provider", "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms)]
    fake = procs.start("fake", argv, LOAD_CORE, port, clean_env())
    wait_for_port(fake)
    return fake


def start_floor(procs: Processes, fake: Proc) -> Proc:
    port = free_port()
    upstream = f"http://{HOST}:{fake.port}/v1"
    argv = [PYTHON, "-m", "bench.floor_proxy", "--port", str(port), "--upstream", upstream]
    floor = procs.start("floor", argv, SERVER_CORE, port, clean_env())
    wait_for_port(floor)
    return floor


def chatgate_env(data_dir: Path, fake: Proc) -> dict[str, str]:
    return clean_env(
        CHATGATE_DATA_DIR=str(data_dir),
        OPENAI_BASE_URL=f"http://{HOST}:{fake.port}/v1",
        OPENAI_API_KEY="sk-bench",
    )


def start_chatgate(
    procs: Processes, data_dir: Path, fake: Proc, key: str | None, name: str
) -> tuple[Proc, str, float]:
    """Spawn chatgate; return it, its API key and the seconds from spawn to the first 200."""
    port = free_port()
    argv = [PYTHON, "-m", "chatgate", "serve", "--port", str(port)]
    body = json.dumps(V4_BODY).encode()
    started = time.perf_counter()
    proc = procs.start(name, argv, SERVER_CORE, port, chatgate_env(data_dir, fake))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"chatgate exited early:\n{tail(proc.stderr)}")
        if key is None:
            found = re.search(r"^(cg_\S+)$", proc.stdout.read_text(errors="replace"), re.M)
            key = found.group(1) if found else None
        if key is not None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                status = post_status(port, "/v4/chat", body, {"X-API-KEY": key})
                if status == 200:
                    return proc, key, time.perf_counter() - started
                raise BenchError(f"chatgate answered {status} to the first /v4/chat")
        time.sleep(0.005)
    raise BenchError(f"chatgate gave no 200 within 60 s:\n{tail(proc.stderr)}")


def count_logs(data_dir: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(data_dir / "chatgate.db")) as db:
        total = db.execute("SELECT count(*) FROM logs").fetchone()[0]
        failed = db.execute("SELECT count(*) FROM logs WHERE error IS NOT NULL").fetchone()[0]
    return int(total), int(failed)


_ROUTINE = re.compile(
    r"^INFO: +(Started server process|Waiting for application|Application startup|"
    r"Uvicorn running|Shutting down|Waiting for application shutdown|Application shutdown|"
    r"Finished server process)"
)
_TRACEBACK = "Traceback (most recent call last):"


def tracebacks(path: Path) -> int:
    return path.read_text(errors="replace").count(_TRACEBACK)


def stderr_summary(path: Path) -> tuple[dict[str, int], list[str]]:
    """The exceptions of the tracebacks on a server's stderr (counted), and the other lines
    that are not routine uvicorn chatter."""
    exceptions: Counter[str] = Counter()
    other: list[str] = []
    in_traceback = False
    previous_was_other = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(_TRACEBACK):
            if previous_was_other:  # the message a traceback is logged with
                other.pop()
            in_traceback = True
            previous_was_other = False
            continue
        previous_was_other = False
        if in_traceback and (not line.strip() or line.startswith(" ")):
            continue  # a frame of the traceback
        if in_traceback:
            in_traceback = False
            exceptions[line[:160]] += 1
        elif line.strip() and not _ROUTINE.match(line):
            other.append(line[:200])
            previous_was_other = True
    return dict(exceptions), other


def warm_up(targets: Sequence[Target], seconds: int) -> dict[str, int]:
    """Load each target briefly at c=16; return the 2xx answers each one gave."""
    ok: dict[str, int] = {}
    for target in targets:
        done = subprocess.run(
            wrk_command(target.url, target.script, 16, seconds),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.MULTILINE)
        raw = json.loads(match.group(1)) if match else {"requests": 0, "status": 0}
        ok[target.name] = int(raw["requests"]) - int(raw["status"])
    return ok


def repetition(
    index: int,
    opts: Options,
    procs: Processes,
    fake: Proc,
    workdir: Path,
    log: Callable[[str], None],
) -> Repetition:
    rep = Repetition()
    data_dir = workdir / f"data{index}"
    chatgate, key, rep.startup_s = start_chatgate(procs, data_dir, fake, None, f"chatgate{index}")
    time.sleep(1.0)
    rep.idle_rss_mib = rss_mib(chatgate.pid)
    rep.tracebacks_after["start-up"] = tracebacks(chatgate.stderr)
    floor = start_floor(procs, fake)
    time.sleep(1.0)
    rep.floor_idle_rss_mib = rss_mib(floor.pid)
    log(f"  chatgate up in {rep.startup_s:.3f} s, idle RSS {rep.idle_rss_mib:.1f} MiB")
    openai_headers: dict[str, str] = {}
    v4_headers = {"X-API-KEY": key}
    openai_script = write_wrk_script(workdir / "openai.lua", OPENAI_BODY, openai_headers)
    v4_script = write_wrk_script(workdir / f"v4-{index}.lua", V4_BODY, v4_headers)
    chat_path = "/v1/chat/completions"
    targets = [
        Target("direct", fake, chat_path, openai_script),
        Target("floor", floor, chat_path, openai_script),
        Target("chatgate", chatgate, "/v4/chat", v4_script),
    ]
    rep.client_ok_responses += warm_up(targets, opts.warmup)["chatgate"]
    rep.tracebacks_after["warm-up"] = tracebacks(chatgate.stderr)
    for concurrency in CONCURRENCIES:
        for target in targets:
            result = run_wrk(target.url, target.script, concurrency, opts.duration, target.proc.pid)
            rep.load[f"{target.name}@{concurrency}"] = result
            if target.name == "chatgate":
                rep.client_ok_responses += result.requests - result.errors
                rep.rss_per_phase_mib.append(rss_mib(chatgate.pid))
                rep.tracebacks_after[f"c={concurrency}"] = tracebacks(chatgate.stderr)
            log(
                f"  {target.name:9s} c={concurrency:<3d} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
                f"errors {result.errors}  cpu/req {result.cpu_ms_per_request:.3f} ms"
            )
    stream_bodies = {
        "direct": (OPENAI_STREAM_BODY, openai_headers),
        "floor": (OPENAI_STREAM_BODY, openai_headers),
        "chatgate": (V4_STREAM_BODY, v4_headers),
    }
    for target in targets:
        body, headers = stream_bodies[target.name]
        stream = measure_stream(target.proc.port, target.path, body, headers, opts.streams)
        rep.stream[target.name] = stream
        if target.name == "chatgate":
            rep.client_ok_responses += stream.ok_total
        log(
            f"  stream {target.name:9s} first event p50 {stream.ttfe_p50_ms:.3f} ms "
            f"p90 {stream.ttfe_p90_ms:.3f} ms, errors {stream.errors}"
        )
    rep.rss_after_load_mib = rss_mib(chatgate.pid)
    rep.tracebacks_after["streams"] = tracebacks(chatgate.stderr)
    procs.stop(floor)
    procs.stop(chatgate)
    rep.tracebacks_after["shutdown"] = tracebacks(chatgate.stderr)
    rep.exceptions, rep.other_stderr = stderr_summary(chatgate.stderr)
    excerpt = chatgate.stderr.read_text(errors="replace").splitlines(keepends=True)
    (RESULTS / f"chatgate-stderr-{index + 1}.log").write_text("".join(excerpt[:STDERR_LINES]))
    rep.logs_in_db, rep.logs_with_error = count_logs(data_dir)
    # A restart on the same data (no migration to apply, no key to create).
    restarted, _, rep.restart_s = start_chatgate(procs, data_dir, fake, key, f"restart{index}")
    procs.stop(restarted)
    log(
        f"  RSS after load {rep.rss_after_load_mib:.1f} MiB, logs in DB {rep.logs_in_db} "
        f"(client saw {rep.client_ok_responses} OK + 1 start-up probe), "
        f"restart {rep.restart_s:.3f} s"
    )
    return rep


# --- profiling ------------------------------------------------------------------------------


PROFILE_RATE = 200


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process, by thread id (from schedstat: nanoseconds,
    where /proc/.../stat only counts whole clock ticks per thread)."""
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            seconds[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return seconds


def thread_names(pyspy: str, pid: int) -> dict[int, str]:
    """Python thread names by thread id, from ``py-spy dump``; pool threads are grouped."""
    dump = subprocess.run(
        [pyspy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    found = re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump, re.MULTILINE)
    return {int(tid): re.sub(r"_\d+$", "_N", name) for tid, name in found}


def profile(
    opts: Options, procs: Processes, fake: Proc, workdir: Path, log: Callable[[str], None]
) -> None:
    """Profile chatgate at c=64: CPU per thread (no profiler attached), then py-spy sampling
    only the thread holding the GIL, with native frames (raw stacks and a flame graph)."""
    pyspy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(pyspy).exists():
        raise BenchError("py-spy not found: .venv/bin/pip install py-spy")
    chatgate, key, _ = start_chatgate(procs, workdir / "profile-data", fake, None, "profiled")
    script = write_wrk_script(workdir / "v4-profile.lua", V4_BODY, {"X-API-KEY": key})
    target = Target("chatgate", chatgate, "/v4/chat", script)
    warm_up([target], opts.warmup)

    before = thread_cpu(chatgate.pid)
    load = run_wrk(target.url, script, 64, opts.profile, chatgate.pid)
    after = thread_cpu(chatgate.pid)
    names = thread_names(pyspy, chatgate.pid)
    per_name: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for tid, cpu in after.items():
        name = names.get(tid, "(no Python thread)")
        counts[name] += 1
        per_name[name] = per_name.get(name, 0.0) + cpu - before.get(tid, 0.0)
    threads = [
        f"Run without the profiler at c=64 for {opts.profile} s: {load.rps:.0f} req/s, "
        f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, errors {load.errors}; "
        f"the process has {len(after)} threads.",
        "",
        "| thread (pools grouped as _N) | threads | CPU s | share of one core |",
        "|---|---:|---:|---:|",
    ]
    for name, cpu in sorted(per_name.items(), key=lambda kv: -kv[1]):
        threads.append(f"| {name} | {counts[name]} | {cpu:.2f} | {100 * cpu / load.seconds:.1f}% |")

    outputs = [("raw", RESULTS / "profile.raw"), ("flamegraph", RESULTS / "profile.svg")]
    for fmt, out in outputs:
        wrk = subprocess.Popen(
            wrk_command(target.url, script, 64, opts.profile + 3),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            cmd = ["taskset", "-c", LOAD_CORE, pyspy, "record", "--gil", "--native", "--threads"]
            cmd += ["--rate", str(PROFILE_RATE), "--pid", str(chatgate.pid)]
            cmd += ["--duration", str(opts.profile), "--format", fmt, "--output", str(out)]
            subprocess.run(cmd, capture_output=True, timeout=opts.profile + 60, check=True)
        finally:
            wrk.wait(opts.profile + 60)
        log(f"  py-spy {fmt} -> {out.relative_to(ROOT)}")
    procs.stop(chatgate)
    top = hotspots(RESULTS / "profile.raw", PROFILE_RATE * opts.profile)
    text = "\n".join(
        [
            "# chatgate profile at c=64 (generated by bench/run.py)",
            "",
            f"- Command: `{opts.command}`",
            "- py-spy: `record --gil --native --threads --rate "
            f"{PROFILE_RATE} --duration {opts.profile}`; only samples where a thread holds "
            "the GIL (idle threads excluded), so shares are of the Python-executing time.",
            "",
            *threads,
            "",
            top,
        ]
    )
    (RESULTS / "profile-top.md").write_text(text)
    print(text)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/src/chatgate/" in path:
        return "chatgate/" + path.split("/src/chatgate/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return stdlib.group(1) if stdlib else path


def _frame_key(frame: str) -> tuple[tuple[str, str], str]:
    match = _FRAME.match(frame)
    if match is None:
        return (frame, "?"), ""
    func, file = match["func"], _short(match["file"])
    if func.startswith("0x"):
        func = "(unresolved native)"
    return (func, file), match["line"] or ""


def hotspots(raw: Path, ticks: int, limit: int = 25) -> str:
    """Top functions by own (self) samples and by inclusive samples, from py-spy raw output."""
    own: Counter[tuple[str, str]] = Counter()
    own_lines: dict[tuple[str, str], Counter[str]] = {}
    inclusive: Counter[tuple[str, str]] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if frames[0].startswith(("thread ", "process ")):
            threads[re.sub(r"^thread \(\d+\): ", "", frames[0])] += count
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        keys = [_frame_key(frame) for frame in frames]
        for key in {k for k, _ in keys}:
            inclusive[key] += count
        if keys:
            key, lineno = keys[-1]
            own[key] += count
            own_lines.setdefault(key, Counter())[lineno] += count
    if not total:
        return "py-spy recorded no samples\n"
    out = [
        f"{total} samples with the GIL held out of ~{ticks} sampling ticks "
        f"({100 * total / ticks:.0f}%).",
        "",
        "| thread holding the GIL | share |",
        "|---|---:|",
    ]
    out += [f"| {t} | {100 * c / total:.1f}% |" for t, c in threads.most_common(8)]
    out += ["", "## By own time (self)", "", "| function | file:line | share |", "|---|---|---:|"]
    for (func, file), count in own.most_common(limit):
        lineno = own_lines[(func, file)].most_common(1)[0][0]
        where = f"{file}:{lineno}" if lineno else file
        out.append(f"| `{func}` | {where} | {100 * count / total:.1f}% |")
    mine = [(k, c) for k, c in inclusive.most_common() if k[1].startswith("chatgate/")]
    out += ["", "## chatgate's own functions, inclusive", "", "| function | file | share |"]
    out.append("|---|---|---:|")
    out += [f"| `{f}` | {file} | {100 * c / total:.1f}% |" for (f, file), c in mine[:limit]]
    out += [
        "",
        "## All functions, inclusive, below the trunk (frames in under 80% of samples)",
        "",
        "| function | file | share |",
        "|---|---|---:|",
    ]
    branches = [(k, c) for k, c in inclusive.most_common() if c < 0.8 * total]
    for (func, file), count in branches[:limit]:
        out.append(f"| `{func}` | {file} | {100 * count / total:.1f}% |")
    return "\n".join(out) + "\n"


# --- report ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if value != value:  # nan
        return "n/a"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def spread(values: Sequence[float], fmt: Callable[[float], str] = _ms) -> str:
    """The median, with the min-max range when there are several values."""
    if not values:
        return "n/a"
    median = fmt(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt(min(values))}{EN_DASH}{fmt(max(values))})"


def _int(value: float) -> str:
    return f"{value:.0f}"


def _mib(value: float) -> str:
    return f"{value:.1f}"


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return {
        "cpu": f"{model.group(1).strip() if model else '?'}, {os.cpu_count()} CPUs",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "?",
        "git": git.stdout.strip() or "?",
    }


def report(opts: Options, reps: Sequence[Repetition], info: dict[str, str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    phases = ", ".join(reps[0].tracebacks_after) if reps else ""
    out = [
        "# chatgate benchmark",
        "",
        f"- Command: `{opts.command}`",
        f"- Date: {now}; chatgate commit `{info['git']}`",
        f"- CPU: {info['cpu']}; kernel {info['kernel']}",
        f"- Python {info['python']}; {info['packages']}; {info['wrk']}",
        f"- {len(reps)} repetition(s); {opts.duration} s per load phase (wrk, 1 thread, keep-alive);"
        f" {opts.streams} sequential streams per target; fake provider latency "
        f"{opts.latency_ms:g} ms",
        "- Server under test on core 0; fake provider, wrk and the stream client on core 1.",
        "  chatgate: `CHATGATE_LOG_COMMIT=durable` (default), SQLite WAL, `synchronous=NORMAL`.",
        f"- Cells are the median over repetitions with the (min{EN_DASH}max) range. Latencies in ms.",
        "",
        "## Non-streamed load",
        "",
        "| target | conc. | req/s | p50 | p90 | p99 | errors | server CPU ms/req | server CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def loads(target: str, c: int) -> list[Load]:
        return [r.load[f"{target}@{c}"] for r in reps]

    for c in CONCURRENCIES:
        for target in TARGETS:
            ls = loads(target, c)
            errors = [float(x.errors) for x in ls]
            details = "; ".join(sorted({x.error_detail for x in ls if x.error_detail}))
            out.append(
                f"| {target} | {c} | {spread([x.rps for x in ls], _int)} "
                f"| {spread([x.p50_ms for x in ls])} | {spread([x.p90_ms for x in ls])} "
                f"| {spread([x.p99_ms for x in ls])} "
                f"| {spread(errors, _int)}{f' ({details})' if details else ''} "
                f"| {spread([x.cpu_ms_per_request for x in ls])} "
                f"| {spread([x.server_cpu_percent for x in ls], _int)} |"
            )
    out += [
        "",
        "`direct`: the fake provider itself (its CPU is the fake's, on the load core).",
        "",
        "## Added latency over a direct call (per repetition: target minus direct)",
        "",
        "| conc. | floor p50 | chatgate p50 | floor p99 | chatgate p99 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCIES:
        cells = []
        for metric in ("p50_ms", "p99_ms"):
            for target in ("floor", "chatgate"):
                cells.append(
                    spread(
                        [
                            getattr(r.load[f"{target}@{c}"], metric)
                            - getattr(r.load[f"direct@{c}"], metric)
                            for r in reps
                        ]
                    )
                )
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Streaming: time to first event (sequential, keep-alive)",
        "",
        "| target | first `data:` p50 | p90 | whole stream p50 | added first event p50 "
        "| added p90 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in TARGETS:
        ss = [r.stream[target] for r in reps]
        base = [r.stream["direct"] for r in reps]
        added50 = [s.ttfe_p50_ms - b.ttfe_p50_ms for s, b in zip(ss, base, strict=True)]
        added90 = [s.ttfe_p90_ms - b.ttfe_p90_ms for s, b in zip(ss, base, strict=True)]
        dash = target == "direct"
        out.append(
            f"| {target} | {spread([s.ttfe_p50_ms for s in ss])} "
            f"| {spread([s.ttfe_p90_ms for s in ss])} | {spread([s.total_p50_ms for s in ss])} "
            f"| {'—' if dash else spread(added50)} | {'—' if dash else spread(added90)} "
            f"| {spread([float(s.errors) for s in ss], _int)} |"
        )
    out += [
        "",
        "## chatgate process",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| start-up, spawn to first 200 on `/v4/chat` (new data dir: migrations, key) "
        f"| {spread([r.startup_s for r in reps], lambda v: f'{v:.3f} s')} |",
        f"| restart on existing data, spawn to first 200 "
        f"| {spread([r.restart_s for r in reps], lambda v: f'{v:.3f} s')} |",
        f"| idle RSS (1 s after the first 200) | {spread([r.idle_rss_mib for r in reps], _mib)} MiB |",
        f"| RSS after all load phases | {spread([r.rss_after_load_mib for r in reps], _mib)} MiB |",
        f"| RSS after each chatgate phase (c=1,16,64), last repetition "
        f"| {', '.join(f'{v:.1f}' for v in reps[-1].rss_per_phase_mib)} MiB |",
        f"| logs in SQLite / 2xx responses seen by clients (per repetition) "
        f"| {', '.join(f'{r.logs_in_db} / {r.client_ok_responses + 1}' for r in reps)} |",
        f"| logs with an error | {', '.join(str(r.logs_with_error) for r in reps)} |",
        f"| Python tracebacks on chatgate's stderr, cumulative after {phases} "
        f"| {'; '.join(', '.join(str(v) for v in r.tracebacks_after.values()) for r in reps)} |",
        f"| other unexpected stderr lines | {', '.join(str(len(r.other_stderr)) for r in reps)} |",
        f"| floor proxy idle RSS, for comparison "
        f"| {spread([r.floor_idle_rss_mib for r in reps], _mib)} MiB |",
        "",
        "The 2xx count includes warm-ups and the start-up probe. Logs may exceed it by the",
        "requests still in flight when a wrk phase ends: wrk hangs up, chatgate still logs them.",
        "",
        "## Against the targets (medians)",
        "",
        "| target | measured | limit | ok |",
        "|---|---:|---:|:---:|",
    ]

    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    c1 = [(r.load["chatgate@1"], r.load["direct@1"]) for r in reps]
    c64 = [r.load["chatgate@64"] for r in reps]
    stream_added = [r.stream["chatgate"].ttfe_p50_ms - r.stream["direct"].ttfe_p50_ms for r in reps]
    checks = [
        ("added latency c=1 p50", med([a.p50_ms - b.p50_ms for a, b in c1]), 0.75, "ms", True),
        ("added latency c=1 p99", med([a.p99_ms - b.p99_ms for a, b in c1]), 2.0, "ms", True),
        ("req/s at c=64", med([x.rps for x in c64]), 2000, "req/s", False),
        ("errors at c=64 (all repetitions)", sum(x.errors for x in c64), 0, "", True),
        ("p99 at c=64", med([x.p99_ms for x in c64]), 60, "ms", True),
        ("streaming added first event p50", med(stream_added), 1.0, "ms", True),
        ("idle RSS", med([r.idle_rss_mib for r in reps]), 100, "MiB", True),
        ("start-up to first 200", med([r.startup_s for r in reps]), 1.5, "s", True),
    ]
    for name, value, limit, unit, at_most in checks:
        ok = value <= limit if at_most else value >= limit
        shown = f"{value:.0f}" if unit in ("req/s", "") else f"{value:.3f}"
        sign = "≤" if at_most else "≥"
        out.append(
            f"| {name} | {f'{shown} {unit}'.strip()} | {f'{sign} {limit:g} {unit}'.strip()} "
            f"| {'yes' if ok else 'NO'} |"
        )
    exceptions: Counter[str] = Counter()
    for r in reps:
        exceptions.update(r.exceptions)
    other = [line for r in reps for line in r.other_stderr]
    if exceptions or other:
        out += [
            "",
            f"## chatgate stderr (all repetitions; first {STDERR_LINES} lines of each in "
            "chatgate-stderr-N.log)",
            "",
        ]
        out += [f"- {count} x traceback ending `{line}`" for line, count in exceptions.items()]
        out += [f"- other line: `{line}`" for line in other[:10]]
    return "\n".join(out) + "\n"


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="Benchmark chatgate vs direct vs floor proxy."
    )
    parser.add_argument("--duration", type=int, help="seconds per load phase (default 10)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 s phases, 1 repetition")
    parser.add_argument("--streams", type=int, help="sequential streams per target (default 300)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fake provider latency")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also profile chatgate at c=64 with py-spy for this long",
    )
    parser.add_argument(
        "--only-profile", action="store_true", help="skip the measurements, only profile"
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    duration = args.duration or (2 if quick else 10)
    repeat = args.repeat or (1 if quick else 3)
    streams = args.streams or (100 if quick else 300)
    if duration < 1 or repeat < 1 or streams < 1:
        parser.error("--duration, --repeat and --streams must be positive")
    profile_seconds = args.profile or (10 if args.only_profile else 0)
    shown = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    return Options(
        duration=duration,
        repeat=repeat,
        warmup=1,
        streams=streams,
        latency_ms=args.latency_ms,
        profile=profile_seconds,
        only_profile=bool(args.only_profile),
        command=f"python -m bench.run {shown}".strip(),
    )


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def pinned_to_load_core() -> Iterator[None]:
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("needs taskset and at least 2 CPUs", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    RESULTS.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="chatgate-bench-"))
    procs = Processes(workdir)
    try:
        with pinned_to_load_core():
            fake = start_fake(procs, opts.latency_ms)
            log(f"fake provider on port {fake.port}; work dir {workdir}")
            reps: list[Repetition] = []
            if not opts.only_profile:
                for index in range(opts.repeat):
                    log(f"repetition {index + 1}/{opts.repeat}")
                    reps.append(repetition(index, opts, procs, fake, workdir, log))
                text = report(opts, reps, machine())
                (RESULTS / "latest.md").write_text(text)
                (RESULTS / "latest.json").write_text(
                    json.dumps([asdict(r) for r in reps], indent=1) + "\n"
                )
                print(text)
            if opts.profile:
                log(f"profiling chatgate at c=64 for {opts.profile} s")
                profile(opts, procs, fake, workdir, log)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
