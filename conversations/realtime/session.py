"""One voice conversation: audio in → VAD → turn-taking → STT → LLM → clauses → TTS → audio out.

:class:`VoiceSession` is the realtime core. It imports no Django: the socket hands it
decoded client messages, and it hands back outgoing messages (plain dicts, wire-ready)
through ``send`` and finished turns through a :class:`VoiceStore`.

The stages, and the task that owns each:

- the caller's receive loop: ``feed_audio`` → :class:`~conversations.realtime.vad.SileroVAD`
  (on a worker thread) → :class:`~conversations.realtime.turns.TurnDetector` → events;
- a *speculative* STT task per pause: transcription starts at the first silent window,
  and its result is used if the pause becomes the end of the turn (dropped if speech
  resumes);
- the responder task: takes ended utterances in order, transcribes them (or takes the
  speculative result), and answers; utterances that end while one is being transcribed
  are kept and answered together, never dropped;
- per reply, the LLM stream (``conversations.replies.stream_answer``) feeding clauses to a
  TTS task, so the first clause is spoken while the model is still writing.

Barge-in: voiced speech (past the minimum) while the agent is speaking cancels the reply
(LLM and TTS) at once, sends ``interrupt`` with a new token, and records the turn as
interrupted with the text the listener actually heard, estimated from the client's
``played`` reports (or from elapsed time when a client has not declared that it sends
them: ``reports_played`` in ``open``). The model's history
keeps only what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agents.llm import ChatMessage, ConversationContext, LLMProvider, Passage
from agents.speech.base import FloatAudio, SpeechError, STTProvider, Transcript, TTSProvider
from agents.speech.executor import InferencePool
from agents.speech_text import speakable
from conversations.realtime.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnDiscarded,
    TurnEnded,
    TurnEvent,
    TurnSettings,
    TurnState,
)
from conversations.realtime.vad import SileroVAD, VADWindow
from conversations.replies import Answer, stream_answer

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
TOKEN_LENGTH = 8
#: Outgoing audio is sent in frames of at most this much playback time.
AUDIO_FRAME_MS = 200


# What a client is told about a speech failure: the kind, in words anyone may read. The
# details (paths, vendor messages) go to the log only.
_PUBLIC_MESSAGES = {
    "config": "this agent's voice is not available right now",
    "overloaded": "the server is busy; please say that again",
    "bad_audio": "that audio could not be understood",
    "timeout": "the speech service took too long; please say that again",
}


def speech_error_frame(exc: SpeechError) -> dict[str, Any]:
    """The ``error`` frame for a speech failure, without internal detail."""
    kind = exc.kind.value
    message = _PUBLIC_MESSAGES.get(kind, "speech processing failed; please try again")
    return {"type": "error", "code": kind, "message": message}


def new_token() -> str:
    """A sequencing token: 8 random lowercase ASCII letters, as Echo makes them."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(TOKEN_LENGTH))


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    turn: TurnSettings = field(default_factory=TurnSettings)
    barge_in: bool = True
    speculative_stt: bool = True
    output_rate: int = 44_100


@dataclass
class TurnMetrics:
    """Per-turn timings (ms) as stored on the turn and sent in the ``metrics`` frame."""

    vad_end_at: dt.datetime | None = None  # wall time the last voiced audio arrived
    stt_ms: int | None = None
    llm_first_token_ms: int | None = None
    tts_first_audio_ms: int | None = None
    voice_to_voice_ms: int | None = None
    speculative: str = "off"  # "hit": the speculative transcript was used; "miss"; "off"

    def as_frame(self) -> dict[str, Any]:
        return {
            "type": "metrics",
            "stt_ms": self.stt_ms,
            "llm_first_token_ms": self.llm_first_token_ms,
            "tts_first_audio_ms": self.tts_first_audio_ms,
            "voice_to_voice_ms": self.voice_to_voice_ms,
            "speculative": self.speculative,
        }


@dataclass
class Utterance:
    """What the user said in one turn, as the store needs it."""

    text: str
    audio: FloatAudio | None = None  # 16 kHz float32, when audio storage is on


@dataclass
class SpokenReply:
    """What the agent said: the text answer and the audio actually sent."""

    answer: Answer
    audio: bytearray = field(default_factory=bytearray)  # s16le at the output rate
    sample_rate: int = 44_100
    knowledge_refs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Retrieved:
    """Knowledge found for a user turn: passages for the model, references for the record."""

    passages: Sequence[Passage] = ()
    refs: list[dict[str, Any]] = field(default_factory=list)


#: Looks up the agent's knowledge for what the user said (the Django side provides it).
Retrieve = Callable[[str], Awaitable[Retrieved]]


class VoiceStore(Protocol):
    """Where finished turns go (the Django side implements it)."""

    async def record(
        self, *, user: Utterance | None, reply: SpokenReply, metrics: TurnMetrics
    ) -> object:
        """Store one exchange; returns a reference to the stored reply, for :meth:`cut`."""
        ...

    async def cut(self, stored: object, *, heard_text: str) -> None:
        """Mark a stored reply as interrupted, heard only as far as ``heard_text``: a barge-in
        came while its audio was still playing, or a later playback report moved the cut."""
        ...


@dataclass
class _Clause:
    text: str
    audio_ms: float = 0.0


@dataclass
class _Reply:
    """Book-keeping of the reply in flight, for barge-in and the heard-text estimate."""

    token: str
    clauses: list[_Clause] = field(default_factory=list)
    first_audio_at: float | None = None
    sent_ms: float = 0.0
    stored: object = None  # the store's reference, once recorded
    cut: bool = False  # interrupted by the listener, during generation or playback
    stored_cut: bool = False  # the stored turn says so
    heard: str = ""  # the heard text as stored and in the history
    history_at: int = 0  # where its assistant message stands (or would) in the history
    message: ChatMessage | None = None  # that message, when anything was heard


class _Sink:
    """Where a reply's frames go: straight to the client, or held until it is committed.

    A speculative reply is computed while the user is only pausing; its frames wait here
    and are released in order when the pause turns out to be the end of the turn.
    """

    def __init__(
        self, send: Send, clock: Callable[[], float], reply: _Reply, *, held: bool
    ) -> None:
        self._send = send
        self._reply = reply
        self._clock = clock
        self._held = held
        self._buffer: list[dict[str, Any]] = []
        self.committed = asyncio.Event()
        if not held:
            self.committed.set()
        self.first_audio_at: float | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self._held:
            self._buffer.append(message)
        else:
            await self._deliver(message)

    async def commit(self) -> None:
        # Drain until empty before going live, so frames added meanwhile keep their order.
        while self._buffer:
            await self._deliver(self._buffer.pop(0))
        self._held = False
        self.committed.set()

    async def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "audio" and self.first_audio_at is None:
            self.first_audio_at = self._reply.first_audio_at = self._clock()
        await self._send(message)


@dataclass
class _Speculation:
    """A reply started at a pause: its audio, task, sink, metrics and private context."""

    audio: FloatAudio
    sink: _Sink
    metrics: TurnMetrics
    reply: _Reply
    context: ConversationContext
    task: asyncio.Task[None] | None = None
    transcribed_at: float | None = None
    committed_at: float | None = None
    voiced_at: float | None = None


class VoiceSession:
    """The realtime pipeline of one socket. Call :meth:`open`, feed it, then :meth:`close`."""

    def __init__(
        self,
        *,
        send: Send,
        stt: STTProvider,
        tts: TTSProvider,
        llm: LLMProvider,
        system_prompt: str,
        context: ConversationContext,
        store: VoiceStore,
        settings: VoiceSettings,
        vad_pool: InferencePool,
        greeting: str = "",
        speak_greeting: bool = True,
        history: list[ChatMessage] | None = None,
        store_audio: bool = False,
        vad: SileroVAD | None = None,
        clock: Callable[[], float] = time.monotonic,
        retrieve: Retrieve | None = None,
        reports_played: bool = False,
    ) -> None:
        self._send = send
        self._stt = stt
        self._tts = tts
        self._llm = llm
        self._system_prompt = system_prompt
        self._context = context
        self._store = store
        self.settings = settings
        self._vad_pool = vad_pool
        self._vad = vad or SileroVAD()
        self._detector = TurnDetector(settings.turn)
        self._greeting = greeting
        self._speak_greeting = speak_greeting
        self._store_audio = store_audio
        self._clock = clock
        self._retrieve = retrieve
        self._reports_played = reports_played
        self.token = new_token()
        self.history: list[ChatMessage] = list(history or [])
        self._utterances: asyncio.Queue[tuple[TurnEnded, float]] = asyncio.Queue()
        self._responder: asyncio.Task[None] | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._reply: _Reply | None = None
        self._speculative: tuple[FloatAudio, asyncio.Task[Transcript]] | None = None
        self._speculation: _Speculation | None = None
        self._responding = False
        self._received: deque[tuple[int, float]] = deque(maxlen=512)  # (window end ms, t)
        self._played: dict[str, float] = {}
        self._client_idle = True
        self._amending: set[asyncio.Task[None]] = set()
        self.speculative_stats = {"started": 0, "used": 0, "discarded": 0}

    # --- the socket's calls -------------------------------------------------------------

    async def open(self) -> None:
        """Send the token, then speak the greeting (the agent talks first)."""
        await self._send({"type": "token", "token": self.token})
        self._responder = asyncio.create_task(self._respond_loop())
        greeting = (self._greeting or self._llm.greeting()) if self._speak_greeting else ""
        if greeting:
            await self._start_reply(user=None, text=greeting, metrics=TurnMetrics())

    async def feed_audio(self, pcm: FloatAudio) -> None:
        """Take one chunk of 16 kHz float32 mono audio from the client."""
        received_at = self._clock()
        windows = await self._vad_pool.run(self._vad.feed, pcm)
        for window in windows:
            self._received.append((window.end_ms, received_at))
            for event in self._detector.process(
                window.start_ms, window.probability, window.samples
            ):
                await self._on_turn_event(event, window)

    def playback_waiting(self) -> None:
        """The client's playback queue has drained (``state: waiting``)."""
        self._client_idle = True

    def played(self, token: str, ms: float) -> None:
        """The client has played ``ms`` of the audio sent with ``token`` (cumulative).

        A client reports once more right after an ``interrupt``, with exactly what it
        played of the cut reply; that moves the stored heard text to match.
        """
        self._played[token] = max(ms, self._played.get(token, 0.0))
        reply = self._reply
        if reply is not None and reply.cut and reply.token == token:
            self._amend_later(reply)

    async def close(self) -> None:
        """Stop everything; a reply in flight is stored as interrupted."""
        tasks: list[asyncio.Task[Any]] = [
            t for t in (self._reply_task, self._responder) if t is not None
        ]
        if self._speculative is not None:
            tasks.append(self._speculative[1])
        if self._speculation is not None and self._speculation.task is not None:
            tasks.append(self._speculation.task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Amendments of stored turns are short writes: let them finish.
        if self._amending:
            await asyncio.wait(self._amending)

    @property
    def agent_speaking(self) -> bool:
        """True while a reply is being produced or its audio is still playing."""
        if self._reply_task is not None and not self._reply_task.done():
            return True
        reply = self._reply
        if reply is None or self._client_idle:
            return False
        return self._heard_ms(reply) < reply.sent_ms

    # --- turn events ----------------------------------------------------------------------

    async def _on_turn_event(self, event: TurnEvent, window: VADWindow) -> None:
        if isinstance(event, SpeechStarted):
            if self.settings.barge_in and self.agent_speaking:
                await self._barge_in()
        elif isinstance(event, SpeechPaused):
            if not self._spare_capacity():
                self._drop_speculative()  # under load a guess only delays everyone's turns
            elif self._can_speculate_reply():
                self._drop_speculative()
                self._start_speculation(event.audio)
            elif self.settings.speculative_stt:
                self._drop_speculative()
                task = asyncio.create_task(self._stt.transcribe(event.audio))
                # A dropped guess may have failed (say, an overloaded pool): nobody needs that.
                task.add_done_callback(_ignore_outcome)
                self._speculative = (event.audio, task)
                self.speculative_stats["started"] += 1
        elif isinstance(event, SpeechResumed | TurnDiscarded):
            self._drop_speculative()
        elif isinstance(event, TurnEnded):
            voiced_at = self._voice_received_at(event.last_voiced_ms)
            speculation, self._speculation = self._speculation, None
            if speculation is not None and speculation.audio is event.audio:
                await self._commit(speculation, voiced_at)
            else:
                if speculation is not None:
                    await self._discard(speculation)
                await self._utterances.put((event, voiced_at))

    def _drop_speculative(self) -> None:
        if self._speculation is not None:
            speculation, self._speculation = self._speculation, None
            if speculation.task is not None:
                speculation.task.cancel()
            self.speculative_stats["discarded"] += 1
        if self._speculative is not None:
            self._speculative[1].cancel()
            self._speculative = None
            self.speculative_stats["discarded"] += 1

    def _voice_received_at(self, stream_ms: int) -> float:
        """When the audio that ended at ``stream_ms`` arrived (for voice-to-voice)."""
        for end_ms, received_at in reversed(self._received):
            if end_ms <= stream_ms:
                return received_at
        return self._clock()

    # --- speculative replies ----------------------------------------------------------------

    def _spare_capacity(self) -> bool:
        """Whether speculative work would run now rather than queue behind real turns."""
        pool = getattr(self._stt, "pool", None)
        if not isinstance(pool, InferencePool):
            return True  # a remote recogniser: no local queue to protect
        return pool.queue_depth == 0 and pool.in_flight < pool.max_workers

    def _can_speculate_reply(self) -> bool:
        """A whole reply may be computed ahead only when nothing else is going on and the
        model keeps no state we could not throw away."""
        return (
            self.settings.speculative_stt
            and self._llm.speculative_safe
            and not self._responding
            and self._utterances.empty()
            and (self._reply_task is None or self._reply_task.done())
        )

    def _start_speculation(self, audio: FloatAudio) -> None:
        reply = _Reply(token=self.token)
        speculation = _Speculation(
            audio=audio,
            sink=_Sink(self._send, self._clock, reply, held=True),
            metrics=TurnMetrics(speculative="hit"),
            reply=reply,
            # The model writes into a copy: a discarded guess leaves no trace.
            context=ConversationContext(
                engine_state=dict(self._context.engine_state),
                provider_conversation_id=self._context.provider_conversation_id,
            ),
        )
        speculation.task = asyncio.create_task(self._speculate(speculation))
        self._speculation = speculation
        self.speculative_stats["started"] += 1

    async def _speculate(self, speculation: _Speculation) -> None:
        try:
            transcript = await self._stt.transcribe(speculation.audio)
        except SpeechError as exc:
            await speculation.sink.committed.wait()
            log.warning("speech-to-text failed: %s", exc)
            await self._send(speech_error_frame(exc))
            return
        speculation.transcribed_at = self._clock()
        if not transcript.text:
            return
        await speculation.sink.send(
            {"type": "transcript", "role": "user", "text": transcript.text, "final": True}
        )
        utterance = Utterance(
            text=transcript.text, audio=speculation.audio if self._store_audio else None
        )
        await self._speak(
            speculation.reply,
            user=utterance,
            text=None,
            metrics=speculation.metrics,
            sink=speculation.sink,
            context=speculation.context,
            speculation=speculation,
        )

    async def _commit(self, speculation: _Speculation, voiced_at: float) -> None:
        """The pause was the end of the turn: release the reply computed during it."""
        self.speculative_stats["used"] += 1
        speculation.committed_at = self._clock()
        speculation.metrics.vad_end_at = _wall(voiced_at, self._clock)
        speculation.voiced_at = voiced_at
        self._reply = speculation.reply
        self._reply_task = speculation.task
        self._client_idle = False
        await speculation.sink.commit()

    async def _discard(self, speculation: _Speculation) -> None:
        if speculation.task is not None:
            speculation.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speculation.task
        self.speculative_stats["discarded"] += 1

    # --- responding -----------------------------------------------------------------------

    async def _respond_loop(self) -> None:
        pending: list[str] = []
        audio: list[FloatAudio] = []
        while True:
            self._responding = bool(pending)
            ended, voiced_at = await self._utterances.get()
            self._responding = True
            metrics = TurnMetrics(vad_end_at=_wall(voiced_at, self._clock))
            try:
                transcript = await self._transcribe(ended, metrics)
            except SpeechError as exc:
                log.warning("speech-to-text failed: %s", exc)
                await self._send(speech_error_frame(exc))
                continue
            if transcript.text:
                pending.append(transcript.text)
                audio.append(ended.audio)
            # The user is talking again (or has already finished again): keep this text and
            # answer everything together once they stop, instead of talking over them.
            if (
                not pending
                or not self._utterances.empty()
                or self._detector.state
                in (
                    TurnState.SPEAKING,
                    TurnState.PAUSED,
                )
            ):
                continue
            text = " ".join(pending)
            utterance = Utterance(
                text=text, audio=np.concatenate(audio) if self._store_audio else None
            )
            pending, audio = [], []
            await self._send({"type": "transcript", "role": "user", "text": text, "final": True})
            await self._start_reply(user=utterance, text=None, metrics=metrics, voiced_at=voiced_at)
            await self._wait_reply()

    async def _transcribe(self, ended: TurnEnded, metrics: TurnMetrics) -> Transcript:
        started = self._clock()
        speculative, self._speculative = self._speculative, None
        if speculative is not None and speculative[0] is ended.audio:
            metrics.speculative = "hit"
            self.speculative_stats["used"] += 1
            transcript = await speculative[1]
        else:
            if speculative is not None:
                speculative[1].cancel()
                self.speculative_stats["discarded"] += 1
            if self.settings.speculative_stt:
                metrics.speculative = "miss"
            transcript = await self._stt.transcribe(ended.audio)
        # What the user waited for: from end of turn to text, whatever ran before.
        metrics.stt_ms = round((self._clock() - started) * 1000)
        return transcript

    async def _start_reply(
        self,
        *,
        user: Utterance | None,
        text: str | None,
        metrics: TurnMetrics,
        voiced_at: float | None = None,
    ) -> None:
        await self._wait_reply()
        self._reply = _Reply(token=self.token)
        self._client_idle = False
        sink = _Sink(self._send, self._clock, self._reply, held=False)
        self._reply_task = asyncio.create_task(
            self._speak(
                self._reply,
                user=user,
                text=text,
                metrics=metrics,
                sink=sink,
                context=self._context,
                voiced_at=voiced_at,
            )
        )

    async def _wait_reply(self) -> None:
        # asyncio.wait neither raises the reply's cancellation nor swallows our own.
        if self._reply_task is not None:
            await asyncio.wait([self._reply_task])

    async def _speak(
        self,
        reply: _Reply,
        *,
        user: Utterance | None,
        text: str | None,
        metrics: TurnMetrics,
        sink: _Sink,
        context: ConversationContext,
        voiced_at: float | None = None,
        speculation: _Speculation | None = None,
    ) -> None:
        """Produce one reply: the LLM's answer to ``user`` (or the fixed ``text``), spoken.

        A speculative reply (``speculation``) runs with a held sink and a copy of the
        context; it is stored, and its context and history adopted, only once committed.
        """
        answer = Answer()
        spoken = SpokenReply(answer=answer, sample_rate=self.settings.output_rate)
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        ready = self._clock()
        first_audio_made: float | None = None

        async def tts_worker() -> None:
            nonlocal first_audio_made
            while (clause := await clauses.get()) is not None:
                record = _Clause(clause)
                reply.clauses.append(record)
                await sink.send({"type": "reply", "text": clause, "token": reply.token})
                async for chunk in self._tts.synthesize(speakable(clause)):
                    if first_audio_made is None:
                        first_audio_made = self._clock()
                    await self._send_audio(
                        reply, record, chunk.pcm, chunk.sample_rate, spoken, sink
                    )

        tts = asyncio.create_task(tts_worker())
        try:
            if text is not None:
                answer.generated.append(text)
                answer.sent.append(text)
                await clauses.put(text)
            else:
                assert user is not None
                history = [*self.history, ChatMessage(role="user", content=user.text)]

                async def emit(clause: str) -> None:
                    nonlocal ready
                    if not reply.clauses and clauses.empty():
                        ready = self._clock()
                    await clauses.put(clause)

                found = Retrieved() if self._retrieve is None else await self._retrieve(user.text)
                spoken.knowledge_refs = found.refs
                await stream_answer(
                    provider=self._llm,
                    system_prompt=self._system_prompt,
                    history=history,
                    context=context,
                    emit=emit,
                    answer=answer,
                    passages=found.passages,
                )
                metrics.llm_first_token_ms = answer.first_token_ms
            await clauses.put(None)
            await tts
        except asyncio.CancelledError:
            answer.cancelled = True
            tts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tts
            if not sink.committed.is_set():
                raise  # a discarded guess: nothing was said, nothing is kept
            reply.cut = reply.stored_cut = True
            self._finish(reply, user, answer, metrics, sink, first_audio_made, ready)
            reply.stored = await asyncio.shield(
                self._store.record(user=user, reply=spoken, metrics=metrics)
            )
            self._amend_later(reply)  # a report that came while it was being stored
            raise
        except SpeechError as exc:
            log.warning("text-to-speech failed: %s", exc)
            answer.error = answer.error or f"text-to-speech failed: {exc}"
            await sink.send(speech_error_frame(exc))
        # A finished guess waits here for the end of the turn (or is cancelled).
        await sink.committed.wait()
        if context is not self._context:
            self._context.engine_state = context.engine_state
            self._context.provider_conversation_id = context.provider_conversation_id
        if speculation is not None:
            voiced_at = speculation.voiced_at
            if speculation.transcribed_at is not None and speculation.committed_at is not None:
                metrics.stt_ms = max(
                    0, round((speculation.transcribed_at - speculation.committed_at) * 1000)
                )
        self._finish(reply, user, answer, metrics, sink, first_audio_made, ready, voiced_at)
        reply.stored = await asyncio.shield(
            self._store.record(user=user, reply=spoken, metrics=metrics)
        )
        await self._send(metrics.as_frame())

    def _finish(
        self,
        reply: _Reply,
        user: Utterance | None,
        answer: Answer,
        metrics: TurnMetrics,
        sink: _Sink,
        first_audio_made: float | None,
        ready: float,
        voiced_at: float | None = None,
    ) -> None:
        """Settle a reply's heard text, history and timings before it is stored."""
        heard = self._heard_text(reply) if answer.cancelled else answer.text
        answer.sent = [heard] if heard else []
        if user is not None:
            self.history.append(ChatMessage(role="user", content=user.text))
        reply.heard = heard
        reply.history_at = len(self.history)
        if heard:
            reply.message = ChatMessage(role="assistant", content=heard)
            self.history.append(reply.message)
        if first_audio_made is not None:
            metrics.tts_first_audio_ms = max(0, round((first_audio_made - ready) * 1000))
        if sink.first_audio_at is not None and voiced_at is not None:
            metrics.voice_to_voice_ms = round((sink.first_audio_at - voiced_at) * 1000)

    async def _send_audio(
        self,
        reply: _Reply,
        clause: _Clause,
        pcm: bytes,
        rate: int,
        spoken: SpokenReply,
        sink: _Sink,
    ) -> None:
        frame_bytes = max(2, rate * AUDIO_FRAME_MS // 1000 * 2)
        prefix = reply.token.encode("ascii")
        for start in range(0, len(pcm), frame_bytes):
            piece = pcm[start : start + frame_bytes]
            await sink.send({"type": "audio", "audio": prefix + piece})
            ms = len(piece) / 2 * 1000 / rate
            clause.audio_ms += ms
            reply.sent_ms += ms
            if self._store_audio:
                spoken.audio += piece

    # --- barge-in ---------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        task = self._reply_task
        self.token = new_token()
        # The interrupt goes out first: the client stops playback now, not after clean-up.
        await self._send({"type": "interrupt", "token": self.token})
        self._client_idle = True
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif self._reply is not None and self._reply.stored is not None:
            # Generated and stored whole, but the listener cut its playback short.
            self._reply.cut = True
            self._amend_later(self._reply)

    def _amend_later(self, reply: _Reply) -> None:
        """Bring a cut reply's stored heard text and history entry in line with what the
        listener heard, in a task of this session's (awaited on close), off the caller's
        path: barge-in runs on the audio path."""
        if reply.stored is None:
            return  # still being stored: its own record takes the latest figures
        heard = self._heard_text(reply)
        if reply.stored_cut and heard == reply.heard:
            return
        reply.stored_cut = True
        self._set_heard(reply, heard)
        task = asyncio.create_task(self._store.cut(reply.stored, heard_text=heard))
        self._amending.add(task)
        task.add_done_callback(self._amended)

    def _amended(self, task: asyncio.Task[None]) -> None:
        self._amending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a cut reply's heard text could not be stored", exc_info=task.exception())

    def _set_heard(self, reply: _Reply, heard: str) -> None:
        """Put ``heard`` in the history where the reply's message stands (or would)."""
        reply.heard = heard
        at = next((i for i, m in enumerate(self.history) if m is reply.message), None)
        message = ChatMessage(role="assistant", content=heard) if heard else None
        if at is None:
            if message is not None:
                self.history.insert(min(reply.history_at, len(self.history)), message)
        elif message is not None:
            self.history[at] = message
        else:
            del self.history[at]
        reply.message = message

    def _heard_ms(self, reply: _Reply) -> float:
        if reply.token in self._played:
            return min(self._played[reply.token], reply.sent_ms)
        if self._reports_played or reply.first_audio_at is None:
            # A reporting client has not played any of it yet: its playback may start well
            # after the first frame left (a busy machine, the audio output's start-up).
            return 0.0
        # No playback reports (a plain Echo client): audio plays in real time from its start.
        return min((self._clock() - reply.first_audio_at) * 1000, reply.sent_ms)

    def _heard_text(self, reply: _Reply) -> str:
        """The words the listener heard: whole clauses played, and the played share of the
        clause that was cut, counted in words."""
        remaining = self._heard_ms(reply)
        words: list[str] = []
        for clause in reply.clauses:
            if clause.audio_ms <= 0 or remaining <= 0:
                break
            clause_words = clause.text.split()
            if remaining >= clause.audio_ms:
                words.extend(clause_words)
            else:
                words.extend(clause_words[: int(len(clause_words) * remaining / clause.audio_ms)])
            remaining -= clause.audio_ms
        return " ".join(words)


def _ignore_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _wall(monotonic_at: float, clock: Callable[[], float]) -> dt.datetime:
    """A wall-clock time for a moment measured on ``clock``."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=clock() - monotonic_at)
