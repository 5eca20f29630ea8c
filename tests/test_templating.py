"""Template rendering: Humanloop {{ var }} semantics and the Jinja sandbox."""

from __future__ import annotations

import pytest

from chatgate.domain import Message
from chatgate.errors import InvalidRequest
from chatgate.templating import render_messages


def render(text: str, inputs: dict[str, object], language: str = "default") -> str:
    [message] = render_messages((Message("system", text),), inputs, language)
    assert isinstance(message.content, str)
    return message.content


def test_placeholders_with_and_without_spaces() -> None:
    assert render("{{a}} and {{ b }} and {{  a  }}", {"a": "x", "b": "y"}) == "x and y and x"


def test_non_string_inputs_are_compact_json() -> None:
    assert (
        render("{{n}} {{l}} {{d}}", {"n": 3, "l": [1, "a"], "d": {"k": None}})
        == '3 [1,"a"] {"k":null}'
    )


def test_inputs_are_not_re_rendered() -> None:
    # A value containing template syntax is inserted literally, never interpreted.
    assert render("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_every_missing_input_is_named_once() -> None:
    with pytest.raises(InvalidRequest) as raised:
        render_messages(
            (Message("system", "{{a}} {{b}} {{a}}"), Message("user", "{{c}}")), {"b": 1}
        )
    assert [p.loc for p in raised.value.problems] == [
        ("body", "inputs", "a"),
        ("body", "inputs", "c"),
    ]


def test_text_parts_are_rendered_and_images_left_alone() -> None:
    content = [
        {"type": "text", "text": "see {{x}}"},
        {"type": "image_url", "image_url": {"url": "https://e.com/{{x}}.png"}},
    ]
    [message] = render_messages((Message("user", content),), {"x": "this"})
    assert message.content == [
        {"type": "text", "text": "see this"},
        {"type": "image_url", "image_url": {"url": "https://e.com/{{x}}.png"}},
    ]


def test_non_placeholders_are_kept() -> None:
    assert render("{ a } {{ 1x }} {{}}", {}) == "{ a } {{ 1x }} {{}}"


def test_jinja_loops_and_filters() -> None:
    assert render("{% for i in xs %}{{ i|upper }}{% endfor %}", {"xs": ["a", "b"]}, "jinja") == "AB"


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
