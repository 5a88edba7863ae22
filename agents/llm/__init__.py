"""The language-model layer: one interface, several providers, and a safe reply stream.

Public API::

    provider = build_provider(LLMConfig(provider="openai", model=..., api_key=...))
    context = ConversationContext()          # persisted by the caller between turns
    request = LLMRequest(system_prompt, messages=[...], passages=[...])
    async with ReplyStream(provider, request, context) as stream:
        async for delta in stream: ...
    stream.outcome                           # ReplyOutcome: text, timings, error, ...

Pure Python/asyncio: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from .base import (
    ChatMessage,
    ConversationContext,
    LLMConfig,
    LLMError,
    LLMProvider,
    LLMRequest,
    Passage,
    format_instructions,
)
from .eliza import ElizaProvider
from .openai_compatible import OpenAICompatibleProvider
from .openai_responses import OpenAIResponsesProvider, aclose_cached_clients
from .registry import PROVIDERS, build_provider, provider_names
from .stream import DEFAULT_FALLBACK_TEXT, ReplyOutcome, ReplyStream

__all__ = [
    "DEFAULT_FALLBACK_TEXT",
    "PROVIDERS",
    "ChatMessage",
    "ConversationContext",
    "ElizaProvider",
    "LLMConfig",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "OpenAICompatibleProvider",
    "OpenAIResponsesProvider",
    "Passage",
    "ReplyOutcome",
    "ReplyStream",
    "aclose_cached_clients",
    "build_provider",
    "format_instructions",
    "provider_names",
]
