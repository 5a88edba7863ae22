"""Build speech providers by the names stored on an agent (``stt_provider``, ``tts_provider``).

Adding a provider is one new file with a :class:`~agents.speech.base.STTProvider` or
:class:`~agents.speech.base.TTSProvider` subclass and one line in a dict below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .aws_polly import PollyTTS
from .aws_transcribe import AwsTranscribeSTT
from .base import SpeechDevice, SpeechError, SpeechErrorKind, STTProvider, TTSProvider
from .elevenlabs import ElevenLabsTTS
from .faster_whisper import FasterWhisperSTT
from .openai_stt import OpenAITranscribeSTT
from .openai_tts import OpenAISpeechTTS
from .piper import PiperTTS


class STTFactory(Protocol):
    """How the registry builds an STT provider: usually just its class."""

    def __call__(self, model: str | None, device: SpeechDevice | None) -> STTProvider: ...


class TTSFactory(Protocol):
    """How the registry builds a TTS provider: usually just its class."""

    def __call__(
        self, voice: str | None, device: SpeechDevice | None, *, sample_rate: int | None = None
    ) -> TTSProvider: ...


STT_PROVIDERS: dict[str, STTFactory] = {
    FasterWhisperSTT.name: FasterWhisperSTT,
    OpenAITranscribeSTT.name: OpenAITranscribeSTT,
    AwsTranscribeSTT.name: AwsTranscribeSTT,
}

TTS_PROVIDERS: dict[str, TTSFactory] = {
    PiperTTS.name: PiperTTS,
    OpenAISpeechTTS.name: OpenAISpeechTTS,
    PollyTTS.name: PollyTTS,
    ElevenLabsTTS.name: ElevenLabsTTS,
}


def build_stt(name: str, model: str | None, device: SpeechDevice) -> STTProvider:
    """The STT provider called ``name``, for ``model`` ("" or None: the provider's default)."""
    try:
        factory = STT_PROVIDERS[name]
    except KeyError:
        raise _unknown("speech-to-text", name, STT_PROVIDERS) from None
    return factory(model or None, device)


def build_tts(
    name: str, voice: str | None, device: SpeechDevice, *, sample_rate: int | None = None
) -> TTSProvider:
    """The TTS provider called ``name``, for ``voice`` ("" or None: the provider's default).

    ``sample_rate`` asks for chunks at that rate (e.g. 44100 for the Echo socket); None keeps
    the provider's native rate, which is then ``provider.sample_rate``.
    """
    try:
        factory = TTS_PROVIDERS[name]
    except KeyError:
        raise _unknown("text-to-speech", name, TTS_PROVIDERS) from None
    return factory(voice or None, device, sample_rate=sample_rate)


def _unknown(what: str, name: str, known: Mapping[str, object]) -> SpeechError:
    return SpeechError(
        f"unknown {what} provider {name!r}; known: {', '.join(sorted(known))}",
        kind=SpeechErrorKind.CONFIG,
    )
