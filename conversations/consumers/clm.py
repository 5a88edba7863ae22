"""Hume EVI custom-language-model socket: ``/llm`` (default agent) and ``/llm/<slug>``.

The consumer parses, authorises and hands each payload to a reply task it owns; the
reply logic lives in ``conversations.replies`` and storage in ``conversations.stores``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents.llm import LLMProvider, build_provider
from agents.models import Agent
from agents.selectors import AgentNotFound, agent_get_active
from agents.speech_text import speakable
from conversations.access import clm_refusal, scope_token
from conversations.clm.protocol import (
    CLOSE_UNAUTHORIZED,
    CLOSE_UNKNOWN_AGENT,
    ClmError,
    ClmRequest,
    ErrorCode,
    assistant_end,
    assistant_input,
    error_frame,
    parse_ws_payload,
)
from conversations.consumers.common import CLOSE_TRY_AGAIN_LATER, DATABASE_DOWN, ReleasesOnEnd
from conversations.models import Channel
from conversations.stores import (
    LiveConversation,
    UserTurn,
    llm_config,
    open_conversation,
)
from conversations.turn import PendingTurn, answer_turn
from voiceapp import drain, metrics
from voiceapp.logs import bind_conversation

log = logging.getLogger(__name__)


class ClmConsumer(metrics.CountedSocket, ReleasesOnEnd, AsyncWebsocketConsumer):  # type: ignore[misc]
    metrics_socket = "clm"
    # This socket never receives channel-layer messages: without a layer it needs no
    # channel of its own (with Redis, one blocking connection per socket).
    channel_layer_alias = None
    agent: Agent
    provider: LLMProvider

    async def connect(self) -> None:
        self.reply_task: asyncio.Task[None] | None = None
        self.live: dict[str | None, LiveConversation] = {}
        slug = self.scope["url_route"]["kwargs"].get("slug")
        await self.accept()
        try:
            self.agent = await database_sync_to_async(agent_get_active)(slug=slug)
        except AgentNotFound as exc:
            log.warning("clm socket refused: %s", exc)
            await self.send_error("inactive_agent" if exc.inactive else "unknown_agent", str(exc))
            await self.close(code=CLOSE_UNKNOWN_AGENT)
            return
        except DATABASE_DOWN as exc:
            log.warning("clm socket refused: the database is unavailable (%s)", exc)
            await self.send_error("unavailable", "the service is unavailable; try again")
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        refusal = clm_refusal(self.agent, scope_token(self.scope))
        if refusal is not None:
            log.warning("clm socket refused for agent %s: %s", self.agent.slug, refusal)
            await self.send_error("unauthorized", refusal)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        # One provider serves the socket; it holds the agent's model settings and key.
        self.provider = build_provider(await llm_config(self.agent))
        # A draining process closes the socket with 1012 once no reply is in flight.
        restart = functools.partial(self.close, code=drain.CLOSE_SERVICE_RESTART)
        self.live_socket = drain.register(restart)

    async def disconnect(self, code: int) -> None:
        drain.unregister(self.live_socket)
        await self._cancel_reply()

    async def send_error(self, code: ErrorCode, message: str) -> None:
        metrics.error(f"clm.{code}")
        await self.send(text_data=error_frame(code, message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "provider"):
            return  # refused at connect; the close is on its way
        raw = text_data if text_data is not None else bytes_data or b""
        try:
            request = parse_ws_payload(raw, max_bytes=settings.CLM_MAX_FRAME_BYTES)
        except ClmError as exc:
            log.warning("clm payload rejected (%s): %s", exc.code, exc.message)
            await self.send_error(exc.code, exc.message)
            return
        if drain.draining():
            # The process is stopping: no new turn. The socket closes with 1012 once the
            # reply in flight (if any) has ended; the client sends this again elsewhere.
            log.info("clm payload not answered: the server is restarting")
            return
        # A new payload supersedes a reply still streaming: never interleave two replies.
        await self._cancel_reply()
        self.reply_task = asyncio.create_task(self._reply_or_report(request))

    async def _cancel_reply(self) -> None:
        task, self.reply_task = self.reply_task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reply_or_report(self, request: ClmRequest) -> None:
        assert self.live_socket is not None  # registered at connect, before any payload
        async with self.live_socket.turn():  # a draining process closes the socket after it
            try:
                await self._reply(request)
            except asyncio.CancelledError:
                raise
            except DATABASE_DOWN as exc:
                log.warning("clm reply not stored: the database is unavailable (%s)", exc)
                # The next payload reopens the conversation from what was stored: this
                # process's copy of it may hold state of the turn that was not.
                self.live.pop(request.session_id, None)
                await self.send_error("unavailable", "the service is unavailable; try again")
                await self.send(text_data=assistant_end())
            except Exception:
                # The socket's boundary: log the failure with its traceback, tell the client
                # in the documented form, and keep serving the next payload.
                log.exception("clm reply failed (agent %s)", self.agent.slug)
                await self.send_error("internal", "the reply failed; try again")
                await self.send(text_data=assistant_end())

    async def _reply(self, request: ClmRequest) -> None:
        live = self.live.get(request.session_id)
        opened = live is None
        if live is None:
            live = await open_conversation(
                self.agent, Channel.HUME_CLM, request.session_id, self.scope.get("user")
            )
            self.live[request.session_id] = live
        bind_conversation(live.conversation_id)  # this reply task's log lines
        if opened:
            log.info("clm conversation opened or resumed for agent %s", self.agent.slug)
        last = request.last_user
        turn = PendingTurn(
            live, UserTurn(text=last.content, prosody=last.prosody, speech_time=last.time)
        )

        async def emit(text: str) -> None:
            await self.send(text_data=assistant_input(text))

        messages = [m.as_chat() for m in request.history]
        await answer_turn(turn, self.provider, messages, emit, transform=speakable)
        await self.send(text_data=assistant_end())
