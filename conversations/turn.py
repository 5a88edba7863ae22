"""Answer one turn: the one place every text channel (the chat socket, the custom-LLM
socket and SSE, the chatbot-server endpoints) answers a user's message.

A turn retrieves the agent's passages for the message (applying a reset asked for
meanwhile), streams the model's reply clause by clause to the channel's ``emit``, and
stores the user's turn and the reply together, also when the reply fails or is cancelled
(then as interrupted, with what was sent): the write is shielded, so the cancellation
that ends a reply cannot interrupt it. The voice socket's turns go through the realtime
session instead (``conversations.realtime``), which times and cuts them by audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.llm import ChatMessage, LLMProvider
from conversations.replies import Answer, stream_answer
from conversations.stores import (
    Exchange,
    LiveConversation,
    TurnKnowledge,
    UserTurn,
    prepare_turn,
    write_exchange,
)

Emit = Callable[[str], Awaitable[None]]


@dataclass
class PendingTurn:
    """One user turn being answered; what it has produced so far, for storing."""

    live: LiveConversation
    user: UserTurn
    answer: Answer = field(default_factory=Answer)
    knowledge: TurnKnowledge = field(default_factory=TurnKnowledge)

    async def produce(
        self,
        provider: LLMProvider,
        messages: Sequence[ChatMessage],
        emit: Emit,
        *,
        transform: Callable[[str], str] | None = None,
    ) -> None:
        """Retrieve, then stream the reply to ``emit``; ``messages`` end with the user's."""
        self.knowledge = await prepare_turn(self.live, self.user.text)
        await stream_answer(
            provider=provider,
            system_prompt=self.live.system_prompt,
            history=list(messages),
            context=self.live.context,
            emit=emit,
            answer=self.answer,
            passages=self.knowledge.passages,
            transform=transform,
        )

    async def store(self, **exchange: Any) -> Exchange:
        """Store the user's turn and the reply as they stand (shielded from cancellation).
        ``exchange``: more of the :class:`Exchange` (timings, audio)."""
        stored = Exchange(self.live, self.user, self.answer, self.knowledge.refs, **exchange)
        await asyncio.shield(write_exchange(stored))
        return stored


async def answer_turn(
    turn: PendingTurn,
    provider: LLMProvider,
    messages: Sequence[ChatMessage],
    emit: Emit,
    *,
    transform: Callable[[str], str] | None = None,
) -> Answer:
    """Answer ``turn`` and store the exchange, whatever happens to the reply.

    ``messages`` is what the model sees, ending with the user's message. When the reply
    is cancelled or fails, the exception propagates after the exchange is stored, and
    ``turn.answer`` still holds what was generated and sent.
    """
    try:
        await turn.produce(provider, messages, emit, transform=transform)
    finally:
        await turn.store()
    return turn.answer
