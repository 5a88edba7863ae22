"""Load the bundled speech models when a server process starts, not on its first call.

Loading faster-whisper and Piper takes seconds; done in a background thread at start-up,
the process accepts connections at once and the first voice session only waits for
whatever is left of the loading.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from django.conf import settings

from agents.speech.base import SpeechDevice, STTProvider, TTSProvider
from agents.speech.registry import build_stt, build_tts

log = logging.getLogger(__name__)

#: The provider and model or voice an agent has for each when left at its defaults.
BUNDLED = {"stt": ("faster_whisper", ""), "tts": ("piper", "")}
_thread: threading.Thread | None = None
_failed = False
_warmed: set[tuple[str, str, str]] = set()


def speech_device() -> SpeechDevice:
    return SpeechDevice(
        device=settings.SPEECH_DEVICE,
        compute_type=settings.SPEECH_COMPUTE_TYPE,
        cpu_threads=settings.SPEECH_CPU_THREADS,
    )


def _warm() -> None:
    async def both() -> None:
        device = speech_device()
        stt = build_stt("faster_whisper", None, device)
        tts = build_tts("piper", None, device, sample_rate=44_100)
        await asyncio.gather(stt.warm_up(), tts.warm_up())

    global _failed
    try:
        asyncio.run(both())
    except Exception:
        # A process without its models still serves text; voice sessions report the error,
        # and readiness says so.
        _failed = True
        log.exception("loading the bundled speech models failed")
    else:
        log.info("bundled speech models loaded")


def start() -> None:
    """Start loading the bundled models in the background (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm, name="warm-speech-models", daemon=True)
        _thread.start()


async def wait() -> bool:
    """Wait for the start-up loading, if any; True when it has run."""
    if _thread is None:
        return False
    await asyncio.to_thread(_thread.join)
    return True


async def ensure(provider: STTProvider | TTSProvider, kind: str, name: str, choice: str) -> None:
    """Load ``provider``'s model once per process (``kind`` "stt" or "tts", the agent's
    provider ``name`` and model or voice ``choice``), so that a call's first turn does not
    pay for it; the bundled ones may already be loading since start-up."""
    key = (kind, name, choice)
    if key in _warmed:
        return
    if (name, choice) == BUNDLED[kind] and await wait() and not _failed:
        _warmed.add(key)
        return
    await provider.warm_up()
    _warmed.add(key)


def failed() -> bool:
    """Whether loading the bundled models at start-up failed."""
    return _failed


def ready() -> bool:
    """Whether the bundled models have loaded, and successfully (for readiness checks)."""
    return _thread is not None and not _thread.is_alive() and not _failed
