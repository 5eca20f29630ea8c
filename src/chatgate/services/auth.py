"""API keys: creation, and the ``X-API-KEY`` -> organisation lookup on every request.

Keys are 256-bit random strings; only their SHA-256 is stored, found by a short public prefix and
compared in constant time. Successful lookups are cached for ``auth_cache_seconds`` so the hot path
never waits on the database; a revoked key therefore stops working within that time. Unknown keys
are never cached, so a key created by ``chatgate keys create`` works at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from chatgate.errors import Unauthorized
from chatgate.store.sql import Store, hash_key

KEY_PREFIX = "cg_"
#: Characters of the key shown to operators and used to find its row (cg_ + 8).
PREFIX_LENGTH = 11
_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: str
    org_name: str
    key_id: str


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(store: Store, org_name: str) -> tuple[str, str]:
    """Create the organisation if needed and a new key for it: (key, prefix)."""
    org_id = store.orgs.get_or_create_org(org_name)
    while True:
        key = generate_key()
        prefix = key[:PREFIX_LENGTH]
        if store.orgs.api_key_by_prefix(prefix) is None:
            store.orgs.add_api_key(org_id, prefix, hash_key(key))
            return key, prefix


class Authenticator:
    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._last_used: dict[str, float] = {}

    async def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized(
                "missing X-API-KEY header: pass the key printed by `chatgate keys create`"
            )
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            try:
                principal = await self._store.call(self._lookup, key, digest)
            except Exception as exc:
                if cached is None or not self._store.is_unreachable(exc):
                    raise
                # The database is down: a key this process has verified keeps working until it
                # is back (revocations then take effect within the cache time again).
                return cached[0]
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._ttl)
        self._last_used[principal.key_id] = time.time()
        return principal

    def _lookup(self, key: str, digest: bytes) -> Principal:
        row = (
            self._store.orgs.api_key_by_prefix(key[:PREFIX_LENGTH])
            if key.startswith(KEY_PREFIX)
            else None
        )
        if (
            row is None
            or row.revoked_at is not None
            or not hmac.compare_digest(row.key_hash, digest)
        ):
            raise Unauthorized("invalid X-API-KEY: the key is unknown or revoked")
        return Principal(row.org_id, row.org_name, row.id)

    def flush_last_used(self) -> None:
        """Write the batched ``last_used_at`` times (called periodically and at shutdown)."""
        pending, self._last_used = self._last_used, {}
        if pending:
            self._store.orgs.touch_api_keys(pending)
