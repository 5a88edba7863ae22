"""Conversations as documents: the JSON and CSV that the API and the admin export.

One shape for both, so a conversation exported from the review page and one fetched by a
program compare equal. CSV has one row per turn (the conversation's columns repeated),
which is what spreadsheets and pandas want.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from conversations.models import Conversation, Turn

TURN_COLUMNS = (
    "index",
    "role",
    "text",
    "heard_text",
    "interrupted",
    "status",
    "error",
    "prosody",
    "speech_time",
    "vad_end_at",
    "stt_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "voice_to_voice_ms",
    "knowledge_refs",
    "has_audio",
    "label",
    "review_note",
    "reviewed_by",
    "reviewed_at",
    "created_at",
)
CONVERSATION_COLUMNS = (
    "conversation",
    "agent",
    "channel",
    "external_id",
    "status",
    "prompt_version",
    "started_at",
    "ended_at",
)
# A spreadsheet needs distinct column names: where a conversation's field and a turn's share
# a name (status), the CSV says whose it is.
CSV_HEADER = (
    *(f"conversation_{c}" if c in TURN_COLUMNS else c for c in CONVERSATION_COLUMNS),
    *(f"turn_{c}" if c in CONVERSATION_COLUMNS else c for c in TURN_COLUMNS),
)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def turn_as_dict(turn: Turn) -> dict[str, Any]:
    return {
        "index": turn.index,
        "role": turn.role,
        "text": turn.text,
        "heard_text": turn.heard_text,
        "interrupted": turn.interrupted,
        "status": turn.status,
        "error": turn.error,
        "prosody": turn.prosody,
        "speech_time": turn.speech_time,
        "vad_end_at": _iso(turn.vad_end_at),
        "stt_ms": turn.stt_ms,
        "llm_first_token_ms": turn.llm_first_token_ms,
        "tts_first_audio_ms": turn.tts_first_audio_ms,
        "voice_to_voice_ms": turn.voice_to_voice_ms,
        "knowledge_refs": turn.knowledge_refs,
        "has_audio": bool(turn.audio),
        "label": turn.label,
        "review_note": turn.review_note,
        "reviewed_by": turn.reviewed_by.get_username() if turn.reviewed_by else None,
        "reviewed_at": _iso(turn.reviewed_at),
        "created_at": _iso(turn.created_at),
    }


def conversation_as_dict(conversation: Conversation) -> dict[str, Any]:
    """The conversation and all its turns, in order, as plain JSON-ready data."""
    turns = conversation.turns.select_related("reviewed_by").order_by("index")
    return {
        "conversation": str(conversation.pk),
        "agent": conversation.agent.slug,
        "channel": conversation.channel,
        "external_id": conversation.external_id,
        "status": conversation.status,
        "prompt_version": conversation.prompt_version.number,
        "started_at": _iso(conversation.started_at),
        "ended_at": _iso(conversation.ended_at),
        "turns": [turn_as_dict(turn) for turn in turns],
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def csv_rows(conversations: Iterable[Conversation]) -> Iterator[list[str]]:
    """The header, then one row per turn of each conversation (in order)."""
    yield list(CSV_HEADER)
    for conversation in conversations:
        data = conversation_as_dict(conversation)
        head = [_cell(data[name]) for name in CONVERSATION_COLUMNS]
        for turn in data["turns"]:
            yield head + [_cell(turn[name]) for name in TURN_COLUMNS]


def csv_text(conversations: Iterable[Conversation]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(csv_rows(conversations))
    return buffer.getvalue()
