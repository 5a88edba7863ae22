"""Refuse oversized HTTP request bodies before anything reads them.

Django's ASGI handler reads a whole body (into memory or a temporary file) before any
view runs, so a view's own size check comes too late to save the work. This middleware
answers 413 from the ``Content-Length`` header alone; a body sent without one (chunked)
is counted as it arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Django, Channels and the servers each spell these types differently.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: HTTP requests whose body is over ``max_bytes`` get a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send, length, receive)
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        # No declared length: buffer up to the limit, then hand the body on unchanged.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away; let the app see that
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, size, receive)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send, size: int, receive: Receive | None = None) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "too_large",
                    "message": f"the request body has {size} bytes; the limit is {self.max_bytes}",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        if receive is None:
            await send({"type": "http.response.body", "body": body})
            return
        # The whole answer goes out, but the response stays open while what the client is
        # still sending is read and dropped: closing a socket with unread data makes the
        # kernel send a reset, and a client still writing its body would lose the 413.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await _drain(receive)
        await send({"type": "http.response.body", "body": b""})


#: After a refusal, how long and how much of the rest of a body is read and dropped.
DRAIN_SECONDS = 2.0
DRAIN_BYTES = 16 * 1024 * 1024


async def _drain(receive: Receive) -> None:
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained < DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                drained += len(message.get("body", b""))
    except TimeoutError:
        return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
