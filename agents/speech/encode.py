"""Encoding synthesised speech for HTTP clients: MP3 blobs, one streamed WAV, or raw PCM.

The chatbot-server endpoints answer with audio as it is synthesised. Three wire formats:

* ``mp3``: a concatenation of independent MP3 files (bare MPEG audio frames, no ID3 tag,
  no Xing header), one per piece of speech, as the server this project replaces sent
  them (one Polly MP3 per sentence). Players resynchronise on MP3 frame headers, so the
  concatenation plays and decodes as one stream; each piece carries the encoder's short
  delay and padding (about 50 ms at 22 050 Hz).
* ``wav``: one RIFF/WAVE header whose sizes say "unknown length" (``0xFFFFFFFF``, as
  streaming encoders write it), then signed 16-bit little-endian mono PCM to the end.
* ``pcm``: the PCM alone (s16le, mono); the client must know the rate.

Encoding uses PyAV (FFmpeg's libmp3lame). Pure Python and numpy: nothing here imports
Django, Channels, Celery or DRF.
"""

from __future__ import annotations

import struct
from enum import StrEnum

import av
import numpy as np

__all__ = [
    "MP3_SAMPLE_RATES",
    "AudioFormat",
    "StreamEncoder",
    "encode_mp3",
    "wav_stream_header",
]

#: The rates an MP3 stream can have (MPEG-1, MPEG-2 and MPEG-2.5 layer III).
MP3_SAMPLE_RATES = frozenset(
    {8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000}
)

#: What a WAV header's size fields hold when the length is not known in advance.
_UNKNOWN_SIZE = 0xFFFFFFFF


class AudioFormat(StrEnum):
    """An audio wire format of the chatbot-server endpoints."""

    MP3 = "mp3"
    WAV = "wav"
    PCM = "pcm"


def _check_pcm(pcm: bytes, sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    if len(pcm) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")


def encode_mp3(pcm: bytes, sample_rate: int, *, bit_rate: int = 48_000) -> bytes:
    """One complete MP3 (bare frames) of ``pcm``: s16le mono samples at ``sample_rate``.

    The encoder is flushed, so the result plays on its own and can be followed by another
    such file. Empty ``pcm`` gives ``b""``. ``sample_rate`` must be one MP3 allows
    (:data:`MP3_SAMPLE_RATES`); resample first otherwise.
    """
    _check_pcm(pcm, sample_rate)
    if sample_rate not in MP3_SAMPLE_RATES:
        allowed = ", ".join(str(rate) for rate in sorted(MP3_SAMPLE_RATES))
        raise ValueError(f"MP3 cannot be {sample_rate} Hz; use one of {allowed}")
    if not pcm:
        return b""
    codec = av.CodecContext.create("libmp3lame", "w")
    codec.sample_rate = sample_rate
    codec.layout = "mono"
    codec.format = "s16p"
    codec.bit_rate = bit_rate
    codec.open()
    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16p", layout="mono")
    frame.sample_rate = sample_rate
    out = bytearray()
    for packet in codec.encode(frame):
        out += bytes(packet)
    for packet in codec.encode(None):  # flush: the encoder holds about two frames back
        out += bytes(packet)
    return bytes(out)


def wav_stream_header(sample_rate: int) -> bytes:
    """A 44-byte WAV header for s16le mono PCM of unknown length that follows it."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _UNKNOWN_SIZE),
            b"WAVE",
            b"fmt ",
            struct.pack("<I", len(fmt)),
            fmt,
            b"data",
            struct.pack("<I", _UNKNOWN_SIZE),
        )
    )


class StreamEncoder:
    """Turns speech, as it is synthesised, into the bytes of one response body.

    Call :meth:`header` once first, :meth:`feed` with every PCM chunk, and :meth:`flush`
    at the end of each piece of speech (a sentence or clause) and of the reply. For MP3,
    chunks are gathered until at least ``min_mp3_ms`` of audio is waiting, so that a
    provider that streams tiny chunks does not produce an MP3 (with its encoder delay) per
    chunk; WAV and PCM bytes are passed on at once.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        sample_rate: int,
        *,
        min_mp3_ms: int = 500,
        mp3_bit_rate: int = 48_000,
    ) -> None:
        if audio_format is AudioFormat.MP3 and sample_rate not in MP3_SAMPLE_RATES:
            raise ValueError(f"MP3 cannot be {sample_rate} Hz")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        self.format = audio_format
        self.sample_rate = sample_rate
        self._min_mp3_bytes = 2 * sample_rate * min_mp3_ms // 1000
        self._bit_rate = mp3_bit_rate
        self._pending = bytearray()

    def header(self) -> bytes:
        """What the body starts with: the WAV header, or nothing."""
        return wav_stream_header(self.sample_rate) if self.format is AudioFormat.WAV else b""

    def feed(self, pcm: bytes) -> bytes:
        """The bytes to send now for ``pcm`` (s16le mono at ``sample_rate``); may be empty."""
        _check_pcm(pcm, self.sample_rate)
        if self.format is not AudioFormat.MP3:
            return pcm
        self._pending += pcm
        if len(self._pending) < self._min_mp3_bytes:
            return b""
        return self.flush()

    def flush(self) -> bytes:
        """Whatever audio is still held back, encoded (MP3 only holds audio back)."""
        if not self._pending:
            return b""
        pending, self._pending = bytes(self._pending), bytearray()
        return encode_mp3(pending, self.sample_rate, bit_rate=self._bit_rate)
