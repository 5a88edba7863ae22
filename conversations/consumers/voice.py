"""The Echo-compatible realtime audio socket: ``/conversation``, ``/conversation/websocket``
(default agent) and ``/agents/<slug>/conversation``.

Binary msgpack frames both ways, wire-exact to Echo; see the README for the protocol and
its extensions. The consumer parses and authorises; the pipeline is
``conversations.realtime.session.VoiceSession``.

Error frames are ``{"type": "error", "code": …, "message": …}``; the session continues.
Close codes: 4401 the agent needs a signed-in user or a signed link, 4404 unknown or
inactive agent, 4408 the session reached its maximum length, 4429 too many sessions from
this client address.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from typing import Any

import msgpack
import numpy as np
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents.llm import ChatMessage, build_provider
from agents.models import Agent
from agents.selectors import AgentNotFound, agent_get_active
from agents.speech.base import SpeechError
from agents.speech.executor import InferencePool, default_pool
from agents.speech.registry import build_stt, build_tts
from conversations import warmup
from conversations.access import may_talk_to
from conversations.consumers.common import DATABASE_DOWN, ReleasesOnEnd
from conversations.echo_frames import (
    AudioFrame,
    CloseFrame,
    FrameError,
    OpenFrame,
    PlayedFrame,
    StateFrame,
    parse_client_frame,
)
from conversations.models import Channel
from conversations.realtime.session import VoiceSession, VoiceSettings, speech_error_frame
from conversations.realtime.turns import TurnSettings
from conversations.stores import (
    LiveConversation,
    close_conversation,
    open_conversation,
    resume_conversation,
)
from conversations.voice_store import VoiceTurnStore, retrieve_for
from voiceapp import drain, metrics
from voiceapp.logs import bind_conversation

log = logging.getLogger(__name__)

CLOSE_LOGIN_REQUIRED = 4401
CLOSE_UNKNOWN_AGENT = 4404
CLOSE_TOO_LONG = 4408
CLOSE_TOO_MANY = 4429

# Sessions per client address in this process. A deployment with several processes
# behind a proxy should also limit connections per address at the proxy.
_sessions_per_client: Counter[str] = Counter()
_vad_pool: InferencePool | None = None


def vad_pool() -> InferencePool:
    """One thread for every session's VAD: each call is ~0.1 ms and must not wait behind
    speech-to-text jobs in the speech pool."""
    global _vad_pool
    if _vad_pool is None:
        _vad_pool = InferencePool(1, 256, "vad")
        # A process that opens voice sessions reports both pools' queues from now on.
        metrics.watch_pool(_vad_pool)
        metrics.watch_pool(default_pool())
    return _vad_pool


class VoiceConsumer(metrics.CountedSocket, ReleasesOnEnd, AsyncWebsocketConsumer):  # type: ignore[misc]
    metrics_socket = "voice"
    # This socket never receives channel-layer messages: without a layer it needs no
    # channel of its own (with Redis, one blocking connection per socket).
    channel_layer_alias = None
    session: VoiceSession | None = None
    live: LiveConversation | None = None
    live_id = ""

    async def connect(self) -> None:
        self.session = None
        self.timer: asyncio.Task[None] | None = None
        self.client = (self.scope.get("client") or ("unknown", 0))[0]
        self.counted = False
        await self.accept()
        if _sessions_per_client[self.client] >= settings.VOICE_MAX_SESSIONS_PER_CLIENT:
            await self.refuse(
                "too_many_sessions", "too many sessions from this address", CLOSE_TOO_MANY
            )
            return
        _sessions_per_client[self.client] += 1
        self.counted = True
        self.timer = asyncio.create_task(self._limit_length())
        # A draining process closes the socket with 1012 once no reply is being spoken.
        restart = functools.partial(self.close, code=drain.CLOSE_SERVICE_RESTART)
        self.live_socket = drain.register(restart)

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def release(self) -> None:
        """Give back the address's slot, the timer and the session: on a disconnect, and
        however else the consumer ends (a crash included)."""
        await super().release()
        if getattr(self, "counted", False):
            _sessions_per_client[self.client] -= 1
            if _sessions_per_client[self.client] <= 0:
                del _sessions_per_client[self.client]
            self.counted = False
        timer: asyncio.Task[None] | None = getattr(self, "timer", None)
        if timer is not None:
            timer.cancel()
        if self.session is not None:
            await self.session.close()  # a reply in flight is stored as interrupted
            self.session = None
        if self.live is not None:
            live, self.live = self.live, None
            await close_conversation(live, self.end_reason())

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        log.warning("voice socket refused (%s): %s", code, message)
        await self.error(code, message)
        await self.close(code=close_code)

    async def error(self, code: str, message: str) -> None:
        metrics.error(f"voice.{code}")
        await self.send_message({"type": "error", "code": code, "message": message})

    async def send_message(self, message: dict[str, Any]) -> None:
        await self.send(bytes_data=msgpack.packb(message, use_bin_type=True))

    async def send_from_session(self, message: dict[str, Any]) -> None:
        # The pipeline's only error frames are speech failures (speech_error_frame).
        if message["type"] == "error":
            metrics.error(f"speech.{message['code']}")
        # The pipeline's frames mark its turns for a draining process: a reply starts with
        # the user's transcript (the greeting with its first clause) and ends with its
        # metrics, sent once the turn is stored, or with an interrupt (barge-in).
        if message["type"] in ("transcript", "reply"):
            self._mark_turn(speaking=True)
        await self.send_message(message)
        if message["type"] in ("metrics", "interrupt"):
            self._mark_turn(speaking=False)

    def _mark_turn(self, *, speaking: bool) -> None:
        live_socket = self.live_socket
        if live_socket is None or live_socket.in_turn == speaking:
            return
        if speaking:
            live_socket.start_turn()
        else:
            live_socket.end_turn()

    async def _limit_length(self) -> None:
        await asyncio.sleep(settings.VOICE_MAX_SESSION_SECONDS)
        await self.refuse(
            "session_too_long", "the session reached its maximum length", CLOSE_TOO_LONG
        )

    # --- incoming frames -----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is None:
            await self.error("bad_frame", "frames are binary msgpack maps")
            return
        limit = settings.VOICE_MAX_FRAME_BYTES
        if len(bytes_data) > limit:
            message = f"the frame has {len(bytes_data)} bytes; the limit is {limit}"
            await self.error("frame_too_large", message)
            return
        try:
            message = msgpack.unpackb(
                bytes_data, raw=False, strict_map_key=True, max_array_len=64, max_map_len=64
            )
        except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
            await self.error("bad_frame", f"not a msgpack message: {type(exc).__name__}")
            return
        try:
            frame = parse_client_frame(message)
        except FrameError as exc:
            await self.error(exc.code, exc.message)
            return
        try:
            match frame:
                case OpenFrame():
                    await self.on_open(frame)
                case AudioFrame():
                    await self.on_audio(frame)
                case StateFrame():
                    self.on_state(frame)
                case PlayedFrame():
                    self.on_played(frame)
                case CloseFrame():
                    await self.close()
        except DATABASE_DOWN as exc:
            # Opening (or resuming) needs the database; the client may send 'open' again.
            log.warning("voice %s failed: the database is unavailable (%s)", frame.type, exc)
            await self.error("unavailable", "the service is unavailable; try again")

    async def on_open(self, frame: OpenFrame) -> None:
        if drain.draining():
            return  # the process is stopping: the socket is being closed with 1012
        if self.session is not None:
            await self.error("already_open", "the conversation is already open")
            return
        slug = self.scope["url_route"]["kwargs"].get("slug") or frame.agent
        try:
            agent = await database_sync_to_async(agent_get_active)(slug=slug)
        except AgentNotFound as exc:
            await self.refuse(
                "inactive_agent" if exc.inactive else "unknown_agent", str(exc), CLOSE_UNKNOWN_AGENT
            )
            return
        if not may_talk_to(agent, self.scope):
            await self.refuse(
                "login_required",
                "sign in or use a signed link for this agent",
                CLOSE_LOGIN_REQUIRED,
            )
            return
        resumed = None
        if frame.conversation:
            resumed = await resume_conversation(
                agent, Channel.WEB_VOICE, frame.conversation, self.scope.get("user")
            )
        try:
            self.session = await self._build_session(
                agent, frame.output_rate, resumed, reports_played=frame.reports_played
            )
        except SpeechError as exc:
            log.error("voice session could not start: %s", exc)
            await self.send_from_session(speech_error_frame(exc))
            return
        await self.session.open()
        await self.send_message(
            {
                "type": "session",
                "conversation": self.live_id,
                "resumed": resumed is not None,
            }
        )

    async def on_audio(self, frame: AudioFrame) -> None:
        if drain.draining():
            # The process is stopping: no new turn (and no barge-in), so the reply being
            # spoken ends whole; then the socket closes with 1012.
            return
        if self.session is None:
            await self.error("not_open", "send 'open' before audio")
            return
        data = frame.audio
        if len(data) % 4 or not data:
            await self.error(
                "bad_audio", "'audio' must be binary Float32 PCM (a multiple of 4 bytes)"
            )
            return
        pcm = np.frombuffer(data, dtype="<f4")
        if not np.isfinite(pcm).all() or np.abs(pcm).max() > 16.0:
            await self.error("bad_audio", "'audio' is not Float32 PCM in [-1, 1]")
            return
        try:
            await self.session.feed_audio(pcm)
        except SpeechError as exc:
            await self.send_from_session(speech_error_frame(exc))

    def on_state(self, frame: StateFrame) -> None:
        if self.session is not None:
            self.session.playback_waiting()

    def on_played(self, frame: PlayedFrame) -> None:
        if self.session is not None:
            self.session.played(frame.token, frame.ms)

    # --- helpers --------------------------------------------------------------------------

    async def _build_session(
        self,
        agent: Agent,
        output_rate: int,
        resumed: tuple[LiveConversation, list[ChatMessage]] | None,
        *,
        reports_played: bool,
    ) -> VoiceSession:
        device = warmup.speech_device()
        stt, tts = await asyncio.to_thread(
            lambda: (
                build_stt(agent.stt_provider, agent.stt_model, device),
                build_tts(agent.tts_provider, agent.tts_voice, device, sample_rate=output_rate),
            )
        )
        # Models load once per process: the first session of each voice waits for it here,
        # before the greeting, rather than in the middle of its first turn.
        await asyncio.gather(
            warmup.ensure(stt, "stt", agent.stt_provider, agent.stt_model),
            warmup.ensure(tts, "tts", agent.tts_provider, agent.tts_voice),
        )
        if resumed is not None:
            live, history = resumed
        else:
            live = await open_conversation(agent, Channel.WEB_VOICE, None, self.scope.get("user"))
            history = []
        self.live, self.live_id = live, live.conversation_id
        # Bound before the session starts its tasks, so that they inherit it.
        bind_conversation(live.conversation_id)
        log.info(
            "voice conversation %s for agent %s",
            "resumed" if resumed is not None else "opened",
            agent.slug,
        )
        return VoiceSession(
            send=self.send_from_session,
            stt=stt,
            tts=tts,
            llm=build_provider(live.llm),
            system_prompt=live.system_prompt,
            context=live.context,
            store=VoiceTurnStore(live),
            retrieve=functools.partial(retrieve_for, live),
            settings=VoiceSettings(
                turn=TurnSettings(
                    threshold=agent.vad_threshold,
                    min_speech_ms=agent.min_speech_ms,
                    end_silence_ms=agent.end_of_turn_silence_ms,
                ),
                barge_in=agent.barge_in,
                speculative_stt=settings.VOICE_SPECULATIVE_STT,
                output_rate=output_rate,
            ),
            vad_pool=vad_pool(),
            # A resumed conversation carries on where it was; only a new one is greeted.
            greeting=agent.greeting if resumed is None else "",
            speak_greeting=resumed is None,
            history=history,
            store_audio=settings.VOICE_STORE_AUDIO,
            reports_played=reports_played,
        )
