"""Query and path parameters: the bounds every route shares, dates in queries, and the NUL guard.

Like request bodies (api/schemas/common.py), a parameter is checked into what the store can
hold before any query runs: a page number past 64 bits, a date past year 9999 or a NUL
character would otherwise fail inside the database driver (a 500), or, on SQLite, turn a
``LIKE`` pattern into one that matches everything (SQLite ends the pattern at the NUL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from chatgate import moments
from chatgate.errors import InvalidRequest

#: Largest page any list endpoint serves.
MAX_PAGE_SIZE = 1000
#: Largest page number: any (page - 1) * size offset stays far inside 64 bits.
MAX_PAGE = 2**31 - 1

PageQuery = Annotated[
    int, Query(ge=0, le=MAX_PAGE, description="Page to fetch, from 1 (0 also means 1).")
]


def page_bounds(page: int, size: int) -> tuple[int, int]:
    """(1-based page actually served, row offset). Page 0, the spec's default, is the first."""
    served = max(page, 1)
    return served, (served - 1) * size


_DAY = 86400.0


def moment(text: str | None, name: str, *, end: bool) -> float | None:
    """A ``YYYY-MM-DD`` date or ISO-8601 datetime (no zone: UTC) as epoch seconds; a date as an
    end is inclusive. Anything else, or a time outside years 1..9999 in UTC, is a 422."""
    if text is None:
        return None
    loc = ("query", name)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            # In epoch seconds, not datetimes: the day after 9999-12-31 is no datetime.
            return start + _DAY - 1e-6 if end else start
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise InvalidRequest.at(
            loc, "expected a date (YYYY-MM-DD) or an ISO-8601 datetime", "datetime_parsing"
        ) from None
    checked = moments.checked(parsed)
    if checked is None:
        raise InvalidRequest.at(
            loc, "expected a time between 0001-01-01 and 9999-12-31 in UTC", "datetime_range"
        )
    return checked.timestamp()


_NUL = ("must not contain NUL characters (U+0000)", "string_nul")


async def refuse_nul(request: Request) -> None:
    """A NUL in any query or path parameter is a 422 (PostgreSQL cannot take it as text, and
    SQLite would cut a search pattern short at it). Two substring tests on the common path."""
    query = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in request.query_params.multi_items():
            if "\x00" in value or "\x00" in name:
                raise InvalidRequest.at(("query", name.replace("\x00", "")), *_NUL)
    if "\x00" in request.scope.get("path", ""):
        for name, value in request.path_params.items():
            if isinstance(value, str) and "\x00" in value:
                raise InvalidRequest.at(("path", name), *_NUL)
        raise InvalidRequest.at(("path",), *_NUL)


#: For ``APIRouter(dependencies=...)`` on every router with query or path parameters (not the
#: hot /v4/chat router, which has neither).
NO_NUL = [Depends(refuse_nul)]
