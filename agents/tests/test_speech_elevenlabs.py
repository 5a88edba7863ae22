"""The ElevenLabs TTS provider over a real WebSocket to FakeElevenLabs.

The provider reads ``ELEVENLABS_API_KEY`` and ``ELEVENLABS_BASE_URL`` as in production; the
tests point the base URL at the fake.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from agents.speech.base import (
    AudioChunk,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    TTSProvider,
)
from agents.speech.elevenlabs import ElevenLabsTTS
from agents.speech.registry import build_tts
from testing.fake_elevenlabs import DEFAULT_KEY, FakeElevenLabs, tone_pcm16

DEVICE = SpeechDevice()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeElevenLabs]:
    fake_server.reset()
    monkeypatch.setenv("ELEVENLABS_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake_server.base_url)
    yield fake_server
    assert fake_server.errors == []


async def collect(tts: TTSProvider, text: str) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text)]


async def collect_into(received: list[AudioChunk], tts: TTSProvider, text: str) -> None:
    """Like :func:`collect`, but what came before a failure stays in ``received``."""
    async for chunk in tts.synthesize(text):
        received.append(chunk)


async def test_streams_the_16khz_pcm_chunk_by_chunk(fake: FakeElevenLabs) -> None:
    fake.audio_pcm = tone_pcm16(0.25)  # 4000 samples, sent as 3200 + 3200 + 1600 bytes
    tts = build_tts("elevenlabs", "", DEVICE)

    chunks = await collect(tts, "Hello there.")

    assert [chunk.samples for chunk in chunks] == [1600, 1600, 800]
    assert {chunk.sample_rate for chunk in chunks} == {16_000}
    assert b"".join(chunk.pcm for chunk in chunks) == fake.audio_pcm


async def test_opens_the_documented_stream_and_sends_the_documented_messages(
    fake: FakeElevenLabs,
) -> None:
    tts = build_tts("elevenlabs", "", DEVICE)

    await collect(tts, "Hello   there.\n")

    [session] = fake.sessions
    assert session.voice_id == "21m00Tcm4TlvDq8ikWAM"
    assert session.query == {"model_id": "eleven_flash_v2_5", "output_format": "pcm_16000"}
    assert session.messages == [
        {
            "text": " ",
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
            "xi_api_key": DEFAULT_KEY,
        },
        {"text": "Hello there. "},
        {"text": ""},
    ]
    assert (session.final_sent, session.client_left_early) == (True, False)


async def test_uses_the_configured_voice_and_model(fake: FakeElevenLabs) -> None:
    tts = ElevenLabsTTS("pNInz6obpgDQGcFmaJgB", DEVICE, model="eleven_turbo_v2")

    await collect(tts, "Hi.")

    [session] = fake.sessions
    assert (session.voice_id, session.query["model_id"]) == (
        "pNInz6obpgDQGcFmaJgB",
        "eleven_turbo_v2",
    )


@pytest.mark.parametrize(("rate", "samples"), [(8_000, 2000), (44_100, 11_025), (48_000, 12_000)])
async def test_resamples_to_the_requested_rate(
    fake: FakeElevenLabs, rate: int, samples: int
) -> None:
    fake.audio_pcm = tone_pcm16(0.25)
    tts = build_tts("elevenlabs", "", DEVICE, sample_rate=rate)

    chunks = await collect(tts, "Hello there.")

    assert tts.sample_rate == rate
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert sum(chunk.samples for chunk in chunks) == samples


async def test_blank_text_opens_no_socket(fake: FakeElevenLabs) -> None:
    assert await collect(ElevenLabsTTS(), " \n ") == []
    assert fake.sessions == []


async def test_a_wrong_key_is_an_auth_error(fake: FakeElevenLabs) -> None:
    fake.api_key = "another-key"

    with pytest.raises(SpeechError) as caught:
        await collect(ElevenLabsTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.AUTH, False)
    assert "Invalid API key" in str(caught.value)


@pytest.mark.parametrize(
    ("message", "error", "kind", "retryable"),
    [
        ("This request exceeds your quota.", "quota_exceeded", SpeechErrorKind.RATE_LIMITED, False),
        (
            "Too many concurrent requests.",
            "too_many_concurrent_requests",
            SpeechErrorKind.RATE_LIMITED,
            True,
        ),
        ("A voice with this id was not found.", "voice_not_found", SpeechErrorKind.CONFIG, False),
        ("Something went wrong.", "", SpeechErrorKind.UNAVAILABLE, True),
    ],
)
async def test_an_error_message_from_the_service_maps_to_a_speech_error(
    fake: FakeElevenLabs, message: str, error: str, kind: SpeechErrorKind, retryable: bool
) -> None:
    fake.fail_next(message, error=error)

    with pytest.raises(SpeechError) as caught:
        await collect(ElevenLabsTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, SpeechErrorKind.AUTH, False),
        (404, SpeechErrorKind.CONFIG, False),
        (429, SpeechErrorKind.RATE_LIMITED, True),
        (503, SpeechErrorKind.UNAVAILABLE, True),
    ],
)
async def test_a_refused_handshake_maps_to_a_speech_error(
    fake: FakeElevenLabs, status: int, kind: SpeechErrorKind, retryable: bool
) -> None:
    fake.refuse_next(status)

    with pytest.raises(SpeechError) as caught:
        await collect(ElevenLabsTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert f"(HTTP {status})" in str(caught.value)


async def test_a_silent_service_times_out(fake: FakeElevenLabs) -> None:
    fake.stall_next(1.0)

    with pytest.raises(SpeechError) as caught:
        await collect(ElevenLabsTTS(timeout_s=0.2), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.TIMEOUT, True)


async def test_a_dropped_stream_gives_its_audio_then_a_retryable_error(
    fake: FakeElevenLabs,
) -> None:
    fake.drop_next(after_chunks=1)
    received: list[AudioChunk] = []

    with pytest.raises(SpeechError) as caught:
        await collect_into(received, ElevenLabsTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.UNAVAILABLE, True)
    assert "1011" in str(caught.value)
    assert [chunk.samples for chunk in received] == [1600]


async def test_closing_the_stream_early_closes_the_socket(fake: FakeElevenLabs) -> None:
    fake.audio_pcm = tone_pcm16(1.0)  # 10 pieces
    fake.chunk_delay_s = 0.05
    chunks = ElevenLabsTTS().synthesize("A long answer.")

    await anext(chunks)
    await chunks.aclose()

    [session] = fake.sessions
    for _ in range(50):  # the fake notices the close on its own thread
        if session.client_left_early:
            break
        await asyncio.sleep(0.02)
    assert session.client_left_early
    assert session.audio_messages_sent < 10


async def test_nothing_listening_is_a_retryable_unavailable_error(
    fake: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ELEVENLABS_BASE_URL", f"ws://127.0.0.1:{port}")

    with pytest.raises(SpeechError) as caught:
        await collect(ElevenLabsTTS(), "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.UNAVAILABLE, True)


def test_without_a_key_construction_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)

    with pytest.raises(SpeechError) as caught:
        build_tts("elevenlabs", "", DEVICE)

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert str(caught.value) == (
        "the elevenlabs speech provider needs an ElevenLabs API key: set the "
        "ELEVENLABS_API_KEY environment variable"
    )


@pytest.mark.parametrize(
    ("value", "url"),
    [
        (
            "",
            "wss://api.elevenlabs.io/v1/text-to-speech/v1/stream-input?model_id=m&output_format=pcm_16000",
        ),
        (
            "https://eu.example.test/",
            "wss://eu.example.test/v1/text-to-speech/v1/stream-input?model_id=m&output_format=pcm_16000",
        ),
        (
            "http://127.0.0.1:9",
            "ws://127.0.0.1:9/v1/text-to-speech/v1/stream-input?model_id=m&output_format=pcm_16000",
        ),
    ],
)
def test_the_base_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, url: str
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "k")
    monkeypatch.setenv("ELEVENLABS_BASE_URL", value)

    assert ElevenLabsTTS("v1", model="m").url == url


def test_a_base_url_that_is_not_a_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "k")
    monkeypatch.setenv("ELEVENLABS_BASE_URL", "api.elevenlabs.io")

    with pytest.raises(SpeechError) as caught:
        ElevenLabsTTS()

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert "ELEVENLABS_BASE_URL" in str(caught.value)
