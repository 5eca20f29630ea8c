"""Provider credentials: which key a call uses, and how saved keys are kept.

Order: ``provider_api_keys`` in the request; the organisation's saved key (encrypted at rest with
the server secret); the server's environment (``OPENAI_API_KEY`` ...). Each key is bound to the
endpoint configured with it (:class:`Credential`). Keys never leave this module except inside the
ChatCall sent to the provider.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from chatgate.errors import BadRequest
from chatgate.providers import ENV_CREDENTIALS
from chatgate.providers.base import ProviderSpec
from chatgate.providers.url_guard import CallerURLSpec, caller_base_url
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


def save_provider_key(
    store: Store,
    fernet: Fernet,
    org_id: str,
    provider: str,
    key: str,
    endpoint: str | None = None,
) -> None:
    store.orgs.set_provider_key(org_id, provider, fernet.encrypt(key.encode()), endpoint)


@dataclass(frozen=True, slots=True)
class Credential:
    """A key and the one endpoint it may be sent to.

    ``base_url`` None means the provider row's configured endpoint; ``from_caller`` says the
    endpoint came from the request (and must pass the URL guard).
    """

    api_key: str | None = field(repr=False)
    base_url: str | None = None
    from_caller: bool = False


@dataclass(frozen=True, slots=True)
class _Saved:
    key: str | None = field(repr=False)
    endpoint: str | None


_NOTHING_SAVED = _Saved(None, None)


def _same_endpoint(a: str, b: str | None) -> bool:
    return b is not None and a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


class CredentialResolver:
    """Which key a call uses, and where that key may go.

    A key goes only to the endpoint configured with it: the server's environment key to the
    operator's endpoint, an organisation's saved key to the endpoint saved with it (or, if none
    was saved, the operator's). A caller-supplied endpoint is used only with a key supplied in
    the same request; anything else would let a caller make this server send someone else's key
    to a host of the caller's choosing.
    """

    #: Saved keys are cached briefly: `chatgate provider-keys set` takes effect within this time.
    CACHE_SECONDS = 10.0

    def __init__(self, store: Store, fernet: Fernet, environ: Mapping[str, str]) -> None:
        self._store = store
        self._fernet = fernet
        self._environ = environ
        self._saved: dict[tuple[str, str], tuple[_Saved, float]] = {}

    async def resolve(
        self, spec: ProviderSpec, org_id: str, request_keys: Mapping[str, str | None] | None
    ) -> Credential:
        caller_url = caller_base_url(spec, request_keys)
        from_request = (request_keys or {}).get(spec.name)
        if from_request:
            if caller_url is not None:
                return Credential(from_request, caller_url, from_caller=True)
            return Credential(from_request, await self._saved_endpoint(spec, org_id))
        saved = await self._saved_key(org_id, spec.name)
        if saved.key:
            if caller_url is not None and not _same_endpoint(caller_url, saved.endpoint):
                raise self._refuse_caller_endpoint(spec, "the organisation's saved key")
            return Credential(saved.key, saved.endpoint)
        from_env = self._environ.get(spec.key_env) if spec.key_env else None
        if not from_env and spec.name in ENV_CREDENTIALS:
            from_env = ENV_CREDENTIALS[spec.name](self._environ)
        if from_env:
            if caller_url is not None and not _same_endpoint(caller_url, spec.base_url):
                raise self._refuse_caller_endpoint(spec, "the server's key")
            return Credential(from_env)
        if spec.requires_key:
            where = f" or the server's {spec.key_env}" if spec.key_env else ""
            raise BadRequest(
                f"no API key for provider '{spec.name}': pass provider_api_keys.{spec.name}, "
                f"save one with `chatgate provider-keys set --org NAME {spec.name}`{where}"
            )
        return Credential(None, caller_url, from_caller=caller_url is not None)

    @staticmethod
    def _refuse_caller_endpoint(spec: ProviderSpec, whose: str) -> BadRequest:
        assert isinstance(spec, CallerURLSpec)
        return BadRequest(
            f"provider_api_keys.{spec.endpoint_key} is used only with a key sent in the same "
            f"request (provider_api_keys.{spec.name}); {whose} is sent only to the endpoint "
            "configured with it. Send your own key with your endpoint, or leave the endpoint out."
        )

    async def _saved_endpoint(self, spec: ProviderSpec, org_id: str) -> str | None:
        """Where a request's own key goes when the request names no endpoint: the organisation's
        saved endpoint, for the rows that take one (Azure), else the configured one."""
        if not isinstance(spec, CallerURLSpec):
            return None
        return (await self._saved_key(org_id, spec.name)).endpoint

    async def _saved_key(self, org_id: str, provider: str) -> _Saved:
        now = time.monotonic()
        cached = self._saved.get((org_id, provider))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            row = await self._store.call(self._store.orgs.provider_key, org_id, provider)
        except Exception as exc:
            if cached is None or not self._store.is_unreachable(exc):
                raise
            return cached[0]  # database down: keep using what was last read
        saved = _NOTHING_SAVED
        if row is not None:
            try:
                key = self._fernet.decrypt(row.ciphertext).decode()
            except InvalidToken:
                raise BadRequest(
                    f"the saved key for provider '{provider}' cannot be decrypted: "
                    "CHATGATE_SECRET_KEY changed since it was saved; save it again"
                ) from None
            saved = _Saved(key, row.endpoint)
        self._saved[(org_id, provider)] = (saved, now + self.CACHE_SECONDS)
        return saved
