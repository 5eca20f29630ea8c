"""v4 request bodies of the Model Configs tag and of the two config-addressed chat endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chatgate.api.schemas.chat import ModelConfigChatRequest, _ChatRequestBase
from chatgate.api.schemas.common import _Lenient


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


def stored_config_request(row: dict[str, Any]) -> ModelConfigChatRequest:
    """A stored config (model_configs row: identity body, name, description) as the request
    model /v4/chat takes, so every chat endpoint turns a config into a call the same way.

    The identity body has exactly ModelConfigChatRequest's fields, and turning it back into a
    domain ModelConfig gives the same identity, hence the same fingerprint and config id.
    """
    return ModelConfigChatRequest.model_validate(
        {**row["body"], "name": row["name"], "description": row["description"]}
    )
