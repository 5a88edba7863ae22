"""Oversized request bodies are refused before anything reads them."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from django.conf import settings

from voiceapp import body_limit
from voiceapp.body_limit import BodyLimit


class Recorder:
    """An ASGI app that reads the whole body and answers with its size."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


async def call(
    app: BodyLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, bytes, list[str]]:
    """The status, the body, and the order of events: "pull" per body message read,
    "answer" when the response's content has gone out, "end" when the response ends."""
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[MutableMapping[str, Any]] = []
    events: list[str] = []

    async def receive() -> dict[str, Any]:
        events.append("pull")
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            if message.get("body"):
                events.append("answer")
            if not message.get("more_body", False):
                events.append("end")

    await app({"type": "http", "headers": headers}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), events


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    inner = Recorder()
    status, body, events = await call(
        BodyLimit(inner, max_bytes=10), [(b"content-length", b"11")], [b"x" * 11]
    )
    assert (status, json.loads(body)) == (
        413,
        {
            "error": {
                "code": "too_large",
                "message": "the request body has 11 bytes; the limit is 10",
            }
        },
    )
    # Answered before a byte was read; what the client sends anyway is then read and
    # dropped (a close with unread data would reset the connection under the answer).
    assert events == ["answer", "pull", "end"]
    assert not inner.called


async def test_a_chunked_body_is_counted_and_refused_once_it_passes_the_limit() -> None:
    inner = Recorder()
    status, body, events = await call(BodyLimit(inner, max_bytes=10), [], [b"x" * 6] * 5)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "too_large"
    # Answered at the chunk that crossed the limit; the rest is drained, then it ends.
    assert events == ["pull", "pull", "answer", "pull", "pull", "pull", "end"]
    assert not inner.called


async def test_draining_after_a_refusal_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(body_limit, "DRAIN_BYTES", 12)
    _, _, events = await call(BodyLimit(Recorder(), max_bytes=10), [], [b"x" * 6] * 100)
    assert events == ["pull", "pull", "answer", "pull", "pull", "end"]


@pytest.mark.parametrize(
    ("headers", "chunks"),
    [([(b"content-length", b"10")], [b"x" * 10]), ([], [b"x" * 4, b"y" * 6])],
    ids=["declared", "chunked"],
)
async def test_bodies_within_the_limit_reach_the_app_whole(headers, chunks) -> None:
    status, body, _ = await call(BodyLimit(Recorder(), max_bytes=10), headers, chunks)
    assert (status, body) == (200, b"10")


def test_the_project_limit_admits_the_largest_upload_any_endpoint_takes() -> None:
    largest = max(
        settings.CHATBOT_MAX_AUDIO_BYTES,
        settings.KNOWLEDGE_MAX_DOCUMENT_BYTES,
        settings.CLM_MAX_FRAME_BYTES,
    )
    assert largest < settings.HTTP_MAX_BODY_BYTES <= largest + 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= settings.CLM_MAX_FRAME_BYTES
