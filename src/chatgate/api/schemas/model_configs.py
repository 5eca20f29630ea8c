"""v4 request bodies of the Model Configs tag and of the two config-addressed chat endpoints."""

from __future__ import annotations

from pydantic import Field, ValidationError

from chatgate.api.schemas.chat import ModelConfigChatRequest, _ChatRequestBase
from chatgate.api.schemas.common import _Lenient
from chatgate.domain.projects import ConfigRow
from chatgate.errors import BadRequest, NotImplementedByServer


class ChatModelConfigRequest(_ChatRequestBase):
    """Body of ``POST /v4/chat-model-config``: chat with a registered config."""

    model_config_id: str


class ChatDeployedRequest(_ChatRequestBase):
    """Body of ``POST /v4/chat-deployed``: chat with the config deployed to the project."""

    #: Environment name; the organisation's default environment when omitted.
    environment: str | None = None


class ProjectModelConfigRequest(ModelConfigChatRequest):
    """Body of ``POST /v4/model-configs``: a chat config registered in a project."""

    project: str | None = None
    project_id: str | None = None
    #: Completion configs are not supported by chatgate (501 when given).
    prompt_template: str | None = None


class Body_ModelConfigs_deserialize(_Lenient):
    """Body of ``POST /v4/model-configs/deserialize``."""

    config: str = Field(description="A .prompt file's text")


def stored_config_request(row: ConfigRow) -> ModelConfigChatRequest:
    """A stored config (its identity body, name, description) as the request
    model /v4/chat takes, so every chat endpoint turns a config into a call the same way.

    The identity body has exactly ModelConfigChatRequest's fields, and turning it back into a
    domain ModelConfig gives the same identity, hence the same fingerprint and config id.
    A config recorded with ``POST /v4/logs`` may hold what no chat config can (a
    ``prompt_template``, a penalty of 5): that is the caller's 4xx, not a 500.
    """
    if "prompt_template" in row.body:
        raise NotImplementedByServer(
            f"model config '{row.id}' is a completion config (prompt_template), which "
            "chatgate does not support; use a chat config"
        )
    try:
        return ModelConfigChatRequest.model_validate(
            {**row.body, "name": row.name, "description": row.description}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise BadRequest(
            f"model config '{row.id}' was logged with values a chat config cannot have ({problems})"
        ) from None
