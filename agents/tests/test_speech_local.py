"""The local speech providers with the real bundled models, and the inference pool."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from num2words import num2words

from agents.speech import build_stt, build_tts
from agents.speech.audio import pcm16_bytes_to_float, resample
from agents.speech.base import AudioChunk, SpeechDevice, SpeechError, SpeechErrorKind
from agents.speech.executor import InferencePool, Overloaded
from agents.speech.faster_whisper import FasterWhisperSTT, bundled_model_path
from agents.speech.piper import PiperTTS, bundled_voice_paths, split_for_first_audio

SENTENCE = "Please book a table for two people at seven tonight."
THREE_SENTENCES = (
    "Thank you for calling the restaurant. I can book that table for you. "
    "Would seven o'clock suit you?"
)


@pytest.fixture(scope="module")
def pool() -> Iterator[InferencePool]:
    pool = InferencePool(max_workers=2, max_queue=8, name="test-speech")
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def stt(pool: InferencePool) -> FasterWhisperSTT:
    provider = FasterWhisperSTT(pool=pool)
    provider.load_model()
    return provider


@pytest.fixture(scope="module")
def tts(pool: InferencePool) -> PiperTTS:
    provider = PiperTTS(pool=pool)
    provider.load_voice()
    return provider


@dataclass
class PiperSpy:
    texts: list[str] = field(default_factory=list)  # what each voice.synthesize call was given
    sizes: list[int] = field(default_factory=list)  # samples of each sentence it produced


@pytest.fixture
def piper(tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> PiperSpy:
    """A spy on the shared voice: what Piper was asked for and actually synthesised."""
    voice = tts.load_voice()
    spy = PiperSpy()
    synthesize = voice.synthesize

    def spying(text, *args, **kwargs):
        spy.texts.append(text)
        for chunk in synthesize(text, *args, **kwargs):
            spy.sizes.append(chunk.audio_float_array.size)
            yield chunk

    monkeypatch.setattr(voice, "synthesize", spying)
    return spy


def normalise(text: str) -> str:
    text = re.sub(r"\d+", lambda m: f" {num2words(int(m.group()))} ", text.lower())
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).replace("'", "").split())


async def collect(tts: PiperTTS, text: str) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text)]


# --- STT and TTS together ------------------------------------------------------------------


async def test_piper_speech_transcribes_back_to_the_sentence(tts, stt):
    chunks = await collect(tts, SENTENCE)
    assert [c.sample_rate for c in chunks] == [22050]
    audio = resample(pcm16_bytes_to_float(b"".join(c.pcm for c in chunks)), 22050, 16000)
    transcript = await stt.transcribe(audio)
    assert normalise(transcript.text) == "please book a table for two people at seven tonight"
    assert transcript.duration_ms == round(audio.size / 16)
    assert 0 < transcript.inference_ms < 5000


async def test_two_transcriptions_at_once_are_both_right(tts, stt):
    chunks = await collect(tts, SENTENCE)
    audio = resample(pcm16_bytes_to_float(b"".join(c.pcm for c in chunks)), 22050, 16000)
    first, second = await asyncio.gather(stt.transcribe(audio), stt.transcribe(audio))
    assert normalise(first.text) == normalise(second.text) == normalise(SENTENCE)


# --- TTS ----------------------------------------------------------------------------------


async def test_the_first_sentence_arrives_while_the_others_are_synthesised(tts, pool, piper):
    stream = tts.synthesize(THREE_SENTENCES)
    first = await anext(stream)
    # One job makes the whole reply; it is still running, and has made only the first
    # sentence (or is in the middle of the second), when the first chunk is in our hands.
    assert pool.in_flight == 1
    assert len(piper.sizes) == 1
    rest = [chunk async for chunk in stream]
    assert len(rest) == 2
    assert [first.samples, *(c.samples for c in rest)] == piper.sizes
    assert pool.in_flight == 0


async def test_a_long_first_sentence_is_sent_clause_by_clause(tts, piper):
    text = "I would be glad to help you with that booking, and I can also check the menu for you."
    chunks = await collect(tts, text)
    assert piper.texts == [
        "I would be glad to help you with that booking,",
        "and I can also check the menu for you.",
    ]
    assert [c.samples for c in chunks] == piper.sizes


def test_split_for_first_audio_cuts_only_a_long_first_sentence():
    assert split_for_first_audio("Hello there. How are you, my friend, today?") == [
        "Hello there. How are you, my friend, today?"
    ]
    assert split_for_first_audio(
        "I would be glad to help you with that booking, and I can also check the menu for you. "
        "Anything else?"
    ) == [
        "I would be glad to help you with that booking,",
        "and I can also check the menu for you.",
        "Anything else?",
    ]
    # No piece shorter than 12 characters: "Well," stays with what follows.
    assert split_for_first_audio(
        "Well, I think that the answer to your question is yes, but only on weekdays."
    ) == ["Well, I think that the answer to your question is yes,", "but only on weekdays."]
    assert split_for_first_audio("  \n ") == []


async def test_output_resampled_to_44100_has_exactly_twice_the_samples(tts, piper):
    tts44 = PiperTTS(sample_rate=44100, pool=tts.pool)
    assert tts44.sample_rate == 44100
    assert tts44.load_voice() is tts.load_voice()
    chunks = await collect(tts44, "Good evening. Your table is ready.")
    assert [c.sample_rate for c in chunks] == [44100, 44100]
    assert [c.samples for c in chunks] == [round(n * 44100 / 22050) for n in piper.sizes]


async def test_closing_the_stream_stops_synthesis(tts, pool, piper):
    text = " ".join(f"This is sentence number {n} of the reply." for n in range(1, 9))
    stream = tts.synthesize(text)
    await anext(stream)
    await stream.aclose()
    await wait_until_idle(pool)
    # The first sentence, and at most the one in progress when we closed: not all eight.
    assert 1 <= len(piper.sizes) <= 2


async def test_cancelling_the_consumer_stops_synthesis(tts, pool, piper):
    text = " ".join(f"This is sentence number {n} of the reply." for n in range(1, 9))
    got: list[AudioChunk] = []
    first = asyncio.Event()

    async def play() -> None:
        async for chunk in tts.synthesize(text):
            got.append(chunk)
            first.set()

    task = asyncio.create_task(play())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_idle(pool)
    assert len(got) == 1
    assert 1 <= len(piper.sizes) <= 2


async def test_empty_text_yields_nothing_and_queues_nothing(tts, pool, piper):
    assert await collect(tts, "  ") == []
    assert piper.texts == []
    assert pool.in_flight == pool.queue_depth == 0


async def wait_until_idle(pool: InferencePool) -> None:
    deadline = time.monotonic() + 10
    while pool.in_flight or pool.queue_depth:
        assert time.monotonic() < deadline, "the pool never went idle"
        await asyncio.sleep(0.01)


# --- Loading and configuration ------------------------------------------------------------


def test_models_load_once_per_process(stt, tts):
    started = time.perf_counter()
    assert FasterWhisperSTT(pool=stt.pool).load_model() is stt.load_model()
    assert PiperTTS(pool=tts.pool).load_voice() is tts.load_voice()
    assert time.perf_counter() - started < 0.1  # no second load


def test_the_defaults_are_the_bundled_models(stt, tts):
    assert stt.model_path == bundled_model_path()
    assert (tts.model_path, tts.config_path) == bundled_voice_paths()
    assert tts.sample_rate == 22050


def test_a_hub_model_name_is_refused_with_a_clear_message():
    with pytest.raises(SpeechError) as caught:
        build_stt("faster_whisper", "tiny.en", SpeechDevice())
    assert caught.value.kind is SpeechErrorKind.CONFIG
    assert str(caught.value) == (
        "faster-whisper model 'tiny.en' is not a model directory on this machine. Models cannot "
        "be downloaded by name here (there is no network): give the path of a CTranslate2 "
        "Whisper model directory, or leave the model empty to use the bundled tiny.en at "
        f"{bundled_model_path()}"
    )


def test_a_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(SpeechError, match=r"holds no model\.bin") as caught:
        FasterWhisperSTT(model=str(tmp_path))
    assert caught.value.kind is SpeechErrorKind.CONFIG


def test_a_piper_voice_name_is_refused_with_a_clear_message():
    with pytest.raises(SpeechError, match="'en_US-lessac-medium' is not a voice file") as caught:
        build_tts("piper", "en_US-lessac-medium", SpeechDevice())
    assert "cannot be downloaded by name" in str(caught.value)
    assert caught.value.kind is SpeechErrorKind.CONFIG


def test_a_model_path_is_used_as_is():
    provider = build_stt("faster_whisper", str(bundled_model_path()), SpeechDevice())
    assert isinstance(provider, FasterWhisperSTT)
    assert provider.model_path == bundled_model_path().resolve()


def test_registry_builds_by_name_and_refuses_unknown_names():
    tts = build_tts("piper", "", SpeechDevice(), sample_rate=44100)
    assert isinstance(tts, PiperTTS)
    assert tts.sample_rate == 44100
    with pytest.raises(SpeechError) as caught:
        build_stt("whisper_cloud", "", SpeechDevice())
    assert (
        str(caught.value)
        == "unknown speech-to-text provider 'whisper_cloud'; known: aws_transcribe, faster_whisper, openai"
    )
    assert caught.value.kind is SpeechErrorKind.CONFIG


async def test_empty_audio_transcribes_to_nothing_without_inference(stt, pool):
    transcript = await stt.transcribe(np.zeros(0, np.float32))
    assert (transcript.text, transcript.duration_ms, transcript.inference_ms) == ("", 0, 0)


async def test_integer_audio_is_refused(stt):
    with pytest.raises(SpeechError, match="expected float samples") as caught:
        await stt.transcribe(np.zeros(16000, np.int16))
    assert caught.value.kind is SpeechErrorKind.BAD_AUDIO


# --- The inference pool -------------------------------------------------------------------


async def test_pool_work_never_runs_on_the_event_loop_thread():
    pool = InferencePool(max_workers=2, max_queue=4, name="where")
    try:
        threads = await asyncio.gather(*(pool.run(threading.current_thread) for _ in range(6)))
    finally:
        pool.shutdown()
    assert threading.current_thread() not in threads
    assert {t.name.rsplit("_", 1)[0] for t in threads} == {"where-worker"}


async def test_pool_refuses_at_once_when_the_queue_is_full():
    pool = InferencePool(max_workers=1, max_queue=2, name="tiny")
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(10)
        return "done"

    try:
        running = pool.submit(block)
        await asyncio.to_thread(started.wait, 10)
        waiting = [pool.submit(int, n) for n in range(2)]
        assert (pool.in_flight, pool.queue_depth) == (1, 2)
        before = time.perf_counter()
        with pytest.raises(Overloaded) as caught:
            await pool.run(lambda: None)
        assert time.perf_counter() - before < 0.05
        assert caught.value.kind is SpeechErrorKind.OVERLOADED
        assert caught.value.retryable is True
        assert (
            str(caught.value) == "inference pool 'tiny' is overloaded: 2 jobs are already waiting"
        )
        assert (pool.in_flight, pool.queue_depth, pool.rejected) == (1, 2, 1)
        release.set()
        assert await running == "done"
        assert await asyncio.gather(*waiting) == [0, 1]
        assert (pool.in_flight, pool.queue_depth) == (0, 0)
    finally:
        release.set()
        pool.shutdown()


async def test_cancelling_a_waiting_job_frees_its_place_and_never_runs_it():
    pool = InferencePool(max_workers=1, max_queue=1, name="cancel")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def block() -> None:
        started.set()
        release.wait(10)

    try:
        running = pool.submit(block)
        await asyncio.to_thread(started.wait, 10)
        waiting = pool.submit(ran.append, "should not run")
        assert pool.queue_depth == 1
        waiting.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the thread pool's future
        assert pool.queue_depth == 0
        pool.submit(ran.append, "ran")  # the freed place is usable
        release.set()
        await running
        await wait_until_idle(pool)
        assert ran == ["ran"]
    finally:
        release.set()
        pool.shutdown()


async def test_a_full_pool_reaches_the_stt_caller_as_overloaded(stt):
    pool = InferencePool(max_workers=1, max_queue=0, name="busy")
    started, release = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(10)

    try:
        busy = pool.submit(block)
        await asyncio.to_thread(started.wait, 10)
        provider = FasterWhisperSTT(pool=pool)
        with pytest.raises(Overloaded):
            await provider.transcribe(np.zeros(16000, np.float32))
        release.set()
        await busy
    finally:
        release.set()
        pool.shutdown()


async def test_synthesis_waiting_in_a_pool_that_shuts_down_fails_cleanly(tts):
    pool = InferencePool(max_workers=1, max_queue=1, name="closing")
    started, release = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(10)

    try:
        busy = pool.submit(block)
        await asyncio.to_thread(started.wait, 10)
        stream = PiperTTS(pool=pool).synthesize(SENTENCE)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)
        assert pool.queue_depth == 1
        pool.shutdown(wait=False)  # drops the waiting synthesis
        with pytest.raises(SpeechError, match="the inference pool shut down") as caught:
            await asyncio.wait_for(first, 5)
        assert caught.value.kind is SpeechErrorKind.UNAVAILABLE
        release.set()
        await busy
    finally:
        release.set()
        pool.shutdown()


async def test_a_shut_down_pool_refuses_work():
    pool = InferencePool(max_workers=1, max_queue=1, name="gone")
    pool.shutdown()
    with pytest.raises(SpeechError, match="is shut down") as caught:
        await pool.run(lambda: None)
    assert caught.value.kind is SpeechErrorKind.UNAVAILABLE
