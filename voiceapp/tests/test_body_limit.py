"""Oversized request bodies are refused before anything reads them."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from django.conf import settings

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


async def call(app: BodyLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[MutableMapping[str, Any]] = []
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "headers": headers}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), pulled


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    inner = Recorder()
    status, body, pulled = await call(
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
    assert pulled == 0
    assert not inner.called


async def test_a_chunked_body_is_counted_and_refused_once_it_passes_the_limit() -> None:
    inner = Recorder()
    status, body, pulled = await call(BodyLimit(inner, max_bytes=10), [], [b"x" * 6] * 5)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "too_large"
    assert pulled == 2  # stopped reading at the chunk that crossed the limit
    assert not inner.called


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
