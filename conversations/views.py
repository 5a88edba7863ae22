"""HTTP views of the conversations app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.llm import LLMProvider, build_provider
from agents.selectors import AgentNotFound, agent_get_active
from agents.speech_text import speakable
from conversations.access import clm_refusal, request_token
from conversations.clm.protocol import ClmError, ClmRequest, parse_sse_body
from conversations.models import Channel
from conversations.stores import (
    DATABASE_DOWN,
    LiveConversation,
    UserTurn,
    open_conversation,
)
from conversations.turn import PendingTurn, answer_turn
from voiceapp import metrics
from voiceapp.logs import bind_conversation

log = logging.getLogger(__name__)

_STATUS = {
    "invalid_json": 400,
    "invalid_payload": 400,
    "payload_too_large": 413,
    "unknown_agent": 404,
    "inactive_agent": 404,
    "unauthorized": 401,
    "internal": 500,
    "unavailable": 503,
}
# The database cannot be reached (down, restarting, connection lost).


def clm_error(code: str, message: str) -> JsonResponse:
    """An error body in the shape OpenAI clients understand, with our documented code."""
    metrics.error(f"clm.{code}")
    return JsonResponse(
        {"error": {"code": code, "message": message, "type": "invalid_request_error"}},
        status=_STATUS[code],
    )


def _unavailable(exc: Exception) -> JsonResponse:
    """503 (JSON, the documented code) rather than a hung request or an error page."""
    log.warning("clm sse refused: the database is unavailable (%s)", exc)
    response = clm_error("unavailable", "the service is unavailable; try again")
    response["Retry-After"] = "5"
    return response


@csrf_exempt
@require_POST
async def clm_chat_completions(
    request: HttpRequest, slug: str | None = None
) -> HttpResponse | StreamingHttpResponse:
    """Hume's SSE custom-LLM interface: an OpenAI chat-completions request, streamed back."""
    started = time.perf_counter()
    try:
        agent = await database_sync_to_async(agent_get_active)(slug=slug)
    except AgentNotFound as exc:
        return clm_error("inactive_agent" if exc.inactive else "unknown_agent", str(exc))
    except DATABASE_DOWN as exc:
        return _unavailable(exc)
    refusal = clm_refusal(agent, request_token(request))
    if refusal is not None:
        log.warning("clm sse refused for agent %s: %s", agent.slug, refusal)
        return clm_error("unauthorized", refusal)
    # Without a session id Hume gets one from us (in system_fingerprint) and sends it back.
    session_id = request.GET.get("custom_session_id", "").strip() or uuid.uuid4().hex
    try:
        raw = request.body
    except RequestDataTooBig:
        # Over DATA_UPLOAD_MAX_MEMORY_SIZE (the frame limit plus slack) Django refuses to
        # read it and would answer a bare 400 page: this is the documented 413.
        limit = settings.CLM_MAX_FRAME_BYTES
        return clm_error("payload_too_large", f"the body is over the limit of {limit} bytes")
    try:
        clm_request = parse_sse_body(
            raw, session_id=session_id, max_bytes=settings.CLM_MAX_FRAME_BYTES
        )
    except ClmError as exc:
        log.warning("clm sse request rejected (%s): %s", exc.code, exc.message)
        return clm_error(exc.code, exc.message)
    try:
        live = await open_conversation(agent, Channel.HUME_CLM, session_id, request.user)
    except DATABASE_DOWN as exc:
        return _unavailable(exc)
    bind_conversation(live.conversation_id)
    model = agent.llm_model or agent.llm_provider
    response = StreamingHttpResponse(
        _sse_events(live, clm_request, build_provider(live.llm), model, started),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let reverse proxies pass events through at once
    return response


async def _sse_events(
    live: LiveConversation,
    clm_request: ClmRequest,
    provider: LLMProvider,
    model: str,
    started: float,
) -> AsyncIterator[bytes]:
    # The response is streamed from the server's task, not the view's: bind here too.
    bind_conversation(live.conversation_id)
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def event(delta: dict[str, str], finish: str | None = None) -> bytes:
        chunk = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": live.session_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    last = clm_request.last_user
    turn = PendingTurn(
        live, UserTurn(text=last.content, prosody=last.prosody, speech_time=last.time)
    )
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            messages = [m.as_chat() for m in clm_request.history]
            await answer_turn(turn, provider, messages, queue.put, transform=speakable)
        finally:
            queue.put_nowait(None)  # the stream ends whatever failed above

    producer = asyncio.create_task(produce())
    try:
        yield event({"role": "assistant", "content": ""})
        separator = ""
        while (text := await queue.get()) is not None:
            if not separator:
                elapsed = time.perf_counter() - started
                metrics.http_reply(endpoint="clm_sse", phase="first_text", seconds=elapsed)
            # Deltas are concatenated by the client: keep the space between clauses.
            yield event({"content": separator + text})
            separator = " "
        failure = await _outcome(producer)
        if failure is not None:
            # Headers are long gone: the error goes in the stream, which then ends.
            yield f"data: {json.dumps({'error': failure})}\n\n".encode()
        else:
            yield event({}, finish="stop")
        yield b"data: [DONE]\n\n"
        elapsed = time.perf_counter() - started
        metrics.http_reply(endpoint="clm_sse", phase="complete", seconds=elapsed)
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


async def _outcome(producer: asyncio.Task[None]) -> dict[str, str] | None:
    """The documented error of a reply that failed after streaming began, or None."""
    try:
        await producer
    except DATABASE_DOWN as exc:
        log.warning("clm sse reply not stored: the database is unavailable (%s)", exc)
        metrics.error("clm.unavailable")
        return {"code": "unavailable", "message": "the service is unavailable; try again"}
    except Exception:
        log.exception("clm sse reply failed")
        metrics.error("clm.internal")
        return {"code": "internal", "message": "the reply failed; try again"}
    return None
