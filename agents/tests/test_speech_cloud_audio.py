"""The audio plumbing the cloud speech providers share: WAV uploads and streamed PCM."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from agents import models
from agents.speech.audio import float_to_pcm16_bytes
from agents.speech.cloud_audio import PCMStream, wav_bytes
from agents.speech.registry import STT_PROVIDERS, TTS_PROVIDERS


def tone(samples: int, rate: int) -> np.ndarray:
    t = np.arange(samples, dtype=np.float32) / rate
    return (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_wav_bytes_is_a_16khz_mono_16bit_wav_of_the_samples() -> None:
    audio = tone(8000, 16_000)

    data = wav_bytes(audio)

    with wave.open(io.BytesIO(data), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert wav.readframes(wav.getnframes()) == float_to_pcm16_bytes(audio)


def test_at_the_same_rate_the_bytes_pass_through_and_a_split_sample_is_rejoined() -> None:
    pcm = float_to_pcm16_bytes(tone(100, 16_000))
    stream = PCMStream(16_000, 16_000)

    first = stream.feed(pcm[:51])  # 25 samples and half of the 26th
    second = stream.feed(pcm[51:])

    assert first is not None
    assert second is not None
    assert (first.sample_rate, first.samples, second.samples) == (16_000, 25, 75)
    assert first.pcm + second.pcm == pcm
    assert stream.flush() is None


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "samples", "expected"),
    [(24_000, 16_000, 6000, 4000), (16_000, 44_100, 4000, 11_025), (16_000, 48_000, 4, 12)],
)
def test_resampling_in_pieces_gives_the_whole_length_after_the_flush(
    from_rate: int, to_rate: int, samples: int, expected: int
) -> None:
    pcm = float_to_pcm16_bytes(tone(samples, from_rate))
    stream = PCMStream(from_rate, to_rate)

    chunks = [stream.feed(pcm[i : i + 999]) for i in range(0, len(pcm), 999)]
    chunks.append(stream.flush())

    made = [chunk for chunk in chunks if chunk is not None]
    assert {chunk.sample_rate for chunk in made} == {to_rate}
    assert sum(chunk.samples for chunk in made) == expected


def test_a_dangling_half_sample_at_the_end_is_dropped() -> None:
    stream = PCMStream(16_000, 16_000)

    chunk = stream.feed(b"\x01\x00\x02")

    assert chunk is not None
    assert chunk.pcm == b"\x01\x00"
    assert stream.flush() is None


def test_the_registry_builds_every_provider_an_agent_can_choose() -> None:
    assert sorted(STT_PROVIDERS) == sorted(models.STTProvider.values)
    assert sorted(STT_PROVIDERS) == ["aws_transcribe", "faster_whisper", "openai"]
    assert sorted(TTS_PROVIDERS) == sorted(models.TTSProvider.values)
    assert sorted(TTS_PROVIDERS) == ["aws_polly", "elevenlabs", "openai", "piper"]
