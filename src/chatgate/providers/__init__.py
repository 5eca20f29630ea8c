"""The provider table: provider name -> wire protocol, base URL and credentials. No if/elif.

Rows for the v4 ``ModelProviders`` that this server does not translate yet are listed in
:data:`NOT_YET_SUPPORTED`; asking for them is a 501 that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from chatgate.providers.anthropic_messages import AnthropicMessagesWire
from chatgate.providers.azure import SPEC as AZURE_SPEC
from chatgate.providers.azure import AzureOpenAIWire, AzureSpec
from chatgate.providers.base import ProviderSpec, Wire
from chatgate.providers.bedrock_converse import BedrockConverseWire
from chatgate.providers.bedrock_converse import configure as configure_bedrock
from chatgate.providers.bedrock_converse import credential_from_env as bedrock_env_key
from chatgate.providers.cohere_chat import CohereChatWire
from chatgate.providers.google_gemini import GeminiWire
from chatgate.providers.mock import MockWire
from chatgate.providers.openai_chat import OpenAIChatWire
from chatgate.providers.replicate import ReplicateWire
from chatgate.settings import NamedProvider

WIRES: Mapping[str, Wire] = {
    "openai": OpenAIChatWire(),
    "mock": MockWire(),
    "anthropic": AnthropicMessagesWire(),
    "google": GeminiWire(),
    "openai_azure": AzureOpenAIWire(),
    "cohere": CohereChatWire(),
    "replicate": ReplicateWire(),
    "bedrock": BedrockConverseWire(),
}

BUILTIN: Mapping[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec("mock", wire="mock", origin="mock", requires_key=False),
        ProviderSpec(
            "openai",
            wire="openai",
            origin="OpenAI",
            base_url="https://api.openai.com/v1",
            key_env="OPENAI_API_KEY",
            base_url_env="OPENAI_BASE_URL",
        ),
        ProviderSpec(
            "groq",
            wire="openai",
            origin="Groq",
            base_url="https://api.groq.com/openai/v1",
            key_env="GROQ_API_KEY",
            base_url_env="GROQ_BASE_URL",
        ),
        ProviderSpec(
            "deepseek",
            wire="openai",
            origin="DeepSeek",
            base_url="https://api.deepseek.com",
            key_env="DEEPSEEK_API_KEY",
            base_url_env="DEEPSEEK_BASE_URL",
        ),
        ProviderSpec(
            "anthropic",
            wire="anthropic",
            origin="Anthropic",
            base_url="https://api.anthropic.com",
            key_env="ANTHROPIC_API_KEY",
            base_url_env="ANTHROPIC_BASE_URL",
        ),
        ProviderSpec(
            "google",
            wire="google",
            origin="Google",
            base_url="https://generativelanguage.googleapis.com",
            key_env="GEMINI_API_KEY",
            base_url_env="GOOGLE_GEMINI_BASE_URL",
        ),
        AZURE_SPEC,  # endpoint: the caller's (guarded) or AZURE_OPENAI_ENDPOINT
        ProviderSpec(
            "cohere",
            wire="cohere",
            origin="Cohere",
            base_url="https://api.cohere.com",
            key_env="CO_API_KEY",
            base_url_env="CO_API_URL",
        ),
        ProviderSpec(
            "replicate",
            wire="replicate",
            origin="Replicate",
            base_url="https://api.replicate.com",
            key_env="REPLICATE_API_TOKEN",
            base_url_env="REPLICATE_BASE_URL",
        ),
        ProviderSpec(
            "bedrock",
            wire="bedrock",
            origin="Bedrock",
            base_url="https://bedrock-runtime.us-east-1.amazonaws.com",  # region: see configure
            key_env="AWS_BEARER_TOKEN_BEDROCK",
            base_url_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        ),
    )
}

#: Other key variables the vendor's SDK reads, used when the row's ``key_env`` is unset.
KEY_ENV_ALTERNATIVES: Mapping[str, tuple[str, ...]] = {"google": ("GOOGLE_API_KEY",)}

#: v4 ModelProviders whose wire translation has not landed yet.
NOT_YET_SUPPORTED: frozenset[str] = frozenset()

#: Rows configured from more of the environment than a base URL (Bedrock: the AWS region).
ENV_CONFIGURED = {"bedrock": configure_bedrock}

#: Credentials the vendor SDK assembles from several variables, used when ``key_env`` is unset
#: (Bedrock: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]).
ENV_CREDENTIALS = {"bedrock": bedrock_env_key}


def build_registry(
    named: Mapping[str, NamedProvider],
    environ: Mapping[str, str],
    allowed_upstream_hosts: Sequence[str] = (),
) -> dict[str, ProviderSpec]:
    """The built-in rows (base URLs overridden by the vendor variables) plus the operator's."""
    registry: dict[str, ProviderSpec] = {}
    for name, spec in BUILTIN.items():
        base_url = environ.get(spec.base_url_env, "") if spec.base_url_env else ""
        key_env = spec.key_env
        if key_env and not environ.get(key_env):
            key_env = next(
                (v for v in KEY_ENV_ALTERNATIVES.get(name, ()) if environ.get(v)), key_env
            )
        registry[name] = ProviderSpec(
            spec.name,
            spec.wire,
            spec.origin,
            base_url or spec.base_url,
            key_env,
            spec.base_url_env,
            spec.requires_key,
        )
        if isinstance(spec, AzureSpec):  # keeps its own fields: API version, upstream allow-list
            registry[name] = replace(
                spec, base_url=base_url or spec.base_url, key_env=key_env
            ).configured(environ, allowed_upstream_hosts)
        if name in ENV_CONFIGURED:
            registry[name] = ENV_CONFIGURED[name](registry[name], environ)
    for name, named_provider in named.items():
        registry[name] = ProviderSpec(
            name,
            wire=named_provider.wire,
            origin=name,
            base_url=named_provider.base_url,
            key_env=named_provider.api_key_env,
            requires_key=named_provider.api_key_env is not None,
        )
    return registry
