"""Why a template could not be rendered, as plain data a renderer process can send back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    #: ``default`` language: placeholders without an input (``names`` lists them).
    MISSING = "missing"
    #: ``jinja``: a name the template uses is not among the inputs.
    UNDEFINED = "undefined"
    SYNTAX = "syntax"
    #: Jinja's sandbox refused an attribute or a call.
    SANDBOX = "sandbox"
    #: A size bound (numbers, formatting widths, output) or a non-data value printed.
    REFUSED = "refused"
    #: Any other error the template raised while rendering.
    FAILED = "failed"
    MEMORY = "memory"
    TIMEOUT = "timeout"
    #: The renderer process ended while rendering (a resource limit's signal, most likely).
    CRASHED = "crashed"


@dataclass(slots=True)
class TemplateProblem(Exception):
    kind: Kind
    message: str
    #: Which of the rendered texts (in request order) the problem is in, when known.
    index: int | None = None
    #: For MISSING: the input names, in order of first use.
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "index": self.index,
            "names": list(self.names),
        }

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> TemplateProblem:
        index = data.get("index")
        names = data.get("names")
        return cls(
            Kind(str(data["kind"])),
            str(data["message"]),
            index if isinstance(index, int) else None,
            tuple(str(n) for n in names) if isinstance(names, list) else (),
        )
