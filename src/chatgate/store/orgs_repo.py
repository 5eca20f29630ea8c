"""Organisations, their API keys and their saved provider keys (ciphertext only).

Synchronous and short like every repository; the server runs them through ``Store.call``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from chatgate import ids
from chatgate.domain.orgs import ApiKeyRow, SavedProviderKey
from chatgate.store import schema as t
from chatgate.store.rows import one_as, row_as, rows_as

if TYPE_CHECKING:
    from chatgate.store.sql import Store


class OrgsRepo:
    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    # --- organisations and API keys -------------------------------------------------------

    def count_orgs(self) -> int:
        with self._engine.connect() as c:
            return int(c.scalar(sa.select(sa.func.count()).select_from(t.organizations)) or 0)

    def get_or_create_org(self, name: str) -> str:
        with self._engine.begin() as c:
            found = c.scalar(sa.select(t.organizations.c.id).where(t.organizations.c.name == name))
            if found:
                return str(found)
            org_id = ids.new_id(ids.ORG)
            c.execute(t.organizations.insert().values(id=org_id, name=name, created_at=time.time()))
            return org_id

    def org_id_by_name(self, name: str) -> str | None:
        with self._engine.connect() as c:
            found = c.scalar(sa.select(t.organizations.c.id).where(t.organizations.c.name == name))
            return str(found) if found else None

    def add_api_key(self, org_id: str, prefix: str, key_hash: bytes) -> str:
        key_id = ids.new_id(ids.KEY)
        with self._engine.begin() as c:
            c.execute(
                t.api_keys.insert().values(
                    id=key_id,
                    org_id=org_id,
                    prefix=prefix,
                    key_hash=key_hash,
                    created_at=time.time(),
                )
            )
        return key_id

    def _key_query(self) -> sa.Select[Any]:
        k, o = t.api_keys, t.organizations
        return sa.select(
            k.c.id,
            k.c.org_id,
            o.c.name.label("org_name"),
            k.c.prefix,
            k.c.key_hash,
            k.c.created_at,
            k.c.last_used_at,
            k.c.revoked_at,
        ).join(o, o.c.id == k.c.org_id)

    def api_key_by_prefix(self, prefix: str) -> ApiKeyRow | None:
        return one_as(
            self._engine, ApiKeyRow, self._key_query().where(t.api_keys.c.prefix == prefix)
        )

    def list_api_keys(self, org_id: str | None = None) -> list[ApiKeyRow]:
        query = self._key_query().order_by(t.api_keys.c.created_at)
        if org_id:
            query = query.where(t.api_keys.c.org_id == org_id)
        with self._engine.connect() as c:
            return rows_as(ApiKeyRow, c.execute(query))

    def revoke_api_key(self, prefix: str) -> bool:
        with self._engine.begin() as c:
            result = c.execute(
                t.api_keys.update()
                .where(t.api_keys.c.prefix == prefix, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return result.rowcount > 0

    def touch_api_keys(self, last_used: dict[str, float]) -> None:
        with self._engine.begin() as c:
            for key_id, when in last_used.items():
                c.execute(
                    t.api_keys.update().where(t.api_keys.c.id == key_id).values(last_used_at=when)
                )

    # --- provider keys (ciphertext only) ------------------------------------------------------

    def set_provider_key(
        self, org_id: str, provider: str, ciphertext: bytes, endpoint: str | None = None
    ) -> None:
        pk = t.provider_keys
        with self._engine.begin() as c:
            c.execute(pk.delete().where(pk.c.org_id == org_id, pk.c.provider == provider))
            c.execute(
                pk.insert().values(
                    org_id=org_id,
                    provider=provider,
                    ciphertext=ciphertext,
                    endpoint=endpoint,
                    updated_at=time.time(),
                )
            )

    def provider_key(self, org_id: str, provider: str) -> SavedProviderKey | None:
        pk = t.provider_keys
        with self._engine.connect() as c:
            found = c.execute(
                sa.select(pk.c.ciphertext, pk.c.endpoint).where(
                    pk.c.org_id == org_id, pk.c.provider == provider
                )
            ).first()
        if found is None:
            return None
        return row_as(SavedProviderKey, found, ciphertext=bytes(found.ciphertext))
