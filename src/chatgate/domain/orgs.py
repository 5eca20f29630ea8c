"""Rows of organisations, their API keys and saved provider keys, as the store returns them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    org_id: str
    org_name: str
    prefix: str
    key_hash: bytes
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class SavedProviderKey:
    """An organisation's saved provider key (still encrypted) and the endpoint saved with it."""

    ciphertext: bytes = dataclasses.field(repr=False)
    endpoint: str | None
