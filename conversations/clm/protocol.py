"""Hume EVI custom-language-model (CLM) wire format: parsing payloads, building frames.

Hume sends the whole conversation on every payload; we answer the last user message with
``assistant_input`` frames and exactly one ``assistant_end``. Parsing is lenient about what
Hume may add (unknown keys are ignored) and strict about what we need, so a malformed
payload becomes a documented error frame instead of an exception.

Error frames (sent on the socket; an SSE request gets the same code in a JSON error body):

=====================  ==============================================================
code                   meaning
=====================  ==============================================================
``invalid_json``       the frame is not JSON (or not UTF-8)
``invalid_payload``    JSON, but not a CLM payload (missing ``messages``, wrong types,
                       no user message to answer)
``payload_too_large``  bigger than ``CLM_MAX_FRAME_BYTES``
``unknown_agent``      no agent has that slug (socket closed with 4404)
``inactive_agent``     the agent is switched off (socket closed with 4404)
``unauthorized``       the agent needs a token and it is missing or wrong (closed with 4401)
``internal``           the server failed; the turn is stored as failed
``unavailable``        the database cannot be reached; nothing is stored (try again; at
                       connect the socket is closed with 1013)
=====================  ==============================================================
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.llm import ChatMessage
from agents.text_checks import unstorable_reason

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNKNOWN_AGENT = 4404

ErrorCode = Literal[
    "invalid_json",
    "invalid_payload",
    "payload_too_large",
    "unknown_agent",
    "inactive_agent",
    "unauthorized",
    "internal",
    "unavailable",
]


class ClmError(Exception):
    """A payload or request that cannot be answered; carries the documented error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


# A trailing block like "{very happy, quite anxious}" that Hume appends to user text.
_EXPRESSIONS = re.compile(r"\s*\{[^{}]*\}\s*$")


def strip_expressions(content: str) -> str:
    """Remove the trailing ``{…}`` expression block Hume appends to user content."""
    return _EXPRESSIONS.sub("", content).strip()


@dataclass(frozen=True, slots=True)
class HistoryItem:
    role: Literal["user", "assistant"]
    content: str
    prosody: dict[str, float] = field(default_factory=dict)
    time: dict[str, int] | None = None

    def as_chat(self) -> ChatMessage:
        return ChatMessage(role=self.role, content=self.content)


@dataclass(frozen=True, slots=True)
class ClmRequest:
    """A validated payload: the history (last item is the user message to answer)."""

    history: tuple[HistoryItem, ...]
    session_id: str | None

    @property
    def last_user(self) -> HistoryItem:
        return self.history[-1]


class _Loose(BaseModel):
    # Scores are stored as JSON, which has no NaN or infinity.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Time(_Loose):
    begin: int
    end: int


class _Prosody(_Loose):
    scores: dict[str, float] = Field(default_factory=dict)


class _Models(_Loose):
    prosody: _Prosody | None = None


class _Message(_Loose):
    role: str
    content: str | None = None


class _Element(_Loose):
    type: str | None = None
    message: _Message
    models: _Models | None = None
    time: _Time | None = None


#: The longest session id a conversation can be stored under.
MAX_SESSION_ID = 255


class _WsPayload(_Loose):
    messages: list[_Element]
    custom_session_id: str | None = Field(default=None, max_length=MAX_SESSION_ID)


class _FlatMessage(_Loose):
    role: str
    content: str | None = None
    models: _Models | None = None
    time: _Time | None = None


class _SseBody(_Loose):
    messages: list[_FlatMessage]


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


def _history(
    items: list[tuple[str, str | None, _Models | None, _Time | None]],
) -> tuple[HistoryItem, ...]:
    history: list[HistoryItem] = []
    for role, content, models, time in items:
        if role not in ("user", "assistant") or not content:
            continue  # system/tool/context entries and empty texts carry nothing to answer
        text = strip_expressions(content) if role == "user" else content.strip()
        if not text:
            continue
        history.append(
            HistoryItem(
                role="user" if role == "user" else "assistant",
                content=text,
                prosody=dict(models.prosody.scores) if models and models.prosody else {},
                time={"begin": time.begin, "end": time.end} if time else None,
            )
        )
    # Answer the last user message; anything after it (an assistant echo) is not a question.
    while history and history[-1].role != "user":
        history.pop()
    if not history:
        raise ClmError("invalid_payload", "messages: there is no user message to answer")
    return tuple(history)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(raw: str | bytes) -> Any:
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClmError("invalid_json", f"the frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise ClmError("invalid_json", "the frame is nested too deeply") from None
    reason = unstorable_reason(data)
    if reason is not None:
        # Text is stored with the turn: refuse before answering, not after streaming.
        raise ClmError("invalid_payload", reason)
    return data


def check_size(raw: str | bytes, max_bytes: int) -> None:
    size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise ClmError("payload_too_large", f"the frame has {size} bytes; the limit is {max_bytes}")


def parse_ws_payload(raw: str | bytes, *, max_bytes: int) -> ClmRequest:
    """Validate one WebSocket text frame from Hume into a :class:`ClmRequest`."""
    check_size(raw, max_bytes)
    data = _load_json(raw)
    try:
        payload = _WsPayload.model_validate(data)
    except ValidationError as exc:
        raise ClmError("invalid_payload", _describe(exc)) from None
    session_id = (payload.custom_session_id or "").strip() or None
    history = _history(
        [(e.message.role, e.message.content, e.models, e.time) for e in payload.messages]
    )
    return ClmRequest(history=history, session_id=session_id)


def parse_sse_body(raw: bytes, *, session_id: str | None, max_bytes: int) -> ClmRequest:
    """Validate a chat-completions request body from Hume's SSE interface."""
    check_size(raw, max_bytes)
    data = _load_json(raw)
    try:
        body = _SseBody.model_validate(data)
    except ValidationError as exc:
        raise ClmError("invalid_payload", _describe(exc)) from None
    history = _history([(m.role, m.content, m.models, m.time) for m in body.messages])
    return ClmRequest(history=history, session_id=(session_id or "").strip() or None)


def assistant_input(text: str) -> str:
    return json.dumps({"type": "assistant_input", "text": text})


def assistant_end() -> str:
    return json.dumps({"type": "assistant_end"})


def error_frame(code: ErrorCode, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})
