"""Text to speech with Amazon Polly, streamed as the audio downloads.

The seed server asked Polly for one MP3 per sentence and read each whole before sending it
(and did so on the event loop). Here Polly is asked for raw PCM (s16le mono, 16 kHz, the
best rate Polly's PCM output has), and its ``AudioStream`` is read a piece at a time on a
worker thread, each piece handed on as soon as it arrives and resampled with one soxr stream
to the rate the caller wants.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

from .aws_common import aws_client, run_boto
from .base import AudioChunk, SpeechDevice, SpeechError, SpeechErrorKind, TTSProvider
from .cloud_audio import PCMStream

#: Polly's PCM output rates are 8000 and 16000 Hz; 16 kHz is the better of the two.
POLLY_PCM_RATE = 16_000
DEFAULT_VOICE = "Joanna"
ENGINES = ("neural", "standard")
#: Polly bills and accepts at most 3000 characters of text per request.
MAX_CHARS = 3000

_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+")


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at sentence ends if possible.

    The realtime pipeline sends a sentence or two at a time, so this almost always returns
    ``[text]``; it keeps a long reply from failing outright.
    """
    text = " ".join(text.split())
    pieces: list[str] = []
    while len(text) > limit:
        window = text[: limit + 1]
        ends = [m.start() for m in _SENTENCE_END.finditer(window)]
        cut = ends[-1] if ends else window.rfind(" ")
        if cut <= 0:
            cut = limit  # one unbroken run of characters: cut it where it must be cut
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


class PollyTTS(TTSProvider):
    """Text to speech with Amazon Polly, streamed as s16le mono chunks.

    ``voice`` is a Polly voice id (``Joanna`` unless configured); ``engine`` is ``neural``
    (the default) or ``standard``, and the voice must support it. ``sample_rate`` defaults to
    Polly's 16 kHz. Credentials and region come from the standard AWS environment (see
    :mod:`agents.speech.aws_common`). ``device`` is accepted for the registry and ignored.
    """

    name = "aws_polly"

    def __init__(
        self,
        voice: str | None = None,
        device: SpeechDevice | None = None,
        *,
        sample_rate: int | None = None,
        engine: str = "neural",
        timeout_s: float = 10.0,
        chunk_ms: int = 100,
    ) -> None:
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        if engine not in ENGINES:
            raise SpeechError(
                f"Polly engine must be one of {', '.join(ENGINES)}, not {engine!r}",
                kind=SpeechErrorKind.CONFIG,
            )
        if timeout_s <= 0 or chunk_ms <= 0:
            raise ValueError("timeout_s and chunk_ms must be positive")
        self.voice = voice or DEFAULT_VOICE
        self.engine = engine
        self.sample_rate = sample_rate or POLLY_PCM_RATE
        self.chunk_bytes = POLLY_PCM_RATE * 2 * chunk_ms // 1000
        self.client = aws_client("polly", self.name, timeout_s=timeout_s)

    async def synthesize(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """Yield the speech for ``text`` as Polly streams it.

        Raises :class:`SpeechError` (kinds as :func:`speech_error_from_boto` maps them). Every
        blocking call runs on a worker thread; closing the generator stops after the piece
        being read and releases the HTTP connection.
        """
        stream = PCMStream(POLLY_PCM_RATE, self.sample_rate)
        what = f"Polly ({self.engine} voice {self.voice!r})"
        for piece in split_text(text):
            audio = await run_boto(what, self._request, piece)
            try:
                while data := await run_boto(what, audio.read, self.chunk_bytes):
                    if (chunk := stream.feed(data)) is not None:
                        yield chunk
            finally:
                # Quick (it drops the connection when unread data is left), so no thread.
                audio.close()
        if (chunk := stream.flush()) is not None:
            yield chunk

    def _request(self, text: str) -> Any:
        response = self.client.synthesize_speech(
            Text=text,
            OutputFormat="pcm",
            SampleRate=str(POLLY_PCM_RATE),
            Engine=self.engine,
            VoiceId=self.voice,
        )
        return response["AudioStream"]
