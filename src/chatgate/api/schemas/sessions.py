"""The v4 Sessions tag: documented response models (bodies are rendered by hand in render.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CreateSessionResponse(BaseModel):
    id: str


class SessionProjectResponse(BaseModel):
    id: str
    name: str
    type: str


class SessionResponse(BaseModel):
    id: str
    reference_id: str | None = None
    projects: list[SessionProjectResponse]
    datapoints_count: int
    first_inputs: dict[str, Any] | None = None
    last_output: str | None = None
    created_at: str
    updated_at: str


class PaginatedSessions(BaseModel):
    records: list[SessionResponse]
    page: int
    size: int
    total: int
