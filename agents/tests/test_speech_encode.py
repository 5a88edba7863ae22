"""Encoding speech for HTTP clients: independent MP3s, one streamed WAV, raw PCM."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import pytest

from agents.speech.encode import AudioFormat, StreamEncoder, encode_mp3, wav_stream_header

RATE = 22_050


def tone(seconds: float, hz: float = 440.0, rate: int = RATE) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 12_000).astype("<i2").tobytes()


def decode(data: bytes) -> tuple[str, int, np.ndarray]:
    """Container name, rate and float samples of ``data``, decoded by FFmpeg."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        samples = [frame.to_ndarray()[0] for frame in container.decode(stream)]
        return container.format.name, stream.rate, np.concatenate(samples)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_an_mp3_is_bare_frames_that_decode_to_the_same_sound() -> None:
    mp3 = encode_mp3(tone(1.0), RATE)
    assert mp3[:2] in (b"\xff\xf3", b"\xff\xf2")  # an MPEG-2 layer III frame, no ID3 tag
    name, rate, samples = decode(mp3)
    assert (name, rate) == ("mp3", RATE)
    # Encoder delay and padding add a little; never more than two frames' worth.
    assert RATE <= len(samples) <= RATE + 2 * 1152 + 576
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=2)


def test_concatenated_mp3s_decode_as_one_stream() -> None:
    first, second = encode_mp3(tone(0.5, 440), RATE), encode_mp3(tone(0.5, 880), RATE)
    _, _, alone = decode(first)
    _, _, both = decode(first + second)
    assert len(both) == len(alone) + len(decode(second)[2])
    assert dominant_hz(both[: len(alone)], RATE) == pytest.approx(440, abs=3)
    assert dominant_hz(both[len(alone) :], RATE) == pytest.approx(880, abs=3)


def test_no_audio_is_no_mp3() -> None:
    assert encode_mp3(b"", RATE) == b""


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (b"\0", RATE, "PCM16 data must have an even number of bytes, got 1"),
        (b"\0\0", 0, "sample_rate must be positive, not 0"),
        (
            b"\0\0",
            44_000,
            "MP3 cannot be 44000 Hz; use one of 8000, 11025, 12000, 16000, 22050, 24000, "
            "32000, 44100, 48000",
        ),
    ],
)
def test_bad_pcm_is_refused(pcm: bytes, rate: int, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        encode_mp3(pcm, rate)


def test_a_streamed_wav_reads_to_the_end_in_ffmpeg_and_python() -> None:
    pcm = tone(0.25)
    header = wav_stream_header(RATE)
    assert len(header) == 44
    assert header[:4] == b"RIFF"
    assert header[4:8] == b"\xff\xff\xff\xff"  # length unknown while streaming
    name, rate, samples = decode(header + pcm)
    assert (name, rate, len(samples)) == ("wav", RATE, len(pcm) // 2)
    with wave.open(io.BytesIO(header + pcm)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert wav.readframes(1 << 30) == pcm


def test_the_mp3_stream_encoder_holds_small_chunks_until_half_a_second() -> None:
    encoder = StreamEncoder(AudioFormat.MP3, RATE)
    assert encoder.header() == b""
    assert encoder.feed(tone(0.2)) == b""
    assert encoder.feed(tone(0.2)) == b""
    blob = encoder.feed(tone(0.2))  # 0.6 s waiting: encoded as one MP3
    assert len(decode(blob)[2]) >= round(0.6 * RATE)
    assert encoder.flush() == b""
    assert encoder.feed(tone(0.1)) == b""
    tail = encoder.flush()  # the end of a clause sends what is left, however short
    assert len(decode(tail)[2]) >= round(0.1 * RATE)


@pytest.mark.parametrize("audio_format", [AudioFormat.WAV, AudioFormat.PCM])
def test_wav_and_pcm_pass_audio_through_at_once(audio_format: AudioFormat) -> None:
    encoder = StreamEncoder(audio_format, RATE)
    pcm = tone(0.05)
    body = encoder.header() + encoder.feed(pcm) + encoder.flush()
    expected = (wav_stream_header(RATE) if audio_format is AudioFormat.WAV else b"") + pcm
    assert body == expected


def test_an_mp3_stream_encoder_needs_an_mp3_rate() -> None:
    with pytest.raises(ValueError, match=r"^MP3 cannot be 44000 Hz$"):
        StreamEncoder(AudioFormat.MP3, 44_000)
    assert StreamEncoder(AudioFormat.PCM, 44_000).sample_rate == 44_000
