"""The database side of a live conversation, for async callers (sockets, streaming views).

Each function does its ORM work in one synchronous call run off the event loop, so a
socket never blocks other sockets while it reads or writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from agents.llm import ConversationContext, LLMConfig
from agents.models import Agent
from agents.selectors import agent_llm_config
from conversations.models import Channel, Conversation, Role, TurnStatus
from conversations.replies import Answer
from conversations.services import conversation_get_or_start, conversation_start, turn_record


@dataclass
class LiveConversation:
    """What a live channel needs of a stored conversation to answer in it."""

    conversation_id: str
    session_id: str
    system_prompt: str
    llm: LLMConfig
    context: ConversationContext


@dataclass
class UserTurn:
    text: str
    prosody: dict[str, float] = field(default_factory=dict)
    speech_time: dict[str, int] | None = None
    vad_end_at: dt.datetime | None = None
    stt_ms: int | None = None


def _live(conversation: Conversation, agent: Agent) -> LiveConversation:
    return LiveConversation(
        conversation_id=str(conversation.pk),
        session_id=conversation.external_id or str(conversation.pk),
        system_prompt=conversation.prompt_version.text,
        llm=agent_llm_config(agent=agent),
        context=ConversationContext(
            engine_state=dict(conversation.engine_state),
            provider_conversation_id=""
            if conversation.reset_requested
            else conversation.provider_conversation_id,
        ),
    )


def _open(
    agent: Agent, channel: Channel, session_id: str | None, user: User | AnonymousUser | None
) -> LiveConversation:
    if session_id:
        conversation, _ = conversation_get_or_start(
            agent=agent, channel=channel, external_id=session_id, user=user
        )
    else:
        conversation = conversation_start(agent=agent, channel=channel, user=user)
    conversation = Conversation.objects.select_related("prompt_version").get(pk=conversation.pk)
    return _live(conversation, agent)


open_conversation = database_sync_to_async(_open)


def _record_exchange(live: LiveConversation, user: UserTurn, answer: Answer) -> None:
    """Store the user's turn and the reply, with the engine state, all or nothing."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=live.conversation_id)
        turn_record(
            conversation=conversation,
            role=Role.USER,
            text=user.text,
            prosody=user.prosody,
            speech_time=user.speech_time,
            vad_end_at=user.vad_end_at,
            stt_ms=user.stt_ms,
        )
        turn_record(
            conversation=conversation,
            role=Role.ASSISTANT,
            text=answer.text,
            heard_text=answer.heard_text if answer.cancelled else None,
            interrupted=answer.cancelled,
            status=TurnStatus.FAILED if answer.error else TurnStatus.COMPLETE,
            error=answer.error,
            llm_first_token_ms=answer.first_token_ms,
        )
        updates: dict[str, Any] = {"engine_state": live.context.engine_state}
        if live.context.provider_conversation_id != conversation.provider_conversation_id:
            updates["provider_conversation_id"] = live.context.provider_conversation_id
        if conversation.reset_requested:
            updates["reset_requested"] = False
        for name, value in updates.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=[*updates, "updated_at"])


record_exchange = database_sync_to_async(_record_exchange)
