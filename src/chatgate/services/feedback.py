"""Feedback on logs, and the project feedback types its values are checked against."""

from __future__ import annotations

from chatgate.store.sql import Store


class FeedbackService:
    def __init__(self, store: Store) -> None:
        self._store = store
