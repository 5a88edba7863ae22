"""The speech layer's interfaces: what every STT and TTS provider accepts and returns.

Providers are one file each (``faster_whisper.py`` and ``piper.py`` embedded;
``openai_stt.py``, ``openai_tts.py``, ``aws_transcribe.py``, ``aws_polly.py`` and
``elevenlabs.py`` in the cloud) and are built by name through
:mod:`agents.speech.registry`. Nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import numpy.typing as npt

#: The one sample rate every STT provider accepts (what Whisper and Silero expect).
STT_SAMPLE_RATE = 16_000

FloatAudio = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpeechDevice:
    """Where and how local models run; built once from settings.

    ``cpu_threads`` is the intra-op thread count of *one* inference call. On a 2-core box the
    measured optimum is 1 thread per call with 2 calls in parallel (see the pool), not 2
    threads per call.
    """

    device: str = "cpu"  # "cuda" when a GPU is present
    compute_type: str = "int8"
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', not {self.device!r}")
        if self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be at least 1, not {self.cpu_threads}")


@dataclass(frozen=True, slots=True)
class Transcript:
    """The text of one utterance, with how long it was and how long recognition took."""

    text: str
    duration_ms: int
    inference_ms: int


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of synthesised speech: signed 16-bit little-endian mono PCM."""

    pcm: bytes
    sample_rate: int

    @property
    def samples(self) -> int:
        """Number of samples in the chunk."""
        return len(self.pcm) // 2

    @property
    def duration_ms(self) -> float:
        """Playback length of the chunk."""
        return self.samples * 1000 / self.sample_rate


class SpeechErrorKind(StrEnum):
    """Why a speech call failed; callers branch on this, not on message text."""

    CONFIG = "config"  # bad provider name, model or voice; fix the configuration
    BAD_AUDIO = "bad_audio"  # input audio cannot be decoded or has the wrong shape
    TOO_LONG = "too_long"  # input audio is longer than the caller accepts
    OVERLOADED = "overloaded"  # the inference queue is full; try again shortly
    INFERENCE = "inference"  # the model failed on this input
    UNAVAILABLE = "unavailable"  # a remote service or the pool is down
    TIMEOUT = "timeout"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"


class SpeechError(Exception):
    """A failure of the speech layer that callers are expected to handle.

    ``retryable`` says whether the same call may succeed if repeated later (overload, a
    network blip), as opposed to a configuration or input error that will fail again.
    """

    def __init__(self, message: str, *, kind: SpeechErrorKind, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, kind={self.kind.value!r}, "
            f"retryable={self.retryable})"
        )


class STTProvider(ABC):
    """Speech to text: one utterance in, its text out."""

    name: ClassVar[str]

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load models now, so the first utterance does not pay for it."""

    @abstractmethod
    async def transcribe(self, audio: FloatAudio) -> Transcript:
        """Transcribe one utterance of float32 mono audio at 16 kHz (:data:`STT_SAMPLE_RATE`).

        Raises :class:`SpeechError` on bad input, overload or model failure.
        """


class TTSProvider(ABC):
    """Text to speech, streamed so that playback can start before synthesis ends."""

    name: ClassVar[str]
    #: The rate of every :class:`AudioChunk` this provider yields.
    sample_rate: int

    async def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load the voice now, so the first reply does not pay for it."""

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Yield audio for ``text`` in order, the first chunk as early as possible.

        Implementations are async generators. Cancelling the consuming task or calling
        ``aclose()`` must stop further synthesis.
        """
