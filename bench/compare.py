"""chatgate now against chatgate at an earlier commit, in one run: what a change costs /v4/chat.

    .venv/bin/python -m bench.compare --base afe309f [--duration 10] [--rounds 3]

The earlier commit is checked out into a temporary git worktree and served by the same venv
(``PYTHONPATH`` puts its ``src/`` first), so the two differ only by chatgate's own code. Both are
pinned to core 0 like bench/run.py's chatgate, against the same fake provider on core 1, with the
same request bodies. Each round starts both afresh and loads them in turn (the order alternates
between rounds, so drift in the machine's noise falls on both alike): wrk at c=1, 16 and 64, then
sequential streams. Results: ``bench/results/compare-latest.md``, also printed; every number of
every round in ``compare-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.run import (
    CONCURRENCIES,
    LOAD_CORE,
    RESULTS,
    ROOT,
    V4_BODY,
    V4_STREAM_BODY,
    BenchError,
    Load,
    Processes,
    Stream,
    machine,
    measure_stream,
    pinned_to_load_core,
    run_wrk,
    start_chatgate,
    start_fake,
    write_wrk_script,
)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def measure(
    name: str, extra_env: dict[str, str], procs: Processes, fake: Any, workdir: Path, args: Any
) -> dict[str, Any]:
    data_dir = workdir / f"data-{name}"
    chatgate, key, startup = start_chatgate(procs, data_dir, fake, None, name, extra_env=extra_env)
    try:
        script = write_wrk_script(workdir / f"{name}.lua", V4_BODY, {"X-API-KEY": key})
        url = f"http://127.0.0.1:{chatgate.port}/v4/chat"
        run_wrk(url, script, 16, max(1, args.duration // 5), chatgate.pid)  # warm-up
        loads: dict[str, Load] = {}
        for concurrency in CONCURRENCIES:
            loads[f"c={concurrency}"] = run_wrk(
                url, script, concurrency, args.duration, chatgate.pid
            )
        stream: Stream = measure_stream(
            chatgate.port, "/v4/chat", V4_STREAM_BODY, {"X-API-KEY": key}, args.streams
        )
    finally:
        procs.stop(chatgate)
    return {
        "startup_s": startup,
        "loads": {k: asdict(v) for k, v in loads.items()},
        "stream": asdict(stream),
    }


def _median(rounds: Sequence[dict[str, Any]], path: Sequence[str]) -> float:
    values = []
    for result in rounds:
        value: Any = result
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def report(base: str, head: str, runs: dict[str, list[dict[str, Any]]], args: Any) -> str:
    rows = []
    metrics: list[tuple[str, list[str], str]] = []
    for concurrency in CONCURRENCIES:
        c = f"c={concurrency}"
        metrics += [
            (f"{c} req/s", ["loads", c, "rps"], "{:.0f}"),
            (f"{c} p50 ms", ["loads", c, "p50_ms"], "{:.3f}"),
            (f"{c} p99 ms", ["loads", c, "p99_ms"], "{:.3f}"),
            (f"{c} server CPU ms/request", ["loads", c, "cpu_ms_per_request"], "{:.3f}"),
        ]
    metrics += [
        ("stream: first event p50 ms", ["stream", "ttfe_p50_ms"], "{:.3f}"),
        ("stream: whole stream p50 ms", ["stream", "total_p50_ms"], "{:.3f}"),
        ("start-up to first 200 s", ["startup_s"], "{:.3f}"),
    ]
    for label, path, fmt in metrics:
        before = _median(runs["base"], path)
        after = _median(runs["head"], path)
        change = (after - before) / before * 100 if before else float("nan")
        rows.append(f"| {label} | {fmt.format(before)} | {fmt.format(after)} | {change:+.1f} % |")
    errors = {
        name: sum(r["loads"][k]["errors"] for r in rounds for k in r["loads"])
        + sum(r["stream"]["errors"] for r in rounds)
        for name, rounds in runs.items()
    }
    info = machine()
    lines = [
        "# chatgate before and after a change, in one run",
        "",
        f"`{args.command}` — base `{base}`, head `{head}`; {args.rounds} rounds x "
        f"{args.duration} s per wrk phase and {args.streams} sequential streams; medians of "
        "the rounds. Both pinned to core 0, the fake provider and wrk to core 1.",
        "",
        f"Machine: {info.get('cpu', '?')}, Python {info.get('python', '?')}.",
        "",
        "| metric | base | head | change |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Errors (all rounds): base {errors['base']}, head {errors['head']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("--base", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args(argv)
    args.command = "python -m bench.compare " + " ".join(argv or sys.argv[1:])
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (apt-get install -y wrk)", file=sys.stderr)
        return 2
    base = _git("rev-parse", "--short", args.base)
    head = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        head += " + uncommitted changes"
    workdir = Path(tempfile.mkdtemp(prefix="chatgate-compare-"))
    tree = workdir / "base"
    _git("worktree", "add", "--detach", str(tree), base)
    procs = Processes(workdir)
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    versions = {"base": {"PYTHONPATH": str(tree / "src")}, "head": {}}
    try:
        with pinned_to_load_core():
            fake = start_fake(procs, 0.0, LOAD_CORE)
            for index in range(args.rounds):
                order = ["base", "head"] if index % 2 == 0 else ["head", "base"]
                for name in order:
                    result = measure(f"{name}{index}", versions[name], procs, fake, workdir, args)
                    runs[name].append(result)
                    c64 = result["loads"]["c=64"]
                    print(
                        f"round {index + 1} {name}: c=64 {c64['rps']:.0f} req/s, "
                        f"p99 {c64['p99_ms']:.3f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
        text = report(base, head, runs, args)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "compare-latest.md").write_text(text)
        (RESULTS / "compare-latest.json").write_text(
            json.dumps({"command": args.command, "base": base, "head": head, **runs}, indent=1)
            + "\n"
        )
        print(text)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
