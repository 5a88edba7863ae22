"""Audio helpers: conversions, resampling, decoding (containers made here with PyAV)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from agents.speech.audio import (
    decode_audio,
    decode_pcm16,
    float_to_pcm16,
    float_to_pcm16_bytes,
    pcm16_bytes_to_float,
    pcm16_to_float,
    resample,
)
from agents.speech.base import SpeechError, SpeechErrorKind


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


def encode(fmt: str, codec: str, rate: int, layout: str, seconds: float = 1.0) -> bytes:
    """A 440 Hz tone in the given container and codec, encoded with PyAV."""
    tone = float_to_pcm16(sine(440, rate, seconds))
    channels = 2 if layout == "stereo" else 1
    planes = np.repeat(tone, channels).reshape(1, -1)  # packed s16: L R L R ...
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(planes, format="s16", layout=layout)
        frame.rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_float_to_pcm16_scales_rounds_and_clips():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0], np.float32)
    assert float_to_pcm16(x).tolist() == [-32767, -32767, -16384, 0, 8192, 32767, 32767]
    assert float_to_pcm16(x).dtype == np.int16


def test_pcm16_to_float_divides_by_32768():
    x = np.array([-32768, -16384, 0, 16384, 32767], np.int16)
    assert pcm16_to_float(x).tolist() == [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]
    assert pcm16_to_float(x).dtype == np.float32


def test_pcm16_bytes_round_trip_is_little_endian():
    data = float_to_pcm16_bytes(np.array([0.5, -1.0], np.float32))
    assert data == (16384).to_bytes(2, "little", signed=True) + (-32767).to_bytes(
        2, "little", signed=True
    )
    assert pcm16_bytes_to_float(data).tolist() == [0.5, -32767 / 32768]


def test_odd_pcm16_byte_count_is_bad_audio():
    with pytest.raises(SpeechError, match="even number of bytes") as caught:
        pcm16_bytes_to_float(b"\x00\x01\x02")
    assert caught.value.kind is SpeechErrorKind.BAD_AUDIO
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    "bad", [np.zeros(4, np.int16), np.zeros((2, 4), np.float32)], ids=["int", "2-D"]
)
def test_float_helpers_refuse_ints_and_multichannel(bad):
    with pytest.raises(SpeechError) as caught:
        float_to_pcm16(bad)
    assert caught.value.kind is SpeechErrorKind.BAD_AUDIO


@pytest.mark.parametrize(
    ("src", "dst"), [(22050, 44100), (22050, 16000), (44100, 16000), (8000, 16000)]
)
def test_resample_gives_the_expected_length_and_keeps_the_pitch(src, dst):
    out = resample(sine(440, src, 1.0), src, dst)
    assert out.size == dst
    assert out.dtype == np.float32
    assert peak_frequency(out, dst) == pytest.approx(440, abs=1.5)


def test_resample_to_the_same_rate_returns_the_input():
    x = sine(440, 16000, 0.1)
    assert resample(x, 16000, 16000) is x


def test_decode_pcm16_resamples_raw_pcm_to_16k():
    data = float_to_pcm16_bytes(sine(440, 8000, 0.5))
    out = decode_pcm16(data, 8000)
    assert out.size == 8000
    assert peak_frequency(out, 16000) == pytest.approx(440, abs=2.5)


def test_decode_wav_stereo_44k_to_16k_mono():
    out = decode_audio(encode("wav", "pcm_s16le", 44100, "stereo"))
    assert out.dtype == np.float32
    assert out.ndim == 1
    assert out.size == 16000  # lossless: exactly 1 s
    assert peak_frequency(out, 16000) == pytest.approx(440, abs=1.5)
    assert np.abs(out).max() == pytest.approx(0.5, abs=0.01)  # mixdown keeps the level


@pytest.mark.parametrize(
    ("fmt", "codec", "rate"),
    [("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("webm", "libopus", 48000)],
)
def test_decode_compressed_containers(fmt, codec, rate):
    out = decode_audio(encode(fmt, codec, rate, "mono"))
    # Lossy codecs add encoder delay and padding: within 80 ms of 1 s.
    assert abs(out.size - 16000) <= 1280
    assert peak_frequency(out, 16000) == pytest.approx(440, abs=2.0)


@pytest.mark.parametrize(
    "data",
    [b"", b"this is not audio at all" * 20, bytes(range(256)) * 8],
    ids=["empty", "text", "bytes"],
)
def test_undecodable_data_is_bad_audio(data):
    with pytest.raises(SpeechError) as caught:
        decode_audio(data)
    assert caught.value.kind is SpeechErrorKind.BAD_AUDIO


def test_decoding_stops_as_soon_as_the_audio_is_longer_than_allowed():
    long_mp3 = encode("mp3", "libmp3lame", 44100, "mono", seconds=5.0)
    with pytest.raises(SpeechError) as caught:
        decode_audio(long_mp3, max_seconds=2)
    assert caught.value.kind is SpeechErrorKind.TOO_LONG
    assert str(caught.value) == "the audio is longer than 2 s"
    assert decode_audio(long_mp3, max_seconds=6).size >= 5 * 16000  # within the limit: whole
