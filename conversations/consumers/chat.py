"""Text chat for the web page: ``/agents/<slug>/chat`` and ``/chat`` (default agent).

JSON text frames. Client: ``{"type": "message", "text": …}``. Server: ``session`` on
connect (the conversation id, and its history when resumed: ``{role, text, channel}``),
``delta`` per clause as the reply streams, ``done`` with the whole reply, ``error`` (the
socket stays open). Reconnect with ``?conversation=<id>`` to resume; a call on the same
page (the voice socket's ``open`` with that id) continues the same conversation, and a
typed turn after it sees what was said. Close codes as on the voice socket:
4401 sign-in or signed link needed, 4404 unknown or inactive agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from agents.llm import ChatMessage, LLMProvider, build_provider
from agents.models import Agent
from agents.selectors import AgentNotFound, agent_get_active
from agents.text_checks import unstorable_reason
from conversations.access import may_talk_to, query_param
from conversations.consumers.common import CLOSE_TRY_AGAIN_LATER, DATABASE_DOWN, ReleasesOnEnd
from conversations.models import Channel
from conversations.replies import Answer
from conversations.stores import (
    LiveConversation,
    UserTurn,
    catch_up,
    close_conversation,
    open_conversation,
    record_exchange,
    resume_conversation,
    transcript_for_page,
)
from conversations.turn import PendingTurn, answer_turn
from voiceapp import drain, metrics
from voiceapp.logs import bind_conversation

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_UNKNOWN_AGENT = 4404


class ChatConsumer(metrics.CountedSocket, ReleasesOnEnd, AsyncWebsocketConsumer):  # type: ignore[misc]
    metrics_socket = "chat"
    # This socket never receives channel-layer messages: without a layer it needs no
    # channel of its own (with Redis, one blocking connection per socket).
    channel_layer_alias = None
    live: LiveConversation
    provider: LLMProvider
    agent: Agent

    async def connect(self) -> None:
        self.reply_task: asyncio.Task[None] | None = None
        self.history: list[ChatMessage] = []
        self.ready = False
        await self.accept()
        try:
            await self._start()
        except DATABASE_DOWN as exc:
            log.warning("chat socket refused: the database is unavailable (%s)", exc)
            await self.error("unavailable", "the service is unavailable; try again")
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def _start(self) -> None:
        slug = self.scope["url_route"]["kwargs"].get("slug")
        try:
            self.agent = await database_sync_to_async(agent_get_active)(slug=slug)
        except AgentNotFound as exc:
            await self.error("inactive_agent" if exc.inactive else "unknown_agent", str(exc))
            await self.close(code=CLOSE_UNKNOWN_AGENT)
            return
        if not may_talk_to(self.agent, self.scope):
            await self.error("login_required", "sign in or use a signed link for this agent")
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return
        user = self.scope.get("user")
        resumed = None
        if wanted := query_param(self.scope, "conversation"):
            resumed = await resume_conversation(self.agent, Channel.WEB_TEXT, wanted, user)
        if resumed is not None:
            self.live, self.history = resumed
        else:
            self.live = await open_conversation(self.agent, Channel.WEB_TEXT, None, user)
        bind_conversation(self.live.conversation_id)
        log.info(
            "chat conversation %s for agent %s",
            "resumed" if resumed is not None else "opened",
            self.agent.slug,
        )
        self.provider = build_provider(self.live.llm)
        if resumed is None:
            greeting = self.agent.greeting or self.provider.greeting()
            if greeting:
                answer = Answer(generated=[greeting], sent=[greeting])
                await record_exchange(self.live, None, answer)
                self.history.append(ChatMessage(role="assistant", content=greeting))
            shown = [
                {"role": m.role, "text": m.content, "channel": Channel.WEB_TEXT}
                for m in self.history
            ]
        else:
            # Typed and spoken turns alike: a call on this page shares the conversation.
            shown = await database_sync_to_async(transcript_for_page)(self.live.conversation_id)
        self.ready = True
        # A draining process closes the socket with 1012 once no reply is in flight.
        restart = functools.partial(self.close, code=drain.CLOSE_SERVICE_RESTART)
        self.live_socket = drain.register(restart)
        await self.send_json(
            {
                "type": "session",
                "conversation": self.live.conversation_id,
                "agent": self.agent.slug,
                "resumed": resumed is not None,
                "history": shown,
            }
        )

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def release(self) -> None:
        """On a disconnect, and however else the consumer ends: the reply in flight is
        stored as interrupted, then the conversation ends (until it is resumed)."""
        await super().release()
        await self._cancel_reply()
        if getattr(self, "ready", False):
            self.ready = False
            await close_conversation(self.live, self.end_reason())

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def error(self, code: str, message: str) -> None:
        metrics.error(f"chat.{code}")
        await self.send_json({"type": "error", "code": code, "message": message})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.ready:
            return
        try:
            message = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):
            await self.error("bad_frame", "frames are JSON objects")
            return
        if not isinstance(message, dict) or message.get("type") != "message":
            await self.error("bad_frame", 'send {"type": "message", "text": "…"}')
            return
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            await self.error("empty_message", "the message has no text")
            return
        reason = unstorable_reason(text)
        if reason is not None:
            # Refused before answering: the reply could not be stored afterwards.
            await self.error("bad_frame", f"the {reason}")
            return
        if len(text) > MAX_MESSAGE_CHARS:
            await self.error(
                "message_too_long", f"messages are limited to {MAX_MESSAGE_CHARS} characters"
            )
            return
        if drain.draining():
            # The process is stopping: no new turn. The socket closes with 1012 once the
            # reply in flight (if any) has ended; the page marks the message unanswered
            # ("connection lost") and reconnects to another process.
            log.info("chat message not answered: the server is restarting")
            return
        # A new message supersedes a reply still streaming.
        await self._cancel_reply()
        self.reply_task = asyncio.create_task(self._reply_in_turn(text.strip()))

    async def _cancel_reply(self) -> None:
        task, self.reply_task = self.reply_task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reply_in_turn(self, text: str) -> None:
        assert self.live_socket is not None  # registered before any message is taken
        async with self.live_socket.turn():  # a draining process closes the socket after it
            try:
                await self._reply(text)
            except asyncio.CancelledError:
                raise
            except DATABASE_DOWN as exc:
                log.warning("chat reply not stored: the database is unavailable (%s)", exc)
                await self.error("unavailable", "the service is unavailable; try again")
            except Exception:
                # The socket's boundary: log it with its traceback, tell the client in the
                # documented form, and keep serving the next message.
                log.exception("chat reply failed")
                await self.error("internal", "the reply failed; try again")

    async def _reply(self, text: str) -> None:
        if (stored := await catch_up(self.live)) is not None:
            self.history = stored  # a call on the same page spoke meanwhile
        turn = PendingTurn(self.live, UserTurn(text=text))

        async def emit(clause: str) -> None:
            await self.send_json({"type": "delta", "text": clause})

        try:
            messages = [*self.history, ChatMessage(role="user", content=text)]
            await answer_turn(turn, self.provider, messages, emit)
        finally:
            answer = turn.answer
            self.history.append(ChatMessage(role="user", content=text))
            if answer.heard_text or answer.text:
                heard = answer.heard_text if answer.cancelled else answer.text
                self.history.append(ChatMessage(role="assistant", content=heard))
        await self.send_json({"type": "done", "text": answer.text, "error": answer.error or None})
