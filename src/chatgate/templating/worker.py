"""The renderer process: ``python -m chatgate.templating.worker MAX_CHARS MEMORY_BYTES SECONDS``.

It reads requests from stdin and writes replies to stdout, one at a time, each a frame: a 4-byte
big-endian length, then the payload. A request is a pickle of ``(language, texts, inputs)``
(written by the server, which is trusted); a reply is orjson: ``{"texts": [...]}`` or
``{"problem": {...}}`` (read by the server, which does not trust this process: no pickle back).
The first frame, sent once set up, is ``{"ready": true}``.

Its lifetime belongs to the server: it exits when stdin closes, the kernel kills it when the
server's thread that started it ends (``PR_SET_PDEATHSIG``), and it ignores SIGINT/SIGTERM so
that a Ctrl-C or a service manager's SIGTERM to the whole group lets the server finish its
in-flight renders before it closes the pipe. Its environment holds no secrets (see pool.py).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson

from chatgate.templating.default import render_default
from chatgate.templating.problems import Kind, TemplateProblem
from chatgate.templating.sandbox import JinjaRenderer

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: stdin's end is the only signal
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _limit_resources(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # A CPU-limit signal would otherwise dump core.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _cpu_backstop(seconds: float) -> None:
    """Let this request use ``seconds`` (+2) more CPU seconds before the kernel stops us.

    Only a backstop: the server kills a renderer at its deadline. Only the soft limit moves,
    so it can be raised again for the next request.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    budget = int(usage.ru_utime + usage.ru_stime + seconds) + 2
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _write(stream: BinaryIO, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(4, "big") + payload)
    stream.flush()


def _default(max_chars: int) -> Callable[[list[str], Any], list[str]]:
    return lambda texts, inputs: render_default(texts, inputs, max_chars)


def handle(
    renderer: JinjaRenderer, max_chars: int, language: str, texts: list[str], inputs: Any
) -> bytes:
    try:
        render = renderer.render if language == "jinja" else _default(max_chars)
        return orjson.dumps({"texts": render(texts, inputs)})
    except TemplateProblem as problem:
        return orjson.dumps({"problem": problem.to_wire()})
    except (TypeError, ValueError) as exc:  # e.g. text orjson cannot encode (lone surrogates)
        unsendable = TemplateProblem(Kind.FAILED, f"the rendered text cannot be sent: {exc}")
        return orjson.dumps({"problem": unsendable.to_wire()})


def main() -> None:
    max_chars, memory_bytes, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    parent = int(sys.argv[4])
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    _die_with_parent(parent)
    # Callers' templates run here: the server's event loop comes first for the CPU.
    os.nice(10)
    renderer = JinjaRenderer(max_chars)
    _limit_resources(memory_bytes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write(stdout, orjson.dumps({"ready": True}))
    while True:
        header = _read_exactly(stdin, 4)
        if header is None:
            return  # the server closed the pipe (or is gone)
        payload = _read_exactly(stdin, int.from_bytes(header, "big"))
        if payload is None:
            return
        _cpu_backstop(seconds)
        try:
            language, texts, inputs = pickle.loads(payload)
            del payload
            reply = handle(renderer, max_chars, language, texts, inputs)
        except MemoryError:
            reply = orjson.dumps({"problem": TemplateProblem(Kind.MEMORY, "").to_wire()})
        _write(stdout, reply)


if __name__ == "__main__":
    main()
