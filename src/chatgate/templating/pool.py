"""A few renderer processes (``templating/worker.py``) and the deadline on each render.

Started on first use, at most ``size`` per server process. A render takes an idle renderer (or
waits for one, at most ``_WAIT_SECONDS``), sends one request and waits for its reply until the
deadline. A renderer that misses the deadline, dies, answers nonsense, runs out of memory or
whose caller went away mid-render is killed at once (SIGKILL, then reaped in the background)
and a fresh one is started in its place, so the next request does not pay for the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from chatgate.errors import ServiceUnavailable
from chatgate.templating.problems import Kind, TemplateProblem

log = logging.getLogger("chatgate")

#: Longest a render waits for a free renderer before it is answered 503.
_WAIT_SECONDS = 10.0
#: Longest a new renderer may take to start (Python and Jinja imports on a loaded machine).
_START_SECONDS = 30.0
#: Environment variables a renderer needs to start Python; nothing else (no provider keys or
#: database URLs) is passed to the process that runs callers' templates.
_WORKER_ENV = (
    "PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSAFEPATH",
    "PYTHONUTF8",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
)


class _BadReply(Exception):
    pass


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process, max_reply: int) -> None:
        self.process = process
        self._max_reply = max_reply

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.process.stdout is not None
        return self.process.stdout

    async def read_frame(self) -> Any:
        size = int.from_bytes(await self.stdout.readexactly(4), "big")
        if size > self._max_reply:
            raise _BadReply(f"a reply of {size} bytes")
        return orjson.loads(await self.stdout.readexactly(size))

    async def call(self, payload: bytes) -> Any:
        self.stdin.write(len(payload).to_bytes(4, "big") + payload)  # one write, one wake-up
        await self.stdin.drain()
        return await self.read_frame()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class RendererPool:
    def __init__(self, *, size: int, timeout: float, memory_bytes: int, max_chars: int) -> None:
        self._size = max(1, size)
        self._timeout = timeout
        self._memory_bytes = memory_bytes
        self._max_chars = max_chars
        # Text is at most 6 bytes a character once JSON-escaped (\u0000), plus the framing.
        self._max_reply = 6 * max_chars + (1 << 20)
        self._idle: asyncio.Queue[_Worker | BaseException] | None = None
        self._workers: set[_Worker] = set()
        self._starting = 0
        self._starts: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- rendering ------------------------------------------------------------------------

    async def render(
        self, language: str, texts: Sequence[str], inputs: Mapping[str, Any]
    ) -> list[str]:
        payload = pickle.dumps((language, list(texts), dict(inputs)), protocol=5)
        worker = await self._acquire()
        healthy = False
        try:
            async with asyncio.timeout(self._timeout):
                reply = await worker.call(payload)
            rendered = self._read_reply(reply, len(texts))
            healthy = True
        except TimeoutError:
            raise TemplateProblem(
                Kind.TIMEOUT,
                f"the template took longer than {self._timeout:g} s to render "
                "(CHATGATE_TEMPLATE_TIMEOUT_SECONDS)",
            ) from None
        except TemplateProblem as problem:
            # A renderer that ran out of memory may be near its limit for good: replace it.
            healthy = problem.kind is not Kind.MEMORY
            if problem.kind is Kind.MEMORY:
                problem.message = (
                    f"rendering the template needs more than {self._memory_bytes >> 20} MiB "
                    "of memory (CHATGATE_TEMPLATE_MEMORY_BYTES)"
                )
            raise
        except (OSError, EOFError, asyncio.IncompleteReadError, _BadReply, ValueError) as exc:
            reason = await self._crash_reason(worker, exc)
            raise TemplateProblem(Kind.CRASHED, reason) from None
        finally:
            if healthy:
                self._release(worker)
            else:
                self._discard(worker)
        return rendered

    def _read_reply(self, reply: Any, count: int) -> list[str]:
        if isinstance(reply, dict) and isinstance(reply.get("problem"), dict):
            try:
                raise TemplateProblem.from_wire(reply["problem"])
            except (KeyError, ValueError):
                raise _BadReply("an unreadable problem") from None
        texts = reply.get("texts") if isinstance(reply, dict) else None
        if (
            not isinstance(texts, list)
            or len(texts) != count
            or not all(isinstance(text, str) for text in texts)
            or sum(map(len, texts)) > self._max_chars
        ):
            raise _BadReply("a reply that is not the rendered texts")
        return texts

    @staticmethod
    async def _crash_reason(worker: _Worker, exc: BaseException) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):  # its pipe closes a moment before it is reaped
                await worker.process.wait()
        code = worker.process.returncode
        if code is not None and code < 0:
            return f"the template renderer was stopped by signal {-code}"
        if code is not None:
            return f"the template renderer exited with status {code}"
        return f"the template renderer failed ({type(exc).__name__}: {exc})"

    # --- the renderers ----------------------------------------------------------------------

    def _queue(self) -> asyncio.Queue[_Worker | BaseException]:
        if self._idle is None:
            self._idle = asyncio.Queue()
        return self._idle

    async def _acquire(self) -> _Worker:
        if self._closed:
            raise ServiceUnavailable("the server is shutting down")
        queue = self._queue()
        if not queue.empty():
            item = queue.get_nowait()
        else:
            if len(self._workers) + self._starting < self._size:
                self._start_one()
            item = await self._wait_for_a_renderer(queue)
        if isinstance(item, BaseException):
            raise ServiceUnavailable(f"the template renderer could not be started: {item}")
        return item

    @staticmethod
    async def _wait_for_a_renderer(
        queue: asyncio.Queue[_Worker | BaseException],
    ) -> _Worker | BaseException:
        try:
            async with asyncio.timeout(_WAIT_SECONDS):
                return await queue.get()
        except TimeoutError:
            raise ServiceUnavailable(
                f"every template renderer stayed busy for {_WAIT_SECONDS:g} s; retry later"
            ) from None

    def _release(self, worker: _Worker) -> None:
        if self._closed:
            self._discard(worker)
        else:
            self._queue().put_nowait(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.discard(worker)
        self._spawn(self._reap(worker), self._reaping)
        if not self._closed:
            self._start_one()

    def _start_one(self) -> None:
        self._starting += 1
        self._spawn(self._start(), self._starts)

    @staticmethod
    def _spawn(coroutine: Any, tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _start(self) -> None:
        process: asyncio.subprocess.Process | None = None
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chatgate.templating.worker",
                str(self._max_chars),
                str(self._memory_bytes),
                str(self._timeout),
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={name: os.environ[name] for name in _WORKER_ENV if name in os.environ},
            )
            worker = _Worker(process, self._max_reply)
            async with asyncio.timeout(_START_SECONDS):
                ready = await worker.read_frame()
            if ready != {"ready": True}:
                raise _BadReply("no ready signal")
        except BaseException as exc:
            self._starting -= 1
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(Exception):
                    await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.error("a template renderer could not be started: %r", exc)
            self._queue().put_nowait(RuntimeError(f"{type(exc).__name__}: {exc}"))
            return
        self._starting -= 1
        if self._closed:
            worker.kill()
            await self._reap(worker)
            return
        self._workers.add(worker)
        self._queue().put_nowait(worker)

    @staticmethod
    async def _reap(worker: _Worker, grace: float = 0.0) -> None:
        """Close the renderer's stdin (it exits at the end of its input), wait for it to exit
        (killing it after ``grace`` seconds) and let its pipes close."""
        with contextlib.suppress(Exception):
            worker.stdin.close()
        try:
            async with asyncio.timeout(grace or None):
                await worker.process.wait()
        except TimeoutError:
            worker.kill()
            await worker.process.wait()
        await asyncio.sleep(0)  # the pipes' connection_lost callbacks

    async def aclose(self) -> None:
        """End every renderer: idle ones when their stdin closes, the rest are killed."""
        self._closed = True
        for task in list(self._starts):
            task.cancel()
        workers = list(self._workers)
        self._workers.clear()
        ending = [self._reap(worker, grace=2.0) for worker in workers]
        await asyncio.gather(*ending, *self._starts, *self._reaping, return_exceptions=True)
