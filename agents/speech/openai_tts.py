"""Text to speech with OpenAI's speech endpoint (``POST /v1/audio/speech``), streamed.

``response_format="pcm"`` makes the endpoint answer raw s16le mono at 24 kHz with no header,
and the streaming response hands it over as it arrives, so the first chunk can be played
while the rest of the sentence is still being generated. Chunks are resampled with one soxr
stream to the rate the caller asked for.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2
import openai

from .base import AudioChunk, SpeechDevice, SpeechError, SpeechErrorKind, TTSProvider
from .cloud_audio import PCMStream
from .openai_common import OpenAIEndpoint, speech_error_from_openai

#: The rate of OpenAI's ``pcm`` response format.
OPENAI_PCM_RATE = 24_000
DEFAULT_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"


class OpenAISpeechTTS(TTSProvider):
    """Text to speech through OpenAI, streamed as s16le mono chunks.

    ``voice`` is a built-in voice name (``alloy`` unless configured). The key is read from
    ``OPENAI_API_KEY`` when the provider is built (a missing key is a ``config`` error then)
    and the endpoint from ``OPENAI_BASE_URL`` when that is set. ``sample_rate`` defaults to
    the service's 24 kHz. ``device`` is accepted for the registry's sake and ignored.
    """

    name = "openai"

    def __init__(
        self,
        voice: str | None = None,
        device: SpeechDevice | None = None,
        *,
        sample_rate: int | None = None,
        model: str = DEFAULT_MODEL,
        timeout_s: float = 15.0,
        chunk_ms: int = 100,
    ) -> None:
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        if timeout_s <= 0 or chunk_ms <= 0:
            raise ValueError("timeout_s and chunk_ms must be positive")
        self.endpoint = OpenAIEndpoint.from_environment(self.name)
        self.voice = voice or DEFAULT_VOICE
        self.model = model
        self.sample_rate = sample_rate or OPENAI_PCM_RATE
        self.timeout_s = timeout_s
        # Bytes per read: whatever has arrived up to this much is handed on as one chunk.
        self.chunk_bytes = OPENAI_PCM_RATE * 2 * chunk_ms // 1000

    async def synthesize(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """Yield the speech for ``text`` as it streams in.

        Raises :class:`SpeechError` (see :func:`speech_error_from_openai` for the kinds),
        possibly after some chunks were yielded if the stream breaks. Closing the generator
        closes the HTTP response, which stops the download.
        """
        text = text.strip()
        if not text:
            return
        client = self.endpoint.client(self.timeout_s)
        stream = PCMStream(OPENAI_PCM_RATE, self.sample_rate)
        what = f"OpenAI speech ({self.model}, voice {self.voice!r})"
        try:
            async with client.audio.speech.with_streaming_response.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="pcm",
                timeout=self.timeout_s,
            ) as response:
                async for data in response.iter_bytes(self.chunk_bytes):
                    if (chunk := stream.feed(data)) is not None:
                        yield chunk
        except openai.OpenAIError as exc:
            raise speech_error_from_openai(exc, what) from exc
        # Once the body is streaming, the SDK lets the HTTP library's own errors through.
        except httpx2.TimeoutException as exc:
            raise SpeechError(
                f"{what}: the audio stream stalled", kind=SpeechErrorKind.TIMEOUT, retryable=True
            ) from exc
        except httpx2.TransportError as exc:
            raise SpeechError(
                f"{what}: the audio stream broke off: {exc!r}",
                kind=SpeechErrorKind.UNAVAILABLE,
                retryable=True,
            ) from exc
        if (chunk := stream.flush()) is not None:
            yield chunk
