"""Provider credentials: which key a call uses, and how saved keys are kept.

Order: ``provider_api_keys`` in the request; the organisation's saved key (encrypted at rest with
the server secret); the server's environment (``OPENAI_API_KEY`` ...). Keys never leave this
module except inside the ChatCall sent to the provider.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from chatgate.errors import BadRequest
from chatgate.providers import ENV_CREDENTIALS
from chatgate.providers.base import ProviderSpec
from chatgate.settings import Settings
from chatgate.store.sql import Store


def load_or_create_secret(settings: Settings) -> str:
    """CHATGATE_SECRET_KEY, or the secret generated into the data directory on first start."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path: Path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def fernet_for(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def save_provider_key(store: Store, fernet: Fernet, org_id: str, provider: str, key: str) -> None:
    store.set_provider_key(org_id, provider, fernet.encrypt(key.encode()))


class CredentialResolver:
    #: Saved keys are cached briefly: `chatgate provider-keys set` takes effect within this time.
    CACHE_SECONDS = 10.0

    def __init__(self, store: Store, fernet: Fernet, environ: Mapping[str, str]) -> None:
        self._store = store
        self._fernet = fernet
        self._environ = environ
        self._saved: dict[tuple[str, str], tuple[str | None, float]] = {}

    async def resolve(
        self, spec: ProviderSpec, org_id: str, request_keys: Mapping[str, str | None] | None
    ) -> str | None:
        from_request = (request_keys or {}).get(spec.name)
        if from_request:
            return from_request
        saved = await self._saved_key(org_id, spec.name)
        if saved:
            return saved
        from_env = self._environ.get(spec.key_env) if spec.key_env else None
        if not from_env and spec.name in ENV_CREDENTIALS:
            from_env = ENV_CREDENTIALS[spec.name](self._environ)
        if from_env:
            return from_env
        if spec.requires_key:
            where = f" or the server's {spec.key_env}" if spec.key_env else ""
            raise BadRequest(
                f"no API key for provider '{spec.name}': pass provider_api_keys.{spec.name}, "
                f"save one with `chatgate provider-keys set --org NAME {spec.name}`{where}"
            )
        return None

    async def _saved_key(self, org_id: str, provider: str) -> str | None:
        now = time.monotonic()
        cached = self._saved.get((org_id, provider))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            ciphertext = await self._store.call(self._store.provider_key, org_id, provider)
        except Exception as exc:
            if cached is None or not self._store.is_unreachable(exc):
                raise
            return cached[0]  # database down: keep using what was last read
        key: str | None = None
        if ciphertext is not None:
            try:
                key = self._fernet.decrypt(ciphertext).decode()
            except InvalidToken:
                raise BadRequest(
                    f"the saved key for provider '{provider}' cannot be decrypted: "
                    "CHATGATE_SECRET_KEY changed since it was saved; save it again"
                ) from None
        self._saved[(org_id, provider)] = (key, now + self.CACHE_SECONDS)
        return key
