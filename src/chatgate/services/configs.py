"""Model configs (register, read, the ``.prompt`` format's lookups), environments and
deployments, and the deployed-config lookup of ``/chat-deployed``."""

from __future__ import annotations

from collections.abc import Mapping

from chatgate.providers.base import ProviderSpec
from chatgate.services.resolve import Resolver
from chatgate.store.sql import Store


class ConfigService:
    def __init__(
        self, store: Store, resolver: Resolver, registry: Mapping[str, ProviderSpec]
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._registry = registry
