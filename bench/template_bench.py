"""What rendering a chat template costs: in process, and through a renderer process.

``python -m bench.template_bench [--seconds S]`` prints microseconds per render of a small
template (a system message with two inputs and a loop), for:

* ``default in process``: the ``default`` language as ``/v4/chat`` renders it (the event loop);
* ``jinja in process``: the bounded sandbox called directly (what a renderer runs; the cost
  jinja had on the event loop before renderer processes, plus the sandbox's checks);
* ``jinja via renderer``: ``TemplateRenderer.render_messages`` as ``/v4/chat`` awaits it, one
  at a time (the round trip: pickle, two pipe writes, two process wake-ups, orjson), and with
  16 renders in flight over the 2 renderers (throughput per render).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from chatgate.domain import Message
from chatgate.templating import TemplateLimits, TemplateRenderer
from chatgate.templating.default import render_default
from chatgate.templating.sandbox import JinjaRenderer

INPUTS = {"name": "Ada", "topic": "engines", "items": ["a", "b", "c"]}
DEFAULT = "You are helping {{ name }} with {{ topic }}. Be brief."
JINJA = "You are helping {{ name }} with {{ topic }}: {% for i in items %}{{ i }} {% endfor %}"


def per_call(seconds: float, call: Callable[[], object]) -> float:
    for _ in range(100):
        call()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            call()
        count += 100
    return elapsed / count * 1e6


async def via_renderer(seconds: float) -> tuple[float, float]:
    renderer = TemplateRenderer(TemplateLimits(workers=2))
    template = (Message("system", JINJA),)
    try:
        for _ in range(50):
            await renderer.render_messages(template, INPUTS, "jinja")
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            await renderer.render_messages(template, INPUTS, "jinja")
            count += 1
        sequential = elapsed / count * 1e6
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            batch = [renderer.render_messages(template, INPUTS, "jinja") for _ in range(16)]
            await asyncio.gather(*batch)
            count += 16
        return sequential, elapsed / count * 1e6
    finally:
        await renderer.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.template_bench")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    seconds = parser.parse_args().seconds
    jinja = JinjaRenderer(32 << 20)
    rows = [
        (
            "default in process",
            per_call(seconds, lambda: render_default([DEFAULT], INPUTS, 1 << 25)),
        ),
        ("jinja in process", per_call(seconds, lambda: jinja.render([JINJA], INPUTS))),
    ]
    sequential, concurrent = asyncio.run(via_renderer(seconds))
    rows += [
        ("jinja via renderer, 1 in flight", sequential),
        ("jinja via renderer, 16 in flight", concurrent),
    ]
    print("| render | µs per render |\n|---|---|")
    for label, micros in rows:
        print(f"| {label} | {micros:.1f} |")


if __name__ == "__main__":
    main()
