"""Sessions: create, list a project's, read one."""

from __future__ import annotations

from chatgate.store.sql import Store


class SessionService:
    def __init__(self, store: Store) -> None:
        self._store = store
