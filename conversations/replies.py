"""Answering one user message: stream the LLM's reply out in clauses, keep what was said.

Shared by every text channel (Hume CLM socket and SSE, web chat, HTTP API): the channel
supplies how a clause is sent; this module runs the provider with retries and fallback,
chunks its deltas into speakable clauses, and records what was generated and what was
actually sent, also when the reply is cancelled part-way (a superseding payload, a
barge-in, a closed socket). It imports no Django: storage is the caller's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from agents.llm import (
    ChatMessage,
    ConversationContext,
    LLMProvider,
    LLMRequest,
    Passage,
    ReplyStream,
)
from agents.text_chunks import ClauseChunker

Emit = Callable[[str], Awaitable[None]]


@dataclass
class Answer:
    """What happened to one reply; filled in as it streams, complete even if cancelled."""

    generated: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    first_token_ms: int | None = None
    error: str = ""
    used_fallback: bool = False
    cancelled: bool = False

    @property
    def text(self) -> str:
        return "".join(self.generated).strip()

    @property
    def heard_text(self) -> str:
        return " ".join(self.sent)


async def stream_answer(
    *,
    provider: LLMProvider,
    system_prompt: str,
    history: Sequence[ChatMessage],
    context: ConversationContext,
    emit: Emit,
    answer: Answer,
    passages: Sequence[Passage] = (),
    transform: Callable[[str], str] | None = None,
) -> Answer:
    """Stream a reply to the last message of ``history`` through ``emit``, clause by clause.

    ``answer`` is updated in place so that a caller who is cancelled mid-way still knows
    what was generated and what was sent. ``transform`` (e.g. numbers to words for speech)
    applies to what is sent, never to what is recorded as generated.
    """
    request = LLMRequest(system_prompt=system_prompt, messages=history, passages=passages)
    stream = ReplyStream(provider, request, context)
    chunker = ClauseChunker()

    async def send(chunks: list[str]) -> None:
        for chunk in chunks:
            await emit(transform(chunk) if transform else chunk)
            answer.sent.append(chunk)

    try:
        async for delta in stream:
            answer.generated.append(delta)
            await send(chunker.feed(delta))
        await send(chunker.flush())
    except asyncio.CancelledError:
        answer.cancelled = True
        raise
    finally:
        await stream.aclose()
        outcome = stream.outcome
        answer.first_token_ms = outcome.first_token_ms
        answer.error = outcome.error
        answer.used_fallback = outcome.used_fallback
    return answer
