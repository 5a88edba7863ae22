"""Hume EVI custom-language-model socket: ``/llm`` (default agent) and ``/llm/<slug>``.

The consumer parses, authorises and hands each payload to a reply task it owns; the
reply logic lives in ``conversations.replies`` and storage in ``conversations.stores``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents.llm import LLMProvider, build_provider
from agents.models import Agent
from agents.selectors import AgentNotFound, agent_get_active
from agents.speech_text import speakable
from conversations.access import scope_token, token_matches
from conversations.clm.protocol import (
    CLOSE_UNAUTHORIZED,
    CLOSE_UNKNOWN_AGENT,
    ClmError,
    ClmRequest,
    assistant_end,
    assistant_input,
    error_frame,
    parse_ws_payload,
)
from conversations.models import Channel
from conversations.replies import Answer, stream_answer
from conversations.stores import (
    LiveConversation,
    TurnKnowledge,
    UserTurn,
    llm_config,
    open_conversation,
    prepare_turn,
    record_exchange,
)

log = logging.getLogger(__name__)


class ClmConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
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
            await self.send(
                text_data=error_frame(
                    "inactive_agent" if exc.inactive else "unknown_agent", str(exc)
                )
            )
            await self.close(code=CLOSE_UNKNOWN_AGENT)
            return
        if not token_matches(self.agent.clm_token, scope_token(self.scope)):
            log.warning("clm socket refused for agent %s: missing or wrong token", self.agent.slug)
            await self.send(text_data=error_frame("unauthorized", "missing or wrong token"))
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        # One provider serves the socket; it holds the agent's model settings and key.
        self.provider = build_provider(await llm_config(self.agent))

    async def disconnect(self, code: int) -> None:
        await self._cancel_reply()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "provider"):
            return  # refused at connect; the close is on its way
        raw = text_data if text_data is not None else bytes_data or b""
        try:
            request = parse_ws_payload(raw, max_bytes=settings.CLM_MAX_FRAME_BYTES)
        except ClmError as exc:
            log.warning("clm payload rejected (%s): %s", exc.code, exc.message)
            await self.send(text_data=error_frame(exc.code, exc.message))
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
        try:
            await self._reply(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The socket's boundary: log the failure with its traceback, tell the client
            # in the documented form, and keep serving the next payload.
            log.exception("clm reply failed (agent %s)", self.agent.slug)
            await self.send(text_data=error_frame("internal", "the reply failed; try again"))
            await self.send(text_data=assistant_end())

    async def _reply(self, request: ClmRequest) -> None:
        live = self.live.get(request.session_id)
        if live is None:
            live = await open_conversation(
                self.agent, Channel.HUME_CLM, request.session_id, self.scope.get("user")
            )
            self.live[request.session_id] = live
        last = request.last_user
        user = UserTurn(text=last.content, prosody=last.prosody, speech_time=last.time)
        answer = Answer()
        knowledge = TurnKnowledge()

        async def emit(text: str) -> None:
            await self.send(text_data=assistant_input(text))

        try:
            knowledge = await prepare_turn(live, user.text)
            await stream_answer(
                provider=self.provider,
                system_prompt=live.system_prompt,
                history=[m.as_chat() for m in request.history],
                context=live.context,
                emit=emit,
                answer=answer,
                passages=knowledge.passages,
                transform=speakable,
            )
        finally:
            # Stored also when cancelled (as an interrupted turn); shielded so that the
            # cancellation that ends the reply cannot interrupt the write.
            await asyncio.shield(record_exchange(live, user, answer, knowledge.refs))
        await self.send(text_data=assistant_end())
