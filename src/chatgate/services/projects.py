"""Projects: create, list, read, rename, delete, with their computed fields."""

from __future__ import annotations

from chatgate.services.resolve import Resolver
from chatgate.store.sql import Store


class ProjectService:
    def __init__(self, store: Store, resolver: Resolver) -> None:
        self._store = store
        self._resolver = resolver
