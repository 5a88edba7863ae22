"""Audio as the cloud providers send and receive it: WAV uploads and streamed PCM.

STT services take a file; :func:`wav_bytes` makes the smallest lossless one (16-bit mono).

Cloud TTS services send s16le mono PCM at a rate of their own (OpenAI 24 kHz, Polly and
ElevenLabs 16 kHz here) in pieces whose boundaries follow the network, not the samples: a
piece can end half-way through a sample. Resampling each piece on its own would also put a
click at every boundary (soxr pads each call's edges), so one stateful soxr stream carries
the filter state from piece to piece, and :meth:`PCMStream.flush` drains its delay line at
the end. The total output is ``round(samples * to_rate / from_rate)`` samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from .audio import float_to_pcm16_bytes, pcm16_bytes_to_float, pcm16_wav
from .base import STT_SAMPLE_RATE, AudioChunk


def wav_bytes(audio: npt.ArrayLike, sample_rate: int = STT_SAMPLE_RATE) -> bytes:
    """Float mono audio in [-1, 1] as a 16-bit PCM WAV file."""
    return pcm16_wav(float_to_pcm16_bytes(audio), sample_rate)


class PCMStream:
    """Feed s16le bytes at ``from_rate`` in any pieces; get chunks at ``to_rate`` back."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._odd_byte = b""  # the first half of a sample split across two pieces
        self._resampler: Any = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
        )

    def feed(self, data: bytes) -> AudioChunk | None:
        """The audio for ``data`` that is ready now (None when there is none yet)."""
        data = self._odd_byte + data
        whole = len(data) - len(data) % 2
        self._odd_byte = data[whole:]
        return self._convert(data[:whole], last=False)

    def flush(self) -> AudioChunk | None:
        """The audio still held back by the resampler, once the input has ended."""
        # A dangling half sample is a truncated stream; it cannot be played, so it is dropped.
        self._odd_byte = b""
        return self._convert(b"", last=True)

    def _convert(self, pcm: bytes, *, last: bool) -> AudioChunk | None:
        if self._resampler is None:
            return AudioChunk(pcm=pcm, sample_rate=self.to_rate) if pcm else None
        samples = pcm16_bytes_to_float(pcm)
        out = np.asarray(self._resampler.resample_chunk(samples, last=last), dtype=np.float32)
        if out.size == 0:
            return None
        return AudioChunk(pcm=float_to_pcm16_bytes(out), sample_rate=self.to_rate)
