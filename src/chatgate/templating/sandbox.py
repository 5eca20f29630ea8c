"""The ``jinja`` template language: Jinja2's sandbox with bounds on what a template may build.

Imported only by the renderer process (``templating/worker.py``) and tests. The hard bounds on
time and memory are that process's deadline and resource limits; the checks here make the usual
ways of blowing up fail at once with a precise message instead of by that deadline:

* numbers: ``**`` and ``*`` on integers may produce at most ``MAX_INT_BITS`` bits (Python's own
  limit for printing a number is 4300 digits, about as many);
* sizes: ``*`` and ``+`` on strings and lists, a namespace attribute, ``%``-formatting, the
  ``format`` filter, ``str.format`` and the width arguments of filters and string methods
  (``center``, ``indent``, ``ljust``, ``replace`` ...) may produce at most the output limit;
  ``batch`` and ``slice`` at most ``MAX_RANGE`` groups, like ``range``;
* output: the rendered texts of one request together hold at most the output limit
  (``Template.generate`` is summed as it goes);
* data only: printing, ``~``-concatenating, formatting or string-filtering anything that is not
  data (strings, numbers, booleans, none, and lists and dicts of them) is refused, so that no
  ``repr`` of a function, method, generator, ``range``, ``cycler``, ``loop``, macro or namespace
  (some of which hold a memory address) reaches the output. ``lipsum`` (random text) is not
  available at all.
"""

from __future__ import annotations

import re
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import update_wrapper
from typing import Any

import jinja2
from jinja2 import nodes, pass_eval_context
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined, markup_join
from jinja2.sandbox import (
    MAX_RANGE,
    SandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from chatgate.templating.problems import Kind, TemplateProblem

#: Largest integer an operator may produce: about 4300 decimal digits, which Python still prints.
MAX_INT_BITS = 14_284
#: Deepest nesting of lists and dicts a template may print.
_MAX_DEPTH = 64
#: Templates kept compiled, by total source length (a few huge ones must not fill the memory).
_CACHE_CHARS = 8 * 1024 * 1024

_SCALARS = (str, int, float, type(None))
#: Passed through: an Undefined raises its own error when it is turned into text.
_PASS = (*_SCALARS, Undefined)
_CONTAINERS = (list, tuple, dict)
_DIGITS = re.compile(r"\d+")
#: One %-conversion: optional (key), flags, width, precision, length modifier, type.
_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?(?:.|$)",
    re.DOTALL,
)
#: String methods whose first argument is a width (result length = max(len, width)).
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
#: Filters that turn their value (and arguments) into text.
_TEXT_FILTERS = (
    *("capitalize", "center", "e", "escape", "forceescape", "indent", "lower", "pprint"),
    *("replace", "safe", "string", "striptags", "title", "trim", "truncate", "upper"),
    *("urlencode", "urlize", "wordcount", "wordwrap", "xmlattr", "tojson"),
)


class TemplateRefused(jinja2.exceptions.TemplateRuntimeError):
    """A bound of this module was exceeded; the message says which."""


def require_data(value: Any, what: str = "prints") -> None:
    """Refuse a value whose text would be a Python ``repr`` rather than data."""
    if not isinstance(value, _PASS):
        _require_data(value, what, 0)


def _require_data(value: Any, what: str, depth: int) -> None:
    if isinstance(value, _PASS):
        return
    if isinstance(value, _CONTAINERS):
        if depth >= _MAX_DEPTH:
            raise TemplateRefused(f"the template {what} a value nested more than {_MAX_DEPTH} deep")
        if isinstance(value, dict):
            for key, item in value.items():
                _require_data(key, what, depth + 1)
                _require_data(item, what, depth + 1)
        else:
            for item in value:
                _require_data(item, what, depth + 1)
        return
    hint = ""
    if isinstance(value, Iterable):  # a generator from map/select, a range, dict.items() ...
        hint = "; turn it into a list first (|list) or join it (|join)"
    raise TemplateRefused(
        f"the template {what} a value of type '{type(value).__name__}', which is not data (only "
        f"strings, numbers, booleans, none and lists and dicts of them can be turned into text)"
        f"{hint}"
    )


class _Limits:
    """The per-environment bounds, shared by the checks below."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def size(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise TemplateRefused(
                f"{what} would be {size} characters long, over the template output limit of "
                f"{self.max_chars}"
            )

    def width(self, width: Any, what: str) -> None:
        if isinstance(width, int) and width > self.max_chars:
            raise TemplateRefused(
                f"{what} width {width} is over the template output limit of {self.max_chars}"
            )

    def spec_numbers(self, spec: str, what: str, numbers: Iterable[str] | None = None) -> None:
        """Every number in a format spec (widths, precisions) is at most the output limit."""
        longest = len(str(self.max_chars))
        for digits in _DIGITS.findall(spec) if numbers is None else numbers:
            if len(digits) > longest or int(digits) > self.max_chars:
                raise TemplateRefused(
                    f"{what} '{spec[:40]}' asks for a width or precision over the template "
                    f"output limit of {self.max_chars}"
                )

    def percent(self, fmt: str) -> None:
        for match in _PERCENT_SPEC.finditer(fmt):
            width, precision = match.group("width"), match.group("precision")
            if "*" in (width, precision):
                raise TemplateRefused("'*' widths in %-formatting are not supported in templates")
            # Only width and precision: a %(key) may hold digits.
            self.spec_numbers(match.group(0), "the %-format", filter(None, (width, precision)))

    def int_result(self, bits: int, operator: str) -> None:
        if bits > MAX_INT_BITS:
            raise TemplateRefused(
                f"the result of '{operator}' would have about {bits} bits, over the limit of "
                f"{MAX_INT_BITS} (about 4300 digits)"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: it is an int, and small


def _seq_len(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, list, tuple)) else None


class BoundedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def __init__(self, max_chars: int) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined, autoescape=False, finalize=self._finalize
        )
        self.limits = limits = _Limits(max_chars)
        del self.globals["lipsum"]
        self.globals["namespace"] = _namespace_class(limits)
        self.filters.update(_bounded_filters(self.filters, limits))

    @staticmethod
    def _finalize(value: Any) -> Any:
        require_data(value)
        return value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits = self.limits
        if operator == "**":
            if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
                # A lower bound (exact for powers of two): a slightly bigger result is harmless.
                limits.int_result((abs(left).bit_length() - 1) * right + 1, "**")
        elif operator == "*":
            if _is_int(left) and _is_int(right):
                limits.int_result(abs(left).bit_length() + abs(right).bit_length(), "*")
            else:
                for seq, times in ((left, right), (right, left)):
                    length = _seq_len(seq)
                    if length is not None and _is_int(times):
                        limits.size(length * times, "the repeated value")
        elif operator == "+":
            a, b = _seq_len(left), _seq_len(right)
            if a is not None and b is not None:
                limits.size(a + b, "the joined value")
        elif operator == "%" and isinstance(left, str):
            limits.percent(left)
            require_data(right, "formats")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, types.BuiltinMethodType):
            _check_str_method(__self.limits, owner, __obj.__name__, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # The sandbox's own str.format wrapper, with a formatter that bounds widths and refuses
        # non-data fields.
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        owner: Any = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: SandboxedFormatter
        if isinstance(owner, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"
        str_type = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)


def _check_str_method(
    limits: _Limits, owner: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    first = args[0] if args else None
    if name in _WIDTH_METHODS:
        limits.width(first, f"str.{name}")
    elif name == "expandtabs":
        size = kwargs.get("tabsize", first)
        if _is_int(size):
            limits.size(len(owner) + owner.count("\t") * size, "the expanded text")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            limits.size(len(owner) + owner.count(old) * (len(new) - len(old)), "the replaced text")


class _BoundedFormatterMixin:
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        obj, first = super().get_field(field_name, args, kwargs)  # type: ignore[misc]
        require_data(obj, "formats")
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        env: BoundedEnvironment = self._env  # type: ignore[attr-defined]
        env.limits.spec_numbers(format_spec, "the format spec")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _BoundedFormatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


def _namespace_class(limits: _Limits) -> type[Namespace]:
    class BoundedNamespace(Namespace):
        """``namespace()``: an attribute may not outgrow the output limit (doubling in a loop)."""

        def __setitem__(self, name: str, value: Any) -> None:
            length = len(value) if isinstance(value, (str, list, tuple, dict)) else 0
            limits.size(length, f"namespace attribute '{name}'")
            super().__setitem__(name, value)

    return BoundedNamespace


class _ConcatAsFilter(NodeTransformer):
    """``a ~ b`` becomes ``[a, b]|_concat``, a filter that checks its items.

    Jinja folds constant expressions while compiling, and its own ``~`` (``Concat``) turns
    anything into text there, e.g. the method in ``'a' ~ ''.upper`` with its address. A filter
    is folded only by calling it, so the check runs either way.
    """

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(items, "_concat", [], [], None, None, lineno=node.lineno)


def _bounded_filters(builtin: Mapping[str, Callable[..., Any]], limits: _Limits) -> dict[str, Any]:
    filters = dict(builtin)  # Jinja's own, before any is replaced by the ones below
    bounded: dict[str, Any] = {name: _text_filter(filters[name], limits) for name in _TEXT_FILTERS}

    def center(value: Any, width: int = 80) -> str:
        limits.width(width, "the center")
        return str(value).center(width)

    def indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
        prefix = len(width) if isinstance(width, str) else width
        if _is_int(prefix):
            limits.size(
                len(str(value)) + (str(value).count("\n") + 1) * prefix, "the indented text"
            )
        return filters["indent"](value, width, first, blank)

    def replace(eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        text, o, n = str(value), str(old), str(new)
        if len(n) > len(o):
            limits.size(len(text) + text.count(o) * (len(n) - len(o)), "the replaced text")
        return filters["replace"](eval_ctx, value, old, new, count)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise jinja2.exceptions.FilterArgumentError(
                "can't handle positional and keyword arguments at the same time"
            )
        require_data(value, "formats")
        values: Any = kwargs or args
        require_data(values, "formats")
        fmt = str(value)
        limits.percent(fmt)
        text: str = fmt % values
        limits.size(len(text), "the formatted text")
        return text

    def join(
        eval_ctx: EvalContext, value: Iterable[Any], d: Any = "", attribute: Any = None
    ) -> str:
        items = list(value)
        if attribute is not None:
            get = make_attrgetter(eval_ctx.environment, attribute)
            items = [get(item) for item in items]
        require_data(items, "joins")
        require_data(d, "joins")
        size = sum(len(str(item)) for item in items) + len(str(d)) * max(len(items) - 1, 0)
        limits.size(size, "the joined text")
        return str(filters["join"](eval_ctx, items, d))

    def concat(eval_ctx: EvalContext, items: list[Any]) -> str:
        for item in items:
            require_data(item, "concatenates")
        text = markup_join(items) if eval_ctx.autoescape else "".join(map(str, items))
        limits.size(len(text), "the concatenated text")
        return text

    def batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
        _groups(linecount, "batch")
        return filters["batch"](value, linecount, fill_with)

    def slice_(eval_ctx: EvalContext, value: Any, slices: int, fill_with: Any = None) -> Any:
        _groups(slices, "slice")
        return filters["slice"](eval_ctx, value, slices, fill_with)

    bounded.update(
        center=_text_filter(center, limits),
        indent=_text_filter(indent, limits),
        replace=_text_filter(pass_eval_context(replace), limits),
        format=format_,
        join=pass_eval_context(join),
        _concat=pass_eval_context(concat),
        batch=batch,
        slice=pass_eval_context(slice_),
    )
    return bounded


def _groups(count: Any, name: str) -> None:
    if _is_int(count) and count > MAX_RANGE:
        raise TemplateRefused(f"'{name}' into {count} groups: at most {MAX_RANGE} are allowed")


def _text_filter(function: Callable[..., Any], limits: _Limits) -> Callable[..., Any]:
    """A filter that turns values into text: data only in, at most the output limit out."""
    # Filters marked pass_context / pass_eval_context / pass_environment get that first.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[skip:], *kwargs.values()):
            require_data(value, "turns into text")
        result = function(*args, **kwargs)
        if isinstance(result, str):
            limits.size(len(result), "the filtered text")
        return result

    return update_wrapper(bounded, function)


class JinjaRenderer:
    """Compiles (with a bounded cache) and renders templates under the bounds above."""

    def __init__(self, max_chars: int) -> None:
        self.env = BoundedEnvironment(max_chars)
        self._max_chars = max_chars
        self._cache: OrderedDict[str, jinja2.Template] = OrderedDict()
        self._cached_chars = 0

    def compile(self, source: str) -> jinja2.Template:
        template = self._cache.get(source)
        if template is not None:
            self._cache.move_to_end(source)
            return template
        env = self.env
        tree = _ConcatAsFilter().visit(env.parse(source))
        template = env.template_class.from_code(env, env.compile(tree), env.make_globals(None))
        if len(source) <= _CACHE_CHARS:
            self._cache[source] = template
            self._cached_chars += len(source)
            while self._cached_chars > _CACHE_CHARS:
                evicted, _ = self._cache.popitem(last=False)
                self._cached_chars -= len(evicted)
        return template

    def render(self, texts: Sequence[str], inputs: Mapping[str, Any]) -> list[str]:
        """Render every text; raise TemplateProblem naming the text that failed."""
        rendered: list[str] = []
        total = 0
        for index, text in enumerate(texts):
            try:
                chunks = []
                # A mapping, not keywords: an input may be called "self".
                for chunk in self.compile(text).generate(inputs):
                    total += len(chunk)
                    if total > self._max_chars:
                        raise TemplateRefused(
                            f"the rendered template is over the output limit of "
                            f"{self._max_chars} characters (CHATGATE_MAX_BODY_BYTES)"
                        )
                    chunks.append(chunk)
                rendered.append("".join(chunks))
            except MemoryError:
                raise
            except Exception as exc:
                raise problem_of(exc, index) from None
        return rendered


_ADDRESS = re.compile(r" (?:object )?at 0x[0-9a-fA-F]+")


def problem_of(exc: Exception, index: int) -> TemplateProblem:
    """What an exception raised while compiling or rendering text ``index`` tells the caller."""
    # A message may quote a repr; addresses never leave the renderer.
    message = _ADDRESS.sub("", getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    if len(message) > 500:
        message = message[:500] + "…"
    kind = Kind.FAILED
    if isinstance(exc, jinja2.UndefinedError):
        kind = Kind.UNDEFINED
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        kind = Kind.SYNTAX
    elif isinstance(exc, TemplateRefused):
        kind = Kind.REFUSED
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        kind = Kind.SANDBOX
    elif isinstance(exc, RecursionError):
        message = "the template recursed too deeply"
    elif not isinstance(exc, jinja2.TemplateError):
        message = f"{type(exc).__name__}: {message}"
    return TemplateProblem(kind, message, index)
