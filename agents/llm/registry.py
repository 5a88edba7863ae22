"""Provider names to classes: adding a provider is one new module and one line here."""

from __future__ import annotations

from .base import LLMConfig, LLMError, LLMProvider
from .eliza import ElizaProvider
from .openai_compatible import OpenAICompatibleProvider
from .openai_responses import OpenAIResponsesProvider

__all__ = ["PROVIDERS", "build_provider", "provider_names"]

PROVIDERS: dict[str, type[LLMProvider]] = {
    ElizaProvider.name: ElizaProvider,
    OpenAIResponsesProvider.name: OpenAIResponsesProvider,
    OpenAICompatibleProvider.name: OpenAICompatibleProvider,
}


def provider_names() -> tuple[str, ...]:
    """The registered names, e.g. for a form's choices."""
    return tuple(PROVIDERS)


def build_provider(config: LLMConfig) -> LLMProvider:
    """The provider ``config.provider`` names, built from ``config``.

    Raises ``LLMError(kind="config")`` for an unknown name or an unusable config.
    """
    try:
        provider_class = PROVIDERS[config.provider]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise LLMError(
            f"unknown LLM provider {config.provider!r} (known: {known})", kind="config"
        ) from None
    return provider_class(config)
