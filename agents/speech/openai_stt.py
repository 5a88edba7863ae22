"""Speech to text with OpenAI's transcription endpoint (``POST /v1/audio/transcriptions``).

Each utterance the VAD cuts is sent whole, as a 16 kHz mono 16-bit WAV made in memory: the
smallest lossless upload the endpoint takes (a second of speech is 32 kB). The call is plain
async HTTP, so nothing here needs the inference pool.
"""

from __future__ import annotations

import time

import openai

from .audio import as_float_audio
from .base import STT_SAMPLE_RATE, FloatAudio, SpeechDevice, STTProvider, Transcript
from .cloud_audio import wav_bytes
from .openai_common import OpenAIEndpoint, speech_error_from_openai

DEFAULT_MODEL = "gpt-4o-mini-transcribe"


class OpenAITranscribeSTT(STTProvider):
    """Speech to text through OpenAI (``gpt-4o-mini-transcribe`` unless a model is configured).

    The key is read from ``OPENAI_API_KEY`` when the provider is built (a missing key is a
    ``config`` error then) and the endpoint from ``OPENAI_BASE_URL`` when that is set.
    ``device`` is accepted for the registry's sake and ignored: the model runs at OpenAI.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        device: SpeechDevice | None = None,
        *,
        language: str | None = "en",
        timeout_s: float = 15.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self.endpoint = OpenAIEndpoint.from_environment(self.name)
        self.model = model or DEFAULT_MODEL
        self.language = language
        self.timeout_s = timeout_s

    async def transcribe(self, audio: FloatAudio) -> Transcript:
        """Transcribe one utterance (float32 mono, 16 kHz).

        Raises :class:`SpeechError`: ``timeout``, ``unavailable`` and ``rate_limited`` (unless
        the quota is spent) are retryable; ``auth``, ``config`` and ``bad_audio`` are not.
        """
        samples = as_float_audio(audio)
        if samples.size == 0:
            return Transcript(text="", duration_ms=0, inference_ms=0)
        client = self.endpoint.client(self.timeout_s)
        started = time.perf_counter()
        try:
            result = await client.audio.transcriptions.create(
                file=("utterance.wav", wav_bytes(samples), "audio/wav"),
                model=self.model,
                response_format="json",
                language=self.language or openai.omit,
                timeout=self.timeout_s,
            )
        except openai.OpenAIError as exc:
            raise speech_error_from_openai(exc, f"OpenAI transcription ({self.model})") from exc
        return Transcript(
            text=result.text.strip(),
            duration_ms=round(samples.size * 1000 / STT_SAMPLE_RATE),
            inference_ms=round((time.perf_counter() - started) * 1000),
        )
