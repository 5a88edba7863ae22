"""The realtime pipeline's logic with fake providers, a scripted VAD and a controllable clock.

No models run here: the VAD gives scripted probabilities per 32 ms window, STT returns
scripted text, the LLM streams scripted deltas and TTS returns silence of a length
proportional to the text. Timing comes from a fake clock that the test advances.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from agents.llm import ConversationContext, LLMConfig, LLMProvider, LLMRequest
from agents.speech.base import AudioChunk, STTProvider, Transcript, TTSProvider
from agents.speech.executor import InferencePool
from conversations.realtime.session import (
    SpokenReply,
    TurnMetrics,
    Utterance,
    VoiceSession,
    VoiceSettings,
)
from conversations.realtime.turns import TurnSettings
from conversations.realtime.vad import WINDOW_SAMPLES, VADWindow

WINDOW = np.zeros(WINDOW_SAMPLES, np.float32)


class ScriptedVAD:
    """Scores each 512-sample window with the next scripted probability."""

    def __init__(self) -> None:
        self.probabilities: list[float] = []
        self.t = 0

    def feed(self, pcm: Any) -> list[VADWindow]:
        windows = []
        for _ in range(len(pcm) // WINDOW_SAMPLES):
            windows.append(VADWindow(self.t, self.probabilities.pop(0), WINDOW))
            self.t += 32
        return windows


class FakeSTT(STTProvider):
    name: ClassVar[str] = "fake"

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def transcribe(self, audio: Any) -> Transcript:
        self.calls += 1
        await self.release.wait()
        return Transcript(text=self.texts.pop(0), duration_ms=len(audio) // 16, inference_ms=1)


class FakeTTS(TTSProvider):
    """10 ms of silence per character, at 1 kHz so the numbers stay small."""

    name: ClassVar[str] = "fake"
    sample_rate = 1000

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        self.spoken.append(text)
        yield AudioChunk(pcm=b"\0\0" * 10 * len(text), sample_rate=self.sample_rate)


class FakeLLM(LLMProvider):
    name: ClassVar[str] = "fake"

    def __init__(self) -> None:
        super().__init__(LLMConfig(provider="fake"))
        self.replies: list[list[str]] = []
        self.requests: list[LLMRequest] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.cancelled = False

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        self.requests.append(request)
        try:
            for delta in self.replies.pop(0):
                yield delta
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class MemoryStore:
    def __init__(self) -> None:
        self.turns: list[tuple[Utterance | None, SpokenReply, TurnMetrics]] = []
        self.cuts: list[tuple[int, str]] = []  # (index into turns, heard text)

    async def record(
        self, *, user: Utterance | None, reply: SpokenReply, metrics: TurnMetrics
    ) -> int:
        self.turns.append((user, reply, metrics))
        return len(self.turns) - 1

    async def cut(self, stored: object, *, heard_text: str) -> None:
        assert isinstance(stored, int)
        self.cuts.append((stored, heard_text))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig() -> Any:
    r: Any = SimpleNamespace()
    r.sent = []
    r.vad = ScriptedVAD()
    r.stt = FakeSTT()
    r.tts = FakeTTS()
    r.llm = FakeLLM()
    r.store = MemoryStore()
    r.clock = Clock()
    r.pool = InferencePool(1, 16, "test-vad")

    async def send(message: dict[str, Any]) -> None:
        r.sent.append(message)

    def make(greeting: str = "", reports_played: bool = False, **settings: Any) -> VoiceSession:
        return VoiceSession(
            send=send,
            stt=r.stt,
            tts=r.tts,
            llm=r.llm,
            system_prompt="Be kind.",
            context=ConversationContext(),
            store=r.store,
            settings=VoiceSettings(
                turn=TurnSettings(min_speech_ms=64, end_silence_ms=160, min_utterance_ms=64),
                output_rate=1000,
                **settings,
            ),
            vad_pool=r.pool,
            vad=r.vad,
            clock=r.clock,
            greeting=greeting,
            reports_played=reports_played,
        )

    r.make = make
    yield r
    r.pool.shutdown()


async def speak(session: VoiceSession, rig: Any, pattern: str) -> None:
    """Feed one window per character: '#' voiced, '.' silent; the clock moves 32 ms each."""
    for char in pattern:
        rig.vad.probabilities.append(0.9 if char == "#" else 0.05)
        rig.clock.now += 0.032
        await session.feed_audio(np.zeros(WINDOW_SAMPLES, np.float32))


async def settle(session: VoiceSession) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
    if session._reply_task is not None:
        await asyncio.wait([session._reply_task])
    for _ in range(20):
        await asyncio.sleep(0)


def types(rig: Any) -> list[str]:
    return [m["type"] for m in rig.sent]


async def test_a_turn_is_transcribed_answered_and_stored_with_timings(rig) -> None:
    rig.stt.texts = ["I need a holiday"]
    rig.llm.replies = [["Why do you need ", "a holiday? Tell me more."]]
    session = rig.make()
    await session.open()
    await speak(session, rig, "...####....." + ".")
    await settle(session)
    await session.close()

    assert types(rig)[:3] == ["token", "transcript", "reply"]
    token = rig.sent[0]["token"]
    assert len(token) == 8
    assert token.isalpha()
    assert token.islower()
    assert rig.sent[1] == {
        "type": "transcript",
        "role": "user",
        "text": "I need a holiday",
        "final": True,
    }
    replies = [m["text"] for m in rig.sent if m["type"] == "reply"]
    assert replies == ["Why do you need a holiday?", "Tell me more."]
    audio = [m["audio"] for m in rig.sent if m["type"] == "audio"]
    assert audio
    assert all(frame[:8] == token.encode() for frame in audio)
    # The model saw the system prompt and the user's words.
    request = rig.llm.requests[0]
    assert (request.system_prompt, request.messages[-1].content) == ("Be kind.", "I need a holiday")
    [(user, reply, metrics)] = rig.store.turns
    assert user is not None
    assert user.text == "I need a holiday"
    assert reply.answer.text == "Why do you need a holiday? Tell me more."
    assert reply.answer.cancelled is False
    assert metrics.speculative == "hit"
    assert metrics.voice_to_voice_ms is not None
    assert metrics.stt_ms is not None
    assert rig.sent[-1]["type"] == "metrics"


async def test_speculative_transcription_is_dropped_when_speech_resumes(rig) -> None:
    rig.stt.texts = ["first half", "whole sentence"]
    rig.llm.replies = [["OK."]]
    session = rig.make()
    await session.open()
    # A pause shorter than the end-of-turn silence (160 ms = 5 windows), then more speech.
    await speak(session, rig, "####...####......")
    await settle(session)
    await session.close()
    assert session.speculative_stats == {"started": 2, "used": 1, "discarded": 1}
    assert rig.sent[1]["text"] == "whole sentence"


async def test_speculation_off_transcribes_only_at_the_end(rig) -> None:
    rig.stt.texts = ["hello there"]
    rig.llm.replies = [["Hi."]]
    session = rig.make(speculative_stt=False)
    await session.open()
    await speak(session, rig, "####......")
    await settle(session)
    await session.close()
    assert rig.stt.calls == 1
    assert rig.store.turns[0][2].speculative == "off"


async def test_speech_during_transcription_is_kept_and_answered_together(rig) -> None:
    rig.stt.texts = ["my sister", "is visiting"]
    rig.llm.replies = [["Tell me about your sister."]]
    rig.stt.release.clear()  # transcription is slow
    session = rig.make()
    await session.open()
    await speak(session, rig, "####......")  # turn 1 ends; its transcription hangs
    await speak(session, rig, "####")  # the user goes on talking meanwhile
    rig.stt.release.set()
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    assert [m["text"] for m in rig.sent if m["type"] == "transcript"] == ["my sister is visiting"]
    assert len(rig.llm.requests) == 1


async def test_barge_in_cancels_the_reply_and_keeps_only_what_was_heard(rig) -> None:
    rig.stt.texts = ["tell me a story", "stop"]
    rig.llm.replies = [
        ["Once upon a time in a land far away, ", "there was a king. ", "He had three sons."],
        ["OK."],
    ]
    rig.llm.gate.clear()  # the model stalls after its first delta
    session = rig.make()
    await session.open()
    await speak(session, rig, "####......")
    for _ in range(50):
        await asyncio.sleep(0)
    old_token = rig.sent[0]["token"]
    first = [m for m in rig.sent if m["type"] == "reply"]
    assert [m["text"] for m in first] == ["Once upon a time in a land far away,"]
    # The client reports having played all of the first clause's audio.
    session.played(old_token, 10.0 * len("Once upon a time in a land far away,"))
    await speak(session, rig, "####")  # barge-in
    interrupts = [m for m in rig.sent if m["type"] == "interrupt"]
    assert len(interrupts) == 1
    new_token = interrupts[0]["token"]
    assert new_token != old_token
    assert session.token == new_token
    after = rig.sent[rig.sent.index(interrupts[0]) + 1 :]
    assert not [m for m in after if m["type"] == "audio" and m["audio"][:8] == old_token.encode()]
    assert rig.llm.cancelled
    rig.llm.gate.set()
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    _, reply, _ = rig.store.turns[0]
    assert reply.answer.cancelled is True
    assert reply.answer.heard_text == "Once upon a time in a land far away,"
    assert reply.answer.text.startswith(reply.answer.heard_text)
    # The model's next context has only what was heard.
    second = rig.llm.requests[1]
    assert [(m.role, m.content) for m in second.messages] == [
        ("user", "tell me a story"),
        ("assistant", "Once upon a time in a land far away,"),
        ("user", "stop"),
    ]


async def test_no_barge_in_when_the_agent_setting_is_off(rig) -> None:
    rig.stt.texts = ["hi", "more"]
    rig.llm.replies = [["Hello there, ", "how are you?"], ["Fine."]]
    rig.llm.gate.clear()
    session = rig.make(barge_in=False)
    await session.open()
    await speak(session, rig, "####......")
    await speak(session, rig, "####")
    assert "interrupt" not in types(rig)
    rig.llm.gate.set()
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    assert [t[1].answer.cancelled for t in rig.store.turns] == [False, False]


async def test_the_greeting_is_spoken_first_and_stored(rig) -> None:
    session = rig.make(greeting="Hello. How can I help?")
    await session.open()
    await settle(session)
    await session.close()
    assert types(rig)[:2] == ["token", "reply"]
    [(user, reply, _)] = rig.store.turns
    assert user is None
    assert reply.answer.text == "Hello. How can I help?"
    assert rig.tts.spoken == ["Hello. How can I help?"]


async def test_a_client_without_playback_reports_is_estimated_from_elapsed_time(rig) -> None:
    rig.stt.texts = ["go on", "wait"]
    rig.llm.replies = [["A" * 50 + ". ", "B" * 50 + "."], ["Yes."]]
    rig.llm.gate.clear()
    session = rig.make()
    await session.open()
    await speak(session, rig, "####......")
    for _ in range(50):
        await asyncio.sleep(0)
    rig.clock.now += 10.0  # everything sent so far has played out
    await speak(session, rig, "####")
    rig.llm.gate.set()
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    assert rig.store.turns[0][1].answer.heard_text == "A" * 50 + "."


async def test_a_reporting_client_has_heard_nothing_before_its_first_report(rig) -> None:
    # However long ago the first frame left, a client that said it reports playback and
    # has not reported yet may not have started playing (a busy machine, audio start-up).
    rig.stt.texts = ["go on", "wait"]
    rig.llm.replies = [["A" * 50 + ". ", "B" * 50 + "."], ["Yes."]]
    rig.llm.gate.clear()
    session = rig.make(reports_played=True)
    await session.open()
    await speak(session, rig, "####......")
    for _ in range(50):
        await asyncio.sleep(0)
    rig.clock.now += 10.0
    await speak(session, rig, "####")
    rig.llm.gate.set()
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    reply = rig.store.turns[0][1]
    assert (reply.answer.cancelled, reply.answer.heard_text) == (True, "")
    assert [(m.role, m.content) for m in rig.llm.requests[1].messages] == [
        ("user", "go on"),
        ("user", "wait"),
    ]


async def test_a_barge_in_during_playback_cuts_the_stored_reply_and_the_history(rig) -> None:
    # The reply was generated, sent and stored whole; the listener talks over its audio.
    rig.stt.texts = ["go on", "wait", "why"]
    rig.llm.replies = [["A" * 50 + ". ", "B" * 50 + "."], ["Yes."], ["Because."]]
    session = rig.make(reports_played=True)
    await session.open()
    await speak(session, rig, "####......")
    await settle(session)
    token = rig.sent[0]["token"]
    assert rig.store.turns[0][1].answer.cancelled is False
    session.played(token, 10.0 * 51)  # the first clause, exactly
    await speak(session, rig, "####")  # barge-in while the second clause plays
    assert [m["type"] for m in rig.sent].count("interrupt") == 1
    await speak(session, rig, "......")
    await settle(session)
    assert rig.store.cuts == [(0, "A" * 50 + ".")]
    assert [(m.role, m.content) for m in rig.llm.requests[1].messages] == [
        ("user", "go on"),
        ("assistant", "A" * 50 + "."),
        ("user", "wait"),
    ]
    await session.close()


async def test_the_clients_last_report_moves_the_cut_after_it_was_stored(rig) -> None:
    # At the interrupt the server knows only the last periodic report; the client's report
    # right after it says exactly how far it played, and the record follows.
    rig.stt.texts = ["go on", "wait"]
    rig.llm.replies = [["A" * 50 + ". ", "B" * 50 + "."], ["Yes."]]
    session = rig.make(reports_played=True)
    await session.open()
    await speak(session, rig, "####......")
    await settle(session)
    token = rig.sent[0]["token"]
    session.played(token, 100.0)  # 10 characters' worth: not a whole word yet
    await speak(session, rig, "####")
    session.played(token, 10.0 * 51 + 10.0 * 25)  # the client's report after `interrupt`
    await speak(session, rig, "......")
    await settle(session)
    await session.close()
    assert rig.store.cuts == [(0, ""), (0, "A" * 50 + ".")]
    assert rig.llm.requests[1].messages[1].content == "A" * 50 + "."


class StatefulLLM(FakeLLM):
    """A model whose state lives in the context only, so replies may be computed ahead."""

    speculative_safe = True

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        context.engine_state = {"turns": context.engine_state.get("turns", 0) + 1}
        async for delta in super().stream_reply(request, context):
            yield delta


async def test_a_reply_computed_during_the_pause_is_held_until_the_turn_ends(rig) -> None:
    rig.llm = StatefulLLM()
    rig.stt.texts = ["hello"]
    rig.llm.replies = [["Hello to you."]]
    session = rig.make()
    await session.open()
    await speak(session, rig, "####..")  # a pause: the reply is computed now...
    for _ in range(100):
        await asyncio.sleep(0)
    assert rig.llm.requests  # ...the model has answered...
    assert types(rig) == ["token"]  # ...but nothing has been said yet
    await speak(session, rig, "....")  # the silence completes the turn
    await settle(session)
    await session.close()
    assert types(rig)[1:4] == ["transcript", "reply", "audio"]
    [(user, reply, metrics)] = rig.store.turns
    assert user is not None
    assert (user.text, reply.answer.text, metrics.speculative) == ("hello", "Hello to you.", "hit")
    assert session._context.engine_state == {"turns": 1}
    assert metrics.voice_to_voice_ms is not None


async def test_a_reply_computed_during_a_pause_is_thrown_away_if_speech_resumes(rig) -> None:
    rig.llm = StatefulLLM()
    rig.stt.texts = ["my sister", "my sister is visiting"]
    rig.llm.replies = [["Tell me about your sister."], ["Tell me more about the visit."]]
    session = rig.make()
    await session.open()
    await speak(session, rig, "####..")
    for _ in range(100):
        await asyncio.sleep(0)
    await speak(session, rig, "####......")  # the user goes on, then really stops
    await settle(session)
    await session.close()
    assert [m["text"] for m in rig.sent if m["type"] == "reply"] == [
        "Tell me more about the visit."
    ]
    [(user, _, _)] = rig.store.turns
    assert user is not None
    assert user.text == "my sister is visiting"
    # The guess's model state was a copy: only the committed reply counted.
    assert session._context.engine_state == {"turns": 1}
    assert session.speculative_stats == {"started": 2, "used": 1, "discarded": 1}


async def test_retrieved_knowledge_reaches_the_model_and_the_record(rig) -> None:
    from agents.llm import Passage
    from conversations.realtime.session import Retrieved

    asked: list[str] = []

    async def retrieve(text: str) -> Retrieved:
        asked.append(text)
        passage = Passage(ref="doc:1#2", text="Refunds take five days.", title="Policy")
        return Retrieved(passages=[passage], refs=[{"chunk": 2, "document": 1}])

    rig.stt.texts = ["how long do refunds take"]
    rig.llm.replies = [["Five days."]]
    session = rig.make()
    session._retrieve = retrieve
    await session.open()
    await speak(session, rig, "####......")
    await settle(session)
    await session.close()
    assert asked == ["how long do refunds take"]
    assert [p.ref for p in rig.llm.requests[0].passages] == ["doc:1#2"]
    assert rig.store.turns[0][1].knowledge_refs == [{"chunk": 2, "document": 1}]
