"""Writes for conversations and turns.

These are synchronous ORM functions; async callers (consumers) reach them through
``channels.db.database_sync_to_async`` so persistence never blocks the event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agents.models import Agent
from agents.selectors import prompt_version_get_active
from conversations.events import monitor_publish
from conversations.models import (
    Channel,
    Conversation,
    ConversationStatus,
    EndReason,
    Role,
    Turn,
    TurnLabel,
    TurnStatus,
)


def _agent_snapshot(agent: Agent) -> dict[str, Any]:
    return {
        "llm_provider": agent.llm_provider,
        "llm_model": agent.llm_model,
        "llm_temperature": agent.llm_temperature,
        "llm_max_tokens": agent.llm_max_tokens,
        "stt_provider": agent.stt_provider,
        "stt_model": agent.stt_model,
        "tts_provider": agent.tts_provider,
        "tts_voice": agent.tts_voice,
        "vad_threshold": agent.vad_threshold,
        "end_of_turn_silence_ms": agent.end_of_turn_silence_ms,
        "min_speech_ms": agent.min_speech_ms,
        "barge_in": agent.barge_in,
    }


def conversation_start(
    *,
    agent: Agent,
    channel: Channel,
    external_id: str = "",
    user: User | AnonymousUser | None = None,
) -> Conversation:
    """Start a conversation that records the agent's active prompt version and settings."""
    return Conversation.objects.create(
        agent=agent,
        prompt_version=prompt_version_get_active(agent=agent),
        agent_snapshot=_agent_snapshot(agent),
        channel=channel,
        external_id=external_id,
        user=user if isinstance(user, User) else None,
    )


def conversation_get_or_start(
    *,
    agent: Agent,
    channel: Channel,
    external_id: str,
    user: User | AnonymousUser | None = None,
) -> tuple[Conversation, bool]:
    """The active conversation for an external session id, created on first sight (and
    again after the last one ended).

    Two processes may see a new session id at the same moment; the unique constraint
    decides, and the loser reads the winner's row.
    """
    lookup = {
        "agent": agent,
        "channel": channel,
        "external_id": external_id,
        "status": ConversationStatus.ACTIVE,
    }
    existing = Conversation.objects.filter(**lookup).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return conversation_start(
                agent=agent, channel=channel, external_id=external_id, user=user
            ), True
    except IntegrityError:
        return Conversation.objects.get(**lookup), False


def conversation_end(
    *,
    conversation: Conversation,
    status: ConversationStatus = ConversationStatus.ENDED,
    reason: EndReason | str = "",
) -> Conversation:
    conversation.status = status
    conversation.ended_at = timezone.now()
    conversation.end_reason = reason
    conversation.save(update_fields=["status", "ended_at", "end_reason", "updated_at"])
    return conversation


def conversation_close(*, conversation_id: str, reason: EndReason) -> bool:
    """A live channel's socket has closed: end its conversation, if it is still active
    (another socket may have resumed it meanwhile). Returns whether it ended now."""
    return bool(
        Conversation.objects.filter(pk=conversation_id, status=ConversationStatus.ACTIVE).update(
            status=ConversationStatus.ENDED,
            ended_at=timezone.now(),
            end_reason=reason,
            updated_at=timezone.now(),
        )
    )


def conversations_end_for_channel(*, agent_id: int, channel: Channel, reason: EndReason) -> int:
    """End every active conversation of ``agent_id`` on ``channel`` (a chatbot client's
    /clearCache/): each session id starts a new conversation, with a new id, next time."""
    now = timezone.now()
    return Conversation.objects.filter(
        agent_id=agent_id, channel=channel, status=ConversationStatus.ACTIVE
    ).update(status=ConversationStatus.ENDED, ended_at=now, end_reason=reason, updated_at=now)


def conversation_reopen(*, conversation: Conversation) -> Conversation:
    """A caller came back to an ended conversation (a reconnect, a reload): it goes on."""
    if conversation.status != ConversationStatus.ACTIVE:
        conversation.status = ConversationStatus.ACTIVE
        conversation.ended_at = None
        conversation.end_reason = ""
        conversation.save(update_fields=["status", "ended_at", "end_reason", "updated_at"])
    return conversation


def conversation_save_engine_state(
    *, conversation: Conversation, engine_state: dict[str, Any]
) -> None:
    conversation.engine_state = engine_state
    conversation.save(update_fields=["engine_state", "updated_at"])


@transaction.atomic
def turn_record(
    *,
    conversation: Conversation,
    role: Role,
    text: str,
    heard_text: str | None = None,
    interrupted: bool = False,
    status: TurnStatus = TurnStatus.COMPLETE,
    error: str = "",
    prosody: dict[str, float] | None = None,
    speech_time: dict[str, int] | None = None,
    vad_end_at: dt.datetime | None = None,
    stt_ms: int | None = None,
    llm_first_token_ms: int | None = None,
    tts_first_audio_ms: int | None = None,
    voice_to_voice_ms: int | None = None,
    knowledge_refs: list[dict[str, Any]] | None = None,
    engine_state: dict[str, Any] | None = None,
    channel: Channel | None = None,
) -> Turn:
    """Append one turn to a conversation, whole, with the next index. ``channel``: where it
    came in, when not on the conversation's own channel.

    The conversation row is locked while the index is chosen, so turns recorded from
    several processes never collide or leave gaps. When ``engine_state`` is given it is
    saved in the same transaction, so a turn and the engine memory that produced it are
    stored together or not at all.
    """
    Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    last = Turn.objects.filter(conversation=conversation).aggregate(n=Max("index"))["n"]
    turn = Turn.objects.create(
        conversation=conversation,
        index=0 if last is None else last + 1,
        role=role,
        channel=channel or conversation.channel,
        text=text,
        heard_text=text if heard_text is None else heard_text,
        interrupted=interrupted,
        status=status,
        error=error,
        prosody=prosody or {},
        speech_time=speech_time,
        vad_end_at=vad_end_at,
        stt_ms=stt_ms,
        llm_first_token_ms=llm_first_token_ms,
        tts_first_audio_ms=tts_first_audio_ms,
        voice_to_voice_ms=voice_to_voice_ms,
        knowledge_refs=knowledge_refs or [],
    )
    if engine_state is not None:
        conversation_save_engine_state(conversation=conversation, engine_state=engine_state)
    transaction.on_commit(lambda: monitor_publish(turn_event(turn)))
    return turn


def turn_cut(*, conversation_id: str, index: int, heard_text: str) -> None:
    """An assistant turn the listener cut short: heard only as far as ``heard_text``.

    Playback is only known to have stopped after the reply was stored (a barge-in during
    its audio, or the client's last playback report), so this amends the stored row.
    """
    updated = Turn.objects.filter(
        conversation_id=conversation_id, index=index, role=Role.ASSISTANT
    ).update(interrupted=True, heard_text=heard_text)
    if updated != 1:
        raise Turn.DoesNotExist(f"no assistant turn {index} in conversation {conversation_id}")


def turn_label(*, turn: Turn, label: TurnLabel | str, note: str, user: User | None) -> Turn:
    """An operator's review of ``turn``: a label (or "" to clear it) and a note.

    Only the review fields change; the record of what was said stays as it was stored.
    """
    if label not in TurnLabel.values and label != "":
        raise ValueError(f"unknown label {label!r}; use one of: {', '.join(TurnLabel.values)}")
    turn.label = label
    turn.review_note = note
    turn.reviewed_by = user
    turn.reviewed_at = timezone.now()
    turn.save(update_fields=["label", "review_note", "reviewed_by", "reviewed_at"])
    return turn


def turn_event(turn: Turn) -> dict[str, Any]:
    return {
        "kind": "turn.recorded",
        "conversation": str(turn.conversation_id),
        "index": turn.index,
        "role": turn.role,
        "text": turn.text,
        "interrupted": turn.interrupted,
    }
