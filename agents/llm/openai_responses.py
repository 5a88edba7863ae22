"""OpenAI through the Responses API, with server-side Conversations holding the history.

The first turn of a conversation creates an OpenAI conversation (seeded with any
history the caller already has, such as the spoken greeting) and stores its id in
``context.provider_conversation_id``; every turn then sends only the new user message
with ``conversation=<id>``. A stored conversation that OpenAI no longer knows is
replaced by a new one on the retry. Retrieved passages travel in ``instructions``; an
agent with a ``vector_store_id`` also gets OpenAI's ``file_search`` tool over that store.

This module also holds what both OpenAI-SDK providers share: the client cache and the
mapping of SDK exceptions to :class:`LLMError`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInputItemParam,
    ResponseTextDeltaEvent,
)

from .base import (
    ChatMessage,
    ConversationContext,
    LLMConfig,
    LLMError,
    LLMProvider,
    LLMRequest,
    format_instructions,
    split_last_user_message,
)

__all__ = [
    "OpenAIResponsesProvider",
    "aclose_cached_clients",
    "cached_client",
    "llm_error_from_openai",
]

logger = logging.getLogger(__name__)

# `conversations.create` and `conversations.items.create` take at most 20 items a call.
_ITEMS_PER_CALL = 20

# A client owns a connection pool, and pooled connections belong to the event loop that
# opened them, so clients are cached per loop and then per (base_url, key). In a server
# there is one loop and so one client per endpoint; tests get a fresh set per loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], AsyncOpenAI]]
_clients = weakref.WeakKeyDictionary()


def cached_client(*, base_url: str, api_key: str, timeout_s: float) -> AsyncOpenAI:
    """The process's client for this endpoint and key on the running loop.

    SDK retries are off (``max_retries=0``): :class:`~agents.llm.stream.ReplyStream`
    retries, and only while nothing has been spoken. ``timeout_s`` only applies to a
    newly made client; callers pass their own timeout on each request.
    """
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, api_key)
    client = per_loop.get(key)
    if client is None:
        client = AsyncOpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=0
        )
        per_loop[key] = client
    return client


async def aclose_cached_clients() -> None:
    """Close the running loop's cached clients (at shutdown, or after a test)."""
    per_loop = _clients.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.close()


def _detail(exc: openai.APIError) -> str:
    # The SDK's own message repeats the status and dumps the body; the error object's
    # message is what a person needs to read.
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def llm_error_from_openai(exc: openai.OpenAIError) -> LLMError:
    """The :class:`LLMError` for an ``openai`` SDK exception (kind, retryable, status)."""
    # Order matters: APITimeoutError is an APIConnectionError, RateLimitError an
    # APIStatusError.
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"request timed out: {exc}", kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"connection failed: {exc}", kind="connection")
    if isinstance(exc, openai.RateLimitError):
        # An exhausted quota also answers 429, but no amount of waiting fixes it.
        quota = exc.code == "insufficient_quota"
        return LLMError(
            f"rate limited (HTTP 429): {_detail(exc)}",
            kind="rate_limited",
            retryable=not quota,
            status=429,
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return LLMError(
                f"server error (HTTP {status}): {_detail(exc)}", kind="server", status=status
            )
        if status == 408:
            return LLMError(
                f"request timeout (HTTP 408): {_detail(exc)}", kind="timeout", status=status
            )
        # 409 is a transient lock conflict on OpenAI's side; the SDK retries it too.
        return LLMError(
            f"request rejected (HTTP {status}): {_detail(exc)}",
            kind="client",
            retryable=status == 409,
            status=status,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError(f"unexpected response: {_detail(exc)}", kind="server", retryable=False)
    if isinstance(exc, openai.APIError):
        # An error object inside an otherwise successful stream: the server gave up.
        return LLMError(f"the stream reported an error: {_detail(exc)}", kind="server")
    return LLMError(f"OpenAI client error: {exc}", kind="client")


def _input_items(messages: Sequence[ChatMessage]) -> list[ResponseInputItemParam]:
    return [
        EasyInputMessageParam(role=message.role, content=message.content) for message in messages
    ]


def _stream_failure(code: str | None, message: str) -> LLMError:
    # Errors reported inside a stream (an `error` event, `response.failed`): the request
    # itself was accepted, so these are the server's problem unless it says otherwise.
    if code and "rate_limit" in code:
        return LLMError(f"rate limited: {message}", kind="rate_limited")
    if code in {"invalid_prompt", "invalid_request_error"}:
        return LLMError(f"request rejected ({code}): {message}", kind="client")
    return LLMError(f"response failed ({code or 'no code'}): {message}", kind="server")


class OpenAIResponsesProvider(LLMProvider):
    """OpenAI's Responses API, streaming, with the history kept in an OpenAI conversation.

    Needs ``config.model`` and ``config.api_key``; ``config.base_url`` overrides the
    endpoint (a proxy, or a test server).
    """

    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        if not config.api_key:
            raise LLMError("the openai provider needs an API key", kind="config")
        if not config.model:
            raise LLMError("the openai provider needs a model name", kind="config")

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        """Yield the ``response.output_text.delta`` deltas of one streamed response."""
        config = self.config
        history, user_text = split_last_user_message(request.messages)
        client = cached_client(
            base_url=config.base_url, api_key=config.api_key, timeout_s=config.timeout_s
        )
        options: dict[str, Any] = {}
        instructions = format_instructions(request.system_prompt, request.passages)
        if instructions:
            options["instructions"] = instructions
        if config.vector_store_id:
            store_ids = [config.vector_store_id]
            options["tools"] = [{"type": "file_search", "vector_store_ids": store_ids}]
        try:
            stored = bool(context.provider_conversation_id)
            if not stored:
                context.provider_conversation_id = await self._start_conversation(client, history)
            try:
                stream = await client.responses.create(
                    model=config.model,
                    conversation=context.provider_conversation_id,
                    # The conversation holds everything before this message.
                    input=_input_items([ChatMessage("user", user_text)]),
                    stream=True,
                    temperature=config.temperature,
                    max_output_tokens=config.max_tokens,
                    timeout=config.timeout_s,
                    **options,
                )
            except openai.NotFoundError as exc:
                if not stored:
                    raise
                # The stored conversation is gone (deleted, or expired at OpenAI). Forget
                # it so that the retry starts a new one, seeded with the caller's history,
                # instead of every later turn failing the same way.
                context.provider_conversation_id = ""
                raise LLMError(
                    f"conversation not found, starting a new one: {_detail(exc)}",
                    kind="client",
                    retryable=True,
                    status=404,
                ) from exc
            async with stream:
                async for event in stream:
                    # Everything else (created, in_progress, part and item bookkeeping,
                    # file_search progress, completed) carries nothing to speak.
                    if isinstance(event, ResponseTextDeltaEvent):
                        yield event.delta
                    elif isinstance(event, ResponseErrorEvent):
                        raise _stream_failure(event.code, event.message)
                    elif isinstance(event, ResponseFailedEvent):
                        error = event.response.error
                        raise _stream_failure(
                            error.code if error else None,
                            error.message if error else "no details",
                        )
                    elif isinstance(event, ResponseIncompleteEvent):
                        # Usually max_output_tokens: what was said stands; note why it stopped.
                        details = event.response.incomplete_details
                        reason = details.reason if details else "unknown"
                        logger.info("OpenAI response incomplete: %s", reason)
        except openai.OpenAIError as exc:
            raise llm_error_from_openai(exc) from exc

    async def _start_conversation(self, client: AsyncOpenAI, history: Sequence[ChatMessage]) -> str:
        # Seed the new conversation with what was already said (typically the greeting),
        # so the model sees the same history the caller does.
        items = _input_items([message for message in history if message.content])
        first, rest = items[:_ITEMS_PER_CALL], items[_ITEMS_PER_CALL:]
        timeout = self.config.timeout_s
        conversation = (
            await client.conversations.create(items=first, timeout=timeout)
            if first
            else await client.conversations.create(timeout=timeout)
        )
        for start in range(0, len(rest), _ITEMS_PER_CALL):
            batch = rest[start : start + _ITEMS_PER_CALL]
            await client.conversations.items.create(conversation.id, items=batch, timeout=timeout)
        return conversation.id
