"""All configuration, in one place.

Every setting comes from the environment with the prefix ``CHATGATE_`` (for example
``CHATGATE_DATABASE_URL``). Provider credentials and base URLs additionally follow each vendor's own
SDK conventions (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``GROQ_API_KEY`` ...); those are read from
``vendor_env``, a snapshot of the process environment, so tests can pass their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".chatgate"


class NamedProvider(BaseModel):
    """An operator-configured OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio ...)."""

    base_url: str
    #: Name of the environment variable holding the key; servers that need none leave it unset.
    api_key_env: str | None = None
    wire: Literal["openai"] = "openai"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATGATE_", extra="ignore")

    #: Directory for the SQLite database and the generated secret key.
    data_dir: Path = Field(default_factory=default_data_dir)
    #: ``sqlite:///path``; defaults to ``sqlite:///<data_dir>/chatgate.db``.
    database_url: str | None = None
    #: Encrypts organisations' saved provider keys. Generated into ``<data_dir>/secret.key`` if unset.
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: ``durable``: a 200 is sent only after the call's log is committed.
    #: ``fast``: answer first and commit in the background (a crash can lose the last logs).
    log_commit: Literal["durable", "fast"] = "durable"
    #: SQLite ``synchronous``: NORMAL survives a killed process; FULL also survives power loss.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    #: Most log records the writer queue holds before callers wait (backpressure, not memory).
    writer_queue_size: int = 10_000
    #: Largest request body accepted (413 above); images as base64 make bodies large.
    max_body_bytes: int = 32 * 1024 * 1024
    #: Seconds a cached API-key lookup is trusted; a revoked key stops working within this time.
    auth_cache_seconds: float = 10.0
    #: Seconds a cached project lookup (name or id -> project) is trusted. A project renamed or
    #: deleted through another server process is seen by this one within this time.
    project_cache_seconds: float = 10.0
    #: Seconds of silence on a stream after which a keep-alive comment is sent.
    sse_keepalive_seconds: float = 15.0
    #: Total seconds allowed for one upstream provider call (for a stream: the longest silence).
    provider_timeout_seconds: float = 600.0
    #: Per-provider overrides of the timeout above, as JSON: ``{"anthropic": 300, "groq": 30}``.
    provider_timeouts: dict[str, float] = Field(default_factory=dict)
    #: Seconds allowed to connect to a provider.
    provider_connect_timeout_seconds: float = 10.0
    #: A JSON file of prices (USD per 1M tokens) that adds to or overrides the built-in table:
    #: ``{"openai": {"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}}}`` (optional
    #: per model: ``cached_input``, ``cache_write``, ``reasoning``; see providers/prices.py).
    prices_file: Path | None = None
    #: Retries of a provider call that failed with 429, 5xx or a connection error, before any
    #: byte reached the client; exponential backoff with jitter, honouring Retry-After.
    provider_max_retries: int = 2
    #: Upper bound on the total time spent waiting between retries of one call.
    provider_retry_max_seconds: float = 20.0
    #: Hosts (exact names) and networks (CIDRs) a caller-supplied upstream URL may reach although
    #: they are not public (``providers/url_guard.py``), as JSON: ``["aoai.internal", "10.8.0.0/16"]``.
    allowed_upstream_hosts: list[str] = Field(default_factory=list)
    #: Operator-named OpenAI-compatible providers, as JSON:
    #: ``{"ollama": {"base_url": "http://127.0.0.1:11434/v1", "api_key_env": "OLLAMA_API_KEY"}}``.
    providers: dict[str, NamedProvider] = Field(default_factory=dict)
    #: Snapshot of the process environment for vendor variables (``OPENAI_API_KEY`` ...).
    vendor_env: dict[str, str] = Field(default_factory=lambda: dict(os.environ), exclude=True)

    # --- HTTP edge: what one connection may hold (src/chatgate/edge/, docs/operations.md) ---
    #: Largest request line + headers of one request; beyond it a 431 and the connection closes.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Total seconds allowed to send one request's line and headers, counted from its first byte
    #: (from the connect for a connection's first request): a deadline, not a silence timer.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Seconds a request body may take beyond what ``body_min_bytes_per_second`` allows: the body
    #: must be complete ``body_timeout_seconds + received bytes / body_min_bytes_per_second``
    #: after its headers (a minimum rate with a grace period; a dribbling body is closed).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: The slowest upload rate a request body is guaranteed to be accepted at (see above).
    body_min_bytes_per_second: int = Field(default=64 * 1024, gt=0)
    #: Seconds an idle keep-alive connection stays open after its last response.
    keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    #: Most client connections one server process holds (per process: ``--workers N`` allows N
    #: times as many); beyond it a 503 with Retry-After. Lowered at start-up if the process's
    #: open-file limit could not serve it (each connection may need a second, upstream, socket).
    max_connections: int = Field(default=4096, ge=1)

    # --- bounded templates and logs (issue 22: templating/, services/log_limit.py) ---------
    #: Seconds a template may take to render (jinja, and default templates over 64 KiB, render
    #: in renderer processes); beyond it the renderer is killed and the request answered 422.
    template_timeout_seconds: float = Field(default=1.0, gt=0)
    #: Renderer processes per server process, started on first use.
    template_workers: int = Field(default=2, ge=1)
    #: Address-space limit of one renderer process (a template needing more is a 422).
    template_memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=256 * 1024 * 1024)
    #: Bytes one log's payload fields may take together; longer fields are stored truncated
    #: with a marker. At least ``max_body_bytes``; unset: twice ``max_body_bytes``.
    max_log_bytes: int | None = None

    @model_validator(mode="after")
    def _log_holds_a_body(self) -> Settings:
        if self.max_log_bytes is not None and self.max_log_bytes < self.max_body_bytes:
            raise ValueError(
                f"CHATGATE_MAX_LOG_BYTES ({self.max_log_bytes}) must be at least "
                f"CHATGATE_MAX_BODY_BYTES ({self.max_body_bytes}): a log must be able to hold "
                "what one request sent"
            )
        return self

    @property
    def resolved_max_log_bytes(self) -> int:
        return self.max_log_bytes or 2 * self.max_body_bytes

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'chatgate.db'}"
