"""The realtime voice pipeline's Django-free core: voice activity, turn-taking.

Public API::

    vad = SileroVAD()                          # one per audio stream; the model is shared
    turns = TurnDetector(TurnSettings(...))    # one per audio stream
    for w in vad.feed(pcm_16k_float32):        # any chunk size; one window per 32 ms
        for event in turns.process(w.start_ms, w.probability, w.samples):
            ...                                # SpeechStarted, SpeechPaused, TurnEnded, ...

Pure asyncio/numpy: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from .turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnDiscarded,
    TurnEnded,
    TurnEvent,
    TurnSettings,
    TurnState,
)
from .vad import SAMPLE_RATE, WINDOW_MS, WINDOW_SAMPLES, SileroVAD, VADWindow

__all__ = [
    "SAMPLE_RATE",
    "WINDOW_MS",
    "WINDOW_SAMPLES",
    "SileroVAD",
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "TurnDetector",
    "TurnDiscarded",
    "TurnEnded",
    "TurnEvent",
    "TurnSettings",
    "TurnState",
    "VADWindow",
]
