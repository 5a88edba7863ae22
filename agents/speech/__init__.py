"""The speech layer: speech-to-text and text-to-speech providers behind small interfaces.

Public API::

    stt = build_stt("faster_whisper", model="", device=SpeechDevice())
    transcript = await stt.transcribe(audio_16k_float32)      # Transcript(text, ...)
    tts = build_tts("piper", voice="", device=SpeechDevice(), sample_rate=44100)
    async for chunk in tts.synthesize("Hello. How can I help?"):  # AudioChunk(pcm, rate)
        ...

Local inference runs in a bounded :class:`InferencePool` (never on the event loop) and
raises :class:`Overloaded` when its queue is full. Pure asyncio/numpy: nothing here imports
Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from .base import (
    STT_SAMPLE_RATE,
    AudioChunk,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    STTProvider,
    Transcript,
    TTSProvider,
)
from .executor import InferencePool, Overloaded, default_pool
from .registry import build_stt, build_tts

__all__ = [
    "STT_SAMPLE_RATE",
    "AudioChunk",
    "InferencePool",
    "Overloaded",
    "STTProvider",
    "SpeechDevice",
    "SpeechError",
    "SpeechErrorKind",
    "TTSProvider",
    "Transcript",
    "build_stt",
    "build_tts",
    "default_pool",
]
