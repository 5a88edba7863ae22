"""Any server that speaks OpenAI's Chat Completions (Ollama, vLLM, llama.cpp server, ...).

Stateless: every turn sends the system prompt (with the retrieved passages) as a
system message and then the whole history, because these servers keep nothing
between requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
from openai.types.chat import ChatCompletionMessageParam

from .base import (
    ConversationContext,
    LLMConfig,
    LLMError,
    LLMProvider,
    LLMRequest,
    format_instructions,
    split_last_user_message,
)
from .openai_responses import cached_client, llm_error_from_openai

__all__ = ["PLACEHOLDER_API_KEY", "OpenAICompatibleProvider"]

# The SDK refuses to run without a key, and local servers ignore whatever is sent.
PLACEHOLDER_API_KEY = "no-key"


class OpenAICompatibleProvider(LLMProvider):
    """Streaming chat completions against ``config.base_url`` (required); key optional."""

    name = "openai_compatible"
    speculative_safe = True  # chat completions are stateless: the history is in the request

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        if not config.base_url:
            raise LLMError("the openai_compatible provider needs a base URL", kind="config")
        if not config.model:
            raise LLMError("the openai_compatible provider needs a model name", kind="config")

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        """Yield ``choices[0].delta.content`` of each streamed chunk; ``context`` is unused."""
        config = self.config
        # Validates that there is a user message to answer; the history is sent as is.
        split_last_user_message(request.messages)
        messages: list[ChatCompletionMessageParam] = []
        system = format_instructions(request.system_prompt, request.passages)
        if system:
            messages.append({"role": "system", "content": system})
        for message in request.messages:
            if message.role == "user":
                messages.append({"role": "user", "content": message.content})
            elif message.role == "assistant":
                messages.append({"role": "assistant", "content": message.content})
            else:
                messages.append({"role": "system", "content": message.content})
        client = cached_client(
            base_url=config.base_url,
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            timeout_s=config.timeout_s,
        )
        try:
            stream = await client.chat.completions.create(
                model=config.model,
                messages=messages,
                stream=True,
                temperature=config.temperature,
                # `max_tokens`, not `max_completion_tokens`: the compatible servers know it.
                max_tokens=config.max_tokens,
                timeout=config.timeout_s,
            )
            async with stream:
                async for chunk in stream:
                    # Servers may send chunks without choices (usage) or without content.
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise llm_error_from_openai(exc) from exc
