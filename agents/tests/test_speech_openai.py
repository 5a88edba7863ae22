"""The OpenAI STT and TTS providers, driving the real ``openai`` client against FakeOpenAI.

The providers read ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` as in production; the tests
point the base URL at the fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest

from agents.llm.openai_responses import aclose_cached_clients
from agents.speech.base import (
    AudioChunk,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    TTSProvider,
)
from agents.speech.openai_common import speech_error_from_openai
from agents.speech.openai_stt import OpenAITranscribeSTT
from agents.speech.openai_tts import OpenAISpeechTTS
from agents.speech.registry import build_stt, build_tts
from testing.fake_openai import DEFAULT_TRANSCRIPT, FakeOpenAI, tone_pcm

KEY = "sk-test-speech-0123"
DEVICE = SpeechDevice()
TRANSCRIPTIONS = "/v1/audio/transcriptions"
SPEECH = "/v1/audio/speech"


@pytest.fixture
async def fake(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    yield fake_openai
    # Clients are cached per event loop; each test has its own loop, so close them here.
    await aclose_cached_clients()
    assert fake_openai.errors == []


def utterance(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 16_000), dtype=np.float32) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


async def collect(tts: TTSProvider, text: str) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text)]


async def collect_into(received: list[AudioChunk], tts: TTSProvider, text: str) -> None:
    """Like :func:`collect`, but what came before a failure stays in ``received``."""
    async for chunk in tts.synthesize(text):
        received.append(chunk)


# --- speech to text -----------------------------------------------------------------------


async def test_stt_uploads_the_utterance_as_a_16khz_wav_and_returns_the_text(
    fake: FakeOpenAI,
) -> None:
    stt = build_stt("openai", "", DEVICE)

    transcript = await stt.transcribe(utterance(0.5))

    assert (transcript.text, transcript.duration_ms) == (DEFAULT_TRANSCRIPT, 500)
    [upload] = fake.audio_uploads
    assert upload.fields == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
        "response_format": "json",
    }
    assert (upload.filename, upload.channels, upload.sample_width) == ("utterance.wav", 1, 2)
    assert (upload.sample_rate, upload.frames) == (16_000, 8000)
    [request] = fake.requests_to(TRANSCRIPTIONS)
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_stt_sends_the_configured_model_and_trims_the_text(fake: FakeOpenAI) -> None:
    fake.transcript_text = "  Book a table.  "
    stt = build_stt("openai", "whisper-1", DEVICE)

    transcript = await stt.transcribe(utterance(0.1))

    assert transcript.text == "Book a table."
    assert fake.audio_uploads[0].fields["model"] == "whisper-1"


async def test_stt_does_not_call_the_service_for_empty_audio(fake: FakeOpenAI) -> None:
    stt = OpenAITranscribeSTT()

    transcript = await stt.transcribe(np.zeros(0, np.float32))

    assert (transcript.text, transcript.duration_ms) == ("", 0)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (401, None, SpeechErrorKind.AUTH, False),
        (403, None, SpeechErrorKind.AUTH, False),
        (429, None, SpeechErrorKind.RATE_LIMITED, True),
        (429, "insufficient_quota", SpeechErrorKind.RATE_LIMITED, False),
        (404, None, SpeechErrorKind.CONFIG, False),
        (500, None, SpeechErrorKind.UNAVAILABLE, True),
        (503, None, SpeechErrorKind.UNAVAILABLE, True),
    ],
)
async def test_stt_maps_http_errors_to_speech_errors(
    fake: FakeOpenAI, status: int, code: str | None, kind: SpeechErrorKind, retryable: bool
) -> None:
    fake.fail_next(status, code=code, path=TRANSCRIPTIONS)
    stt = OpenAITranscribeSTT()

    with pytest.raises(SpeechError) as caught:
        await stt.transcribe(utterance(0.1))

    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert f"(HTTP {status})" in str(caught.value)
    assert len(fake.requests_to(TRANSCRIPTIONS)) == 1  # no retries inside the SDK


async def test_a_file_the_api_rejects_is_reported_as_bad_audio(fake: FakeOpenAI) -> None:
    # The API answers 400 with param "file" for audio it cannot decode, and so does the fake
    # for anything but a WAV. The provider only ever sends WAVs, so the client is driven here.
    client = OpenAITranscribeSTT().endpoint.client(5.0)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.audio.transcriptions.create(
            file=("x.wav", b"not a wav", "audio/wav"), model="gpt-4o-mini-transcribe"
        )

    error = speech_error_from_openai(caught.value, "transcription")

    assert (error.kind, error.retryable) == (SpeechErrorKind.BAD_AUDIO, False)
    assert fake.audio_uploads == []


async def test_stt_times_out_as_a_retryable_timeout(fake: FakeOpenAI) -> None:
    fake.stall_next(2.0, path=TRANSCRIPTIONS)
    stt = OpenAITranscribeSTT(timeout_s=0.2)

    with pytest.raises(SpeechError) as caught:
        await stt.transcribe(utterance(0.1))

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.TIMEOUT, True)


def test_stt_without_a_key_fails_at_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(SpeechError) as caught:
        build_stt("openai", "", DEVICE)

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert str(caught.value) == (
        "the openai speech provider needs an OpenAI API key: set the OPENAI_API_KEY "
        "environment variable"
    )


# --- text to speech -----------------------------------------------------------------------


async def test_tts_streams_the_24khz_pcm_as_it_arrives(fake: FakeOpenAI) -> None:
    fake.speech_pcm = tone_pcm(0.25)  # 6000 samples, sent in 4800-byte pieces
    tts = build_tts("openai", "", DEVICE)

    chunks = await collect(tts, "Hello there.")

    assert [chunk.samples for chunk in chunks] == [2400, 2400, 1200]
    assert {chunk.sample_rate for chunk in chunks} == {24_000}
    assert b"".join(chunk.pcm for chunk in chunks) == fake.speech_pcm
    [request] = fake.requests_to(SPEECH)
    assert request.json == {
        "input": "Hello there.",
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "response_format": "pcm",
    }


@pytest.mark.parametrize(("rate", "samples"), [(16_000, 4000), (44_100, 11_025), (48_000, 12_000)])
async def test_tts_resamples_to_the_requested_rate(
    fake: FakeOpenAI, rate: int, samples: int
) -> None:
    fake.speech_pcm = tone_pcm(0.25)
    tts = build_tts("openai", "", DEVICE, sample_rate=rate)

    chunks = await collect(tts, "Hello there.")

    assert tts.sample_rate == rate
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert sum(chunk.samples for chunk in chunks) == samples


async def test_tts_asks_for_the_configured_voice(fake: FakeOpenAI) -> None:
    tts = build_tts("openai", "nova", DEVICE)

    await collect(tts, "Hi.")

    assert fake.requests_to(SPEECH)[0].json["voice"] == "nova"


async def test_tts_sends_nothing_for_blank_text(fake: FakeOpenAI) -> None:
    assert await collect(OpenAISpeechTTS(), "  \n ") == []
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, SpeechErrorKind.AUTH, False),
        (400, SpeechErrorKind.CONFIG, False),
        (429, SpeechErrorKind.RATE_LIMITED, True),
        (503, SpeechErrorKind.UNAVAILABLE, True),
    ],
)
async def test_tts_maps_http_errors_to_speech_errors(
    fake: FakeOpenAI, status: int, kind: SpeechErrorKind, retryable: bool
) -> None:
    fake.fail_next(status, path=SPEECH)

    with pytest.raises(SpeechError) as caught:
        await collect(OpenAISpeechTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)


async def test_a_stream_that_breaks_off_gives_its_audio_then_a_retryable_error(
    fake: FakeOpenAI,
) -> None:
    fake.speech_pcm = tone_pcm(0.25)
    fake.disconnect_next(after_deltas=1, path=SPEECH)
    received: list[AudioChunk] = []

    with pytest.raises(SpeechError) as caught:
        await collect_into(received, OpenAISpeechTTS(), "Hello there.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.UNAVAILABLE, True)
    assert [chunk.samples for chunk in received] == [2400]


async def test_closing_the_stream_early_hangs_up_on_the_download(fake: FakeOpenAI) -> None:
    fake.speech_pcm = tone_pcm(1.0)
    fake.delta_delay_s = 0.2  # between pieces of the body
    chunks = OpenAISpeechTTS().synthesize("A long answer.")

    first = await anext(chunks)
    await chunks.aclose()

    assert first.samples == 2400
    [request] = fake.requests_to(SPEECH)
    for _ in range(50):  # the server notices the disconnect on its own thread
        if request.disconnected:
            break
        await asyncio.sleep(0.02)
    assert request.disconnected


def test_tts_without_a_key_fails_at_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(SpeechError) as caught:
        build_tts("openai", "", DEVICE, sample_rate=16_000)

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert "OPENAI_API_KEY" in str(caught.value)
