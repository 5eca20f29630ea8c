"""Template rendering: Humanloop {{ var }} semantics, the Jinja sandbox and its bounds.

The sandbox's checks are tested in process (``JinjaRenderer``, what a renderer process runs);
the renderer processes themselves (deadline, memory limit, replacement) through
``TemplateRenderer`` as the server uses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from chatgate.domain import Message
from chatgate.errors import InvalidRequest
from chatgate.templating import IN_PROCESS_CHARS, TemplateLimits, TemplateRenderer
from chatgate.templating.default import render_default
from chatgate.templating.problems import Kind, TemplateProblem
from chatgate.templating.sandbox import MAX_INT_BITS, JinjaRenderer

MAX_CHARS = 1_000_000


def render_all(
    template: Sequence[Message],
    inputs: dict[str, Any],
    language: str = "default",
    limits: TemplateLimits | None = None,
) -> list[Message]:
    """TemplateRenderer.render_messages, with its renderer processes ended afterwards."""

    async def run() -> list[Message]:
        renderer = TemplateRenderer(limits)
        try:
            return await renderer.render_messages(template, inputs, language)
        finally:
            await renderer.aclose()

    return asyncio.run(run())


def render(text: str, inputs: dict[str, object], language: str = "default") -> str:
    [message] = render_all((Message("system", text),), inputs, language)
    assert isinstance(message.content, str)
    return message.content


def jinja(text: str, inputs: dict[str, Any] | None = None, max_chars: int = MAX_CHARS) -> str:
    """The sandbox in process, as a renderer process runs it."""
    [out] = JinjaRenderer(max_chars).render([text], inputs or {})
    return out


def refused(text: str, inputs: dict[str, Any] | None = None, max_chars: int = MAX_CHARS) -> str:
    """The sandbox's message for a template it must refuse quickly."""
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as raised:
        jinja(text, inputs, max_chars)
    assert time.perf_counter() - started < 0.5, "the check must fail fast, not by the deadline"
    assert raised.value.kind is Kind.REFUSED, raised.value
    return raised.value.message


# --- default language -------------------------------------------------------------------------


def test_placeholders_with_and_without_spaces() -> None:
    assert render("{{a}} and {{ b }} and {{  a  }}", {"a": "x", "b": "y"}) == "x and y and x"


def test_non_string_inputs_are_compact_json() -> None:
    assert (
        render("{{n}} {{l}} {{d}}", {"n": 3, "l": [1, "a"], "d": {"k": None}})
        == '3 [1,"a"] {"k":null}'
    )


def test_integers_beyond_64_bits_are_written_exactly() -> None:
    assert render("{{n}}", {"n": 2**64}) == "18446744073709551616"


def test_inputs_are_not_re_rendered() -> None:
    # A value containing template syntax is inserted literally, never interpreted.
    assert render("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_every_missing_input_is_named_once() -> None:
    with pytest.raises(InvalidRequest) as raised:
        render_all((Message("system", "{{a}} {{b}} {{a}}"), Message("user", "{{c}}")), {"b": 1})
    assert [p.loc for p in raised.value.problems] == [
        ("body", "inputs", "a"),
        ("body", "inputs", "c"),
    ]


def test_text_parts_are_rendered_and_images_left_alone() -> None:
    content = [
        {"type": "text", "text": "see {{x}}"},
        {"type": "image_url", "image_url": {"url": "https://e.com/{{x}}.png"}},
    ]
    [message] = render_all((Message("user", content),), {"x": "this"})
    assert message.content == [
        {"type": "text", "text": "see this"},
        {"type": "image_url", "image_url": {"url": "https://e.com/{{x}}.png"}},
    ]


def test_non_placeholders_are_kept() -> None:
    assert render("{ a } {{ 1x }} {{}}", {}) == "{ a } {{ 1x }} {{}}"


def test_default_output_size_is_refused_before_it_is_built() -> None:
    # 10,000 placeholders times a 1 MB input would be 10 GB: refused from the counts alone.
    started = time.perf_counter()
    with pytest.raises(TemplateProblem) as raised:
        render_default(["{{a}}" * 10_000], {"a": "x" * 1_000_000}, MAX_CHARS)
    assert time.perf_counter() - started < 0.5
    assert raised.value.kind is Kind.REFUSED
    assert "10000000000 characters" in raised.value.message


def test_large_default_template_renders_in_a_renderer_process_with_the_same_result() -> None:
    text = "{{ a }}, " * (IN_PROCESS_CHARS // 8 + 1)
    assert len(text) > IN_PROCESS_CHARS
    assert render(text, {"a": 1}) == "1, " * (IN_PROCESS_CHARS // 8 + 1)
    with pytest.raises(InvalidRequest) as raised:
        render(text, {})
    assert [p.loc for p in raised.value.problems] == [("body", "inputs", "a")]


# --- jinja: what templates can do ------------------------------------------------------------


def test_jinja_loops_and_filters() -> None:
    assert render("{% for i in xs %}{{ i|upper }}{% endfor %}", {"xs": ["a", "b"]}, "jinja") == "AB"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% if n > 2 %}big{% else %}small{% endif %}", "big"),
        ("{{ xs|join(', ') }}", "a, b"),
        ("{{ xs|map('upper')|join }}", "AB"),
        ("{{ xs|length }} {{ d.k }} {{ d['k'] }}", "2 1 1"),
        ("{{ '%05.1f|%-3s|' % (3.14159, 'x') }}", "003.1|x  |"),
        ("{{ '%(k12345678901)s' % {'k12345678901': 'v'} }}", "v"),
        ("{{ '%s and %s'|format('a', 'b') }}", "a and b"),
        ("{{ '{:>4}|{:.2f}'.format('x', 2) }}", "   x|2.00"),
        ("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 2 ** 10 }} {{ 7 * 6 }}", "ababab [1, 1] 1024 42"),
        ("{{ 'a' ~ n ~ xs[0] }}", "a3a"),
        (
            "{{ xs }} {{ d }} {{ (1, 'x') }} {{ none }} {{ true }}",
            "['a', 'b'] {'k': 1} (1, 'x') None True",
        ),
        (
            "{% set ns = namespace(s='') %}{% for x in xs %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.s }}",
            "ab",
        ),
        ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m('y') }}", "<y>"),
        ("{% for x in xs %}{{ loop.index }}{{ loop.cycle('-', '+') }}{% endfor %}", "1-2+"),
        (
            "{{ range(3)|list }} {{ dict(a=1) }} {{ d.items()|list }}",
            "[0, 1, 2] {'a': 1} [('k', 1)]",
        ),
        (
            "{{ 'x'|center(5) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'aa'|replace('a', 'bb') }}",
            "  x  |  a\n  b|bbbb",
        ),
        ("{{ xs|batch(1)|list }} {{ xs|slice(2)|list }}", "[['a'], ['b']] [['a'], ['b']]"),
        ("{{ d|tojson }} {{ 'x'.ljust(3) }}|", '{"k": 1} x  |'),
    ],
)
def test_jinja_features_render_as_before(template: str, expected: str) -> None:
    assert jinja(template, {"xs": ["a", "b"], "n": 3, "d": {"k": 1}}) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_jinja_sandbox_refuses_internals(template: str) -> None:
    with pytest.raises(InvalidRequest):
        render(template, {"x": "s"}, "jinja")


def test_jinja_syntax_error_is_422() -> None:
    with pytest.raises(InvalidRequest) as raised:
        render("{% for %}", {}, "jinja")
    assert "invalid jinja template" in raised.value.problems[0].msg


def test_inputs_may_have_any_name() -> None:
    assert jinja("{{ name }}", {"self": 1, "name": "n", "environment": 2}) == "n"


def test_jinja_undefined_input_points_at_inputs() -> None:
    with pytest.raises(InvalidRequest) as raised:
        render("{{ nope }}", {}, "jinja")
    [problem] = raised.value.problems
    assert problem.loc == ("body", "inputs")
    assert "'nope' is undefined" in problem.msg


def test_jinja_problem_points_at_the_message() -> None:
    template = (Message("system", "fine"), Message("user", "{{ 1/0 }}"))
    with pytest.raises(InvalidRequest) as raised:
        render_all(template, {}, "jinja")
    [problem] = raised.value.problems
    assert problem.loc == ("body", "model_config", "chat_template", 1, "content")
    assert problem.msg == "jinja template failed: ZeroDivisionError: division by zero"


# --- jinja: bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ (10**10)**(10**10) }}", "the result of '**' would have about"),
        ("{{ 2 ** 100000 }}", f"over the limit of {MAX_INT_BITS}"),
        ("{% set n = 2 ** 10000 %}{{ n * n }}", "the result of '*'"),
        ("{{ '%999999999d'|format(1) }}", "asks for a width or precision"),
        ("{{ '%999999999d' % 1 }}", "asks for a width or precision"),
        ("{{ '%.999999999f' % 1 }}", "asks for a width or precision"),
        ("{{ '%*d' % (999999999, 1) }}", "'*' widths"),
        ("{{ '{:999999999}'.format(1) }}", "asks for a width or precision"),
        ("{{ '{:{w}}'.format(1, w=999999999) }}", "asks for a width or precision"),
        ("{{ '{x:>999999999}'.format_map({'x': 1}) }}", "asks for a width or precision"),
        ("{{ 'x' * 100000000 }}", "the repeated value would be 100000000 characters"),
        ("{{ [0] * 100000000 }}", "the repeated value"),
        ("{{ 100000000 * 'x' }}", "the repeated value"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "the concatenated text would be",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "the joined value would be",
        ),
        (
            "{% set ns = namespace(l=[]) %}{% set ns.l = [0] * 600000 %}"
            "{% set ns.l = ns.l + ns.l %}",
            "would be",
        ),
        ("{{ 'x'|center(999999999) }}", "the center width"),
        ("{{ 'x'|indent(999999999) }}", "the indented text"),
        ("{{ 'x\nx\nx'|indent('x' * 999999) }}", "the indented text"),
        ("{{ 'aaaa'|replace('a', 'x' * 999999) }}", "the replaced text"),
        ("{{ 'x'.center(999999999) }}", "str.center width"),
        ("{{ 'x'.ljust(999999999) }}", "str.ljust width"),
        ("{{ 'x'.zfill(999999999) }}", "str.zfill width"),
        ("{{ ('\t' * 1000).expandtabs(999999) }}", "the expanded text"),
        ("{{ 'aaaa'.replace('a', 'x' * 999999) }}", "the replaced text"),
        ("{{ xs|batch(999999999, 'x')|list }}", "'batch' into 999999999 groups"),
        ("{{ xs|slice(999999999)|list }}", "'slice' into 999999999 groups"),
        ("{{ (xs * 400000)|join('x' * 10) }}", "the joined text would be"),
    ],
)
def test_blowups_are_refused_at_once(template: str, message: str) -> None:
    assert message in refused(template, {"xs": ["a", "b"]})


def test_the_output_of_a_request_is_bounded() -> None:
    # Each piece is small; the total is what is bounded (across all texts of a request).
    with pytest.raises(TemplateProblem) as raised:
        JinjaRenderer(1000).render(["{% for i in range(300) %}abcd{% endfor %}"], {})
    assert "over the output limit of 1000 characters" in raised.value.message
    with pytest.raises(TemplateProblem) as raised:
        JinjaRenderer(1000).render(["x" * 600, "{{ 'y' * 500 }}"], {})
    assert raised.value.index == 1


@pytest.mark.parametrize(
    "template",
    [
        "{{ lipsum }}",  # not available at all
        "{{ range(3) }}",
        "{{ cycler(1, 2) }}",
        "{{ joiner() }}",
        "{{ namespace(a=1) }}",
        "{{ dict }}",
        "{{ self }}",
        "{{ xs|map('upper') }}",
        "{{ xs|select }}",
        "{{ d.items() }}",
        "{{ ''.upper }}",
        "{{ [''.upper] }}",
        "{{ {'k': ''.upper} }}",
        "{{ xs|groupby('upper')|list }}",
        "{% for x in xs %}{{ loop }}{% endfor %}",
        "{% macro m() %}{% endmacro %}{{ m }}",
        "{{ 'a' ~ ''.upper }}",
        "{% set s = 'a' ~ range(2) %}{{ s }}",
        "{{ ''.upper|string }}",
        "{{ range(2)|string }}",
        "{{ ''.upper|upper }}",
        "{{ ''.upper|center(80) }}",
        "{{ ''.upper|pprint }}",
        "{{ 'x'|replace('x', ''.upper) }}",
        "{{ '%s'|format(''.upper) }}",
        "{{ '%s' % ''.upper }}",
        "{{ '%(a)s' % {'a': ''.upper} }}",
        "{{ '{}'.format(''.upper) }}",
        "{{ '{0.upper}'.format('x') }}",
        "{{ '{!r}'.format(cycler(1)) }}",
        "{{ [''.upper]|join }}",
        "{{ xs|join(attribute='upper') }}",
        "{{ xs|join(''.upper) }}",
        "{{ {'a': ''.upper}|urlencode }}",
        "{{ {'a': ''.upper}|xmlattr }}",
    ],
)
def test_no_repr_of_a_non_data_value_reaches_the_output(template: str) -> None:
    with pytest.raises(TemplateProblem) as raised:
        jinja(template, {"xs": ["a", "b"], "d": {"k": 1}})
    assert "0x" not in raised.value.message


def test_error_messages_carry_no_address() -> None:
    with pytest.raises(TemplateProblem) as raised:
        jinja("{{ ''.upper + 1 }}")
    assert "0x" not in raised.value.message


def test_recursion_is_a_problem_not_a_crash() -> None:
    with pytest.raises(TemplateProblem) as raised:
        jinja("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}")
    assert raised.value.message == "the template recursed too deeply"


# --- jinja: the renderer processes -------------------------------------------------------------

FAST = TemplateLimits(max_chars=MAX_CHARS, timeout_seconds=1.0, memory_bytes=512 << 20, workers=1)


SLOW = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_a_slow_template_is_stopped_at_the_deadline_and_the_renderer_replaced() -> None:
    slow = SLOW

    async def run() -> tuple[float, str, str]:
        renderer = TemplateRenderer(FAST)
        try:
            await renderer.render_messages((Message("system", "warm"),), {}, "jinja")
            started = time.perf_counter()
            with pytest.raises(InvalidRequest) as raised:
                await renderer.render_messages((Message("system", slow),), {}, "jinja")
            elapsed = time.perf_counter() - started
            [after] = await renderer.render_messages(
                (Message("system", "{{ 1 + 1 }}"),), {}, "jinja"
            )
            assert isinstance(after.content, str)
            return elapsed, raised.value.problems[0].msg, after.content
        finally:
            await renderer.aclose()

    elapsed, message, after = asyncio.run(run())
    assert 0.9 < elapsed < 3.0
    assert (
        message == "the template took longer than 1 s to render (CHATGATE_TEMPLATE_TIMEOUT_SECONDS)"
    )
    assert after == "2"


def test_memory_is_bounded_by_the_renderer_limit() -> None:
    # Doubling a list is not checked in process; the address-space limit stops it.
    template = (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{{ ns.l.extend(ns.l) or '' }}{% endfor %}"
    )
    with pytest.raises(InvalidRequest) as raised:
        render_all((Message("system", template),), {}, "jinja", FAST)
    [problem] = raised.value.problems
    assert problem.loc == ("body", "model_config", "chat_template")
    assert problem.msg == (
        "rendering the template needs more than 512 MiB of memory (CHATGATE_TEMPLATE_MEMORY_BYTES)"
    )


def test_a_render_whose_caller_goes_away_ends_its_renderer() -> None:
    # The renderer is mid-render and its reply would no longer match a request: it is killed.
    async def run() -> str:
        renderer = TemplateRenderer(FAST)
        try:
            await renderer.render_messages((Message("system", "warm"),), {}, "jinja")
            [worker] = renderer._pool._workers
            slow = (Message("system", SLOW),)
            task = asyncio.ensure_future(renderer.render_messages(slow, {}, "jinja"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(worker.process.wait(), 2)
            [after] = await renderer.render_messages((Message("system", "{{ 3 }}"),), {}, "jinja")
            assert isinstance(after.content, str)
            return after.content
        finally:
            await renderer.aclose()

    assert asyncio.run(run()) == "3"


def test_a_renderer_that_dies_mid_render_is_a_422_and_is_replaced() -> None:
    async def run() -> tuple[str, str]:
        renderer = TemplateRenderer(FAST)
        try:
            await renderer.render_messages((Message("system", "warm"),), {}, "jinja")
            [worker] = renderer._pool._workers
            asyncio.get_running_loop().call_later(0.2, worker.process.kill)  # as the OOM killer
            with pytest.raises(InvalidRequest) as raised:
                await renderer.render_messages((Message("system", SLOW),), {}, "jinja")
            [after] = await renderer.render_messages((Message("system", "{{ 4 }}"),), {}, "jinja")
            assert isinstance(after.content, str)
            return raised.value.problems[0].msg, after.content
        finally:
            await renderer.aclose()

    message, after = asyncio.run(run())
    assert message == "the template renderer was stopped by signal 9"
    assert after == "4"
