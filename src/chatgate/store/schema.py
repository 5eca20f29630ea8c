"""Every table, in one place (SQLAlchemy Core). Migrations in ``migrations/`` must match this.

Times are stored as UNIX epoch seconds (double precision): portable across SQLite and PostgreSQL,
cheap to compare and index, and converted to ISO-8601 only at the HTTP edge.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    #: The first characters of the key: shown to operators and used to find the row.
    sa.Column("prefix", sa.String(32), nullable=False, unique=True),
    #: SHA-256 of the whole key. Keys are 256-bit random, so a fast hash is enough.
    sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
)

provider_keys = sa.Table(
    "provider_keys",
    metadata,
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    #: Fernet token under the server secret (CHATGATE_SECRET_KEY); never the plain key.
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("reference_id", sa.String(500), nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("org_id", "reference_id"),
)

model_configs = sa.Table(
    "model_configs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    #: SHA-256 over the parameters that change the provider call (ModelConfig.identity()).
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("name", sa.String(500), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("org_id", "fingerprint"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), nullable=True),
    sa.Column("parent_id", sa.String(40), nullable=True),
    sa.Column("reference_id", sa.String(500), nullable=True),
    sa.Column("config_id", sa.String(40), sa.ForeignKey("model_configs.id"), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("sample_index", sa.Integer, nullable=False, default=0),
    sa.Column("save", sa.Boolean, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=True),
    sa.Column("messages", sa.JSON, nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("raw_output", sa.Text, nullable=True),
    sa.Column("output_message", sa.JSON, nullable=True),
    sa.Column("finish_reason", sa.String(64), nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=True),
    sa.Column("output_tokens", sa.Integer, nullable=True),
    sa.Column("reasoning_tokens", sa.Integer, nullable=True),
    sa.Column("duration", sa.Double, nullable=True),
    sa.Column("provider_latency", sa.Double, nullable=True),
    sa.Column("provider_request", sa.JSON, nullable=True),
    sa.Column("provider_response", sa.JSON, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.Column("source", sa.String(500), nullable=True),
    sa.Column("source_datapoint_id", sa.String(100), nullable=True),
    sa.Column("user", sa.String(500), nullable=True),
    sa.Column("tool_choice", sa.JSON, nullable=True),
    sa.Column("tools", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_logs_org_project_created", "org_id", "project_id", "created_at"),
    sa.Index("ix_logs_org_created", "org_id", "created_at"),
    sa.Index("ix_logs_session", "session_id"),
    sa.Index("ix_logs_org_reference", "org_id", "reference_id"),
)

#: PostgreSQL-only trigram indexes for the log searches (migration 0004_log_search creates them
#: when pg_trgm is available). They are not in ``metadata``: it describes what every backend
#: has, and comparing a database with it (tests, autogenerate) leaves these out.
POSTGRESQL_SEARCH_INDEXES = frozenset(
    {"ix_logs_search_inputs", "ix_logs_search_output", "ix_logs_search_metadata"}
)


def include_in_comparison(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's ``include_object`` hook: skip the backend-specific search indexes."""
    return not (type_ == "index" and name in POSTGRESQL_SEARCH_INDEXES)


# --- feedback and feedback types (migration 0002_feedback) --------------------------------------

#: Columns of POST /v4/logs that chat calls never set, and the time of the last PATCH. Appended to
#: ``logs`` here so that migration 0002 owns them; all nullable, so the chat path never sees them.
for _column in (
    sa.Column("updated_at", sa.Double, nullable=True),
    #: JSON text, not sa.JSON: SQLite's JSON affinity would turn a bare number into a REAL.
    sa.Column("judgment", sa.Text, nullable=True),
    sa.Column("environment", sa.String(200), nullable=True),
    sa.Column("stdout", sa.Text, nullable=True),
    sa.Column("prompt_cost", sa.Double, nullable=True),
    sa.Column("output_cost", sa.Double, nullable=True),
):
    logs.append_column(_column)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("log_id", sa.String(40), sa.ForeignKey("logs.id"), nullable=False),
    #: A built-in type (rating, action, issue, correction, comment) or one of the project's.
    sa.Column("type", sa.String(200), nullable=False),
    #: JSON text (a label, labels, text, a number or a boolean): see ``judgment`` above.
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("user", sa.String(500), nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_feedback_log", "log_id", "created_at"),
)

feedback_types = sa.Table(
    "feedback_types",
    metadata,
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("type", sa.String(200), primary_key=True),
    #: select | multi_select | text | number
    sa.Column("class", sa.String(32), nullable=False),
    #: [{"value", "sentiment"}] for select and multi_select; [] otherwise.
    sa.Column("values", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)


# --- environments, deployments and project configs (migration 0003_deployments) ------------------

#: Deployment targets of an organisation. ``tag`` is "default" for the one environment that
#: ``active-config`` and ``chat-deployed`` use when none is named ("production", created lazily),
#: "other" for those added with ``chatgate environments create``.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tag", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

#: The config deployed to a project in an environment (at most one per pair).
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("environment_id", sa.String(40), sa.ForeignKey("environments.id"), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("config_id", sa.String(40), sa.ForeignKey("model_configs.id"), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

#: Configs registered to a project (POST /model-configs, deploy-config); configs merely used by
#: a project's logs are found through the logs themselves.
project_configs = sa.Table(
    "project_configs",
    metadata,
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("config_id", sa.String(40), sa.ForeignKey("model_configs.id"), primary_key=True),
    sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)


# --- cache token counts (migration 0005_cache_tokens) ------------------------------------------

#: The parts of ``prompt_tokens`` the provider read from and wrote to its prompt cache (null when
#: it did not say). Appended here so that migration 0005 owns them.
for _column in (
    sa.Column("cache_read_tokens", sa.Integer, nullable=True),
    sa.Column("cache_write_tokens", sa.Integer, nullable=True),
):
    logs.append_column(_column)


# --- the endpoint of a saved provider key (migration 0006_provider_key_endpoint) ----------------

#: Where the saved key may be sent (Azure OpenAI's resource URL); null: the provider's configured
#: endpoint. Appended here so that migration 0006 owns it.
provider_keys.append_column(sa.Column("endpoint", sa.String(2048), nullable=True))
