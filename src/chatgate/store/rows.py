"""The one way the store turns a database row into a typed row of ``chatgate.domain``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa

_Row = TypeVar("_Row")


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


def row_as(cls: type[_Row], row: Any, **extra: Any) -> _Row:
    """``cls`` built from the row's columns of the same names (other columns are ignored);
    ``extra`` supplies or overrides fields the row does not hold as such. ``row`` is a
    SQLAlchemy row or a mapping of column names."""
    mapping: Mapping[Any, Any] = row._mapping if isinstance(row, sa.Row) else row
    values = {name: mapping[name] for name in _field_names(cls) if name not in extra}
    return cls(**values, **extra)


def rows_as(cls: type[_Row], rows: Iterable[sa.Row[Any]]) -> list[_Row]:
    return [row_as(cls, row) for row in rows]


def one_as(engine: sa.Engine, cls: type[_Row], query: sa.Select[Any]) -> _Row | None:
    """The first row ``query`` finds, as ``cls``; None when it finds none."""
    with engine.connect() as c:
        row = c.execute(query).first()
    return row_as(cls, row) if row is not None else None
