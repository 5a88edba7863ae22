"""Build Hume CLM payloads for tests, with the ``hume`` SDK's own models and by hand."""

from __future__ import annotations

import json
from typing import Any

from hume.empathic_voice.types import (
    AssistantMessage,
    ChatMessage,
    EmotionScores,
    Inference,
    MillisecondInterval,
    ProsodyInference,
    UserMessage,
)


def emotion_scores(**top: float) -> EmotionScores:
    """All 48 scores (the SDK requires every one), small except those given by JSON name."""
    values = {field.alias: 0.01 for field in EmotionScores.model_fields.values()}
    values.update(top)
    return EmotionScores.model_validate(values)


def sdk_user(content: str, *, begin: int = 0, end: int = 1000, **top: float) -> dict[str, Any]:
    message = UserMessage(
        from_text=False,
        interim=False,
        message=ChatMessage(role="user", content=content),
        models=Inference(prosody=ProsodyInference(scores=emotion_scores(**top))),
        time=MillisecondInterval(begin=begin, end=end),
    )
    data: dict[str, Any] = json.loads(message.json())
    return data


def sdk_assistant(content: str) -> dict[str, Any]:
    message = AssistantMessage(
        from_text=False,
        is_quick_response=False,
        message=ChatMessage(role="assistant", content=content),
        models=Inference(prosody=None),
    )
    data: dict[str, Any] = json.loads(message.json())
    return data


def sparse_user(content: str, scores: dict[str, float] | None = None) -> dict[str, Any]:
    """The minimal element of the CLM guide's interface, as a hand-written client sends it."""
    element: dict[str, Any] = {
        "type": "user_message",
        "message": {"role": "user", "content": content},
    }
    if scores is not None:
        element["models"] = {"prosody": {"scores": scores}}
    return element


def sparse_assistant(content: str) -> dict[str, Any]:
    return {"type": "assistant_message", "message": {"role": "assistant", "content": content}}


def payload(messages: list[dict[str, Any]], session_id: str | None = None) -> str:
    body: dict[str, Any] = {"messages": messages}
    if session_id is not None:
        body["custom_session_id"] = session_id
    return json.dumps(body)
