"""Text to speech with ElevenLabs' streaming-input WebSocket, as Echo used it.

``wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=
pcm_16000``: the first message is ``{"text": " "}`` with the key and voice settings, then the
text (ending in a space), then ``{"text": ""}``, which makes the service speak whatever it
still holds and end the stream. It answers JSON messages whose ``audio`` is base64 PCM (s16le
mono 16 kHz here, a format every plan has) and, last, one with ``isFinal: true``. Each piece
is handed on as it arrives, resampled with one soxr stream to the rate the caller wants.

One socket per :meth:`ElevenLabsTTS.synthesize` call. Echo kept one per conversation, which
saves the connection set-up (~100-200 ms) on every sentence but needs a keep-alive: the
service drops a socket after 20 s without a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import urllib.parse
from collections.abc import AsyncGenerator, Mapping

import pydantic
import websockets
from websockets.asyncio.client import ClientConnection, connect

from .base import AudioChunk, SpeechDevice, SpeechError, SpeechErrorKind, TTSProvider
from .cloud_audio import PCMStream

API_KEY_VARIABLE = "ELEVENLABS_API_KEY"
BASE_URL_VARIABLE = "ELEVENLABS_BASE_URL"
DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice (Echo's default)
DEFAULT_MODEL = "eleven_flash_v2_5"  # the lowest-latency model
DEFAULT_VOICE_SETTINGS: Mapping[str, float] = {"stability": 0.5, "similarity_boost": 0.8}
#: The ``output_format`` asked for and its sample rate.
OUTPUT_FORMAT = "pcm_16000"
ELEVENLABS_PCM_RATE = 16_000


class ServerMessage(pydantic.BaseModel):
    """One JSON message from the stream-input socket (alignment data is not read)."""

    model_config = pydantic.ConfigDict(extra="ignore", populate_by_name=True)

    audio: str | None = None  # base64 PCM
    is_final: bool | None = pydantic.Field(default=None, alias="isFinal")
    # On a failure the service sends a message with these, then closes the socket.
    message: str | None = None
    error: str | None = None
    code: int | None = None


def socket_base_url(value: str) -> str:
    """``ELEVENLABS_BASE_URL`` as a ws(s):// origin; http(s):// is mapped to ws(s)://."""
    parts = urllib.parse.urlsplit(value.strip().rstrip("/"))
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise SpeechError(
            f"{BASE_URL_VARIABLE} must be a ws://, wss://, http:// or https:// URL, not {value!r}",
            kind=SpeechErrorKind.CONFIG,
        )
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, "", ""))


class ElevenLabsTTS(TTSProvider):
    """Text to speech through ElevenLabs' streaming-input WebSocket, as s16le mono chunks.

    ``voice`` is an ElevenLabs voice id (Echo's default "Rachel" unless configured). The key
    comes from ``ELEVENLABS_API_KEY`` when the provider is built (a missing key is a
    ``config`` error then); ``ELEVENLABS_BASE_URL`` replaces ``wss://api.elevenlabs.io``.
    ``sample_rate`` defaults to the 16 kHz asked of the service. ``timeout_s`` bounds the
    connection and every wait for the next message. ``device`` is accepted and ignored.
    """

    name = "elevenlabs"

    def __init__(
        self,
        voice: str | None = None,
        device: SpeechDevice | None = None,
        *,
        sample_rate: int | None = None,
        model: str = DEFAULT_MODEL,
        voice_settings: Mapping[str, float] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        api_key = os.environ.get(API_KEY_VARIABLE, "").strip()
        if not api_key:
            raise SpeechError(
                f"the {self.name} speech provider needs an ElevenLabs API key: set the "
                f"{API_KEY_VARIABLE} environment variable",
                kind=SpeechErrorKind.CONFIG,
            )
        self._api_key = api_key
        self.base_url = socket_base_url(os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL)
        self.voice = voice or DEFAULT_VOICE
        self.model = model
        self.voice_settings = dict(voice_settings or DEFAULT_VOICE_SETTINGS)
        self.sample_rate = sample_rate or ELEVENLABS_PCM_RATE
        self.timeout_s = timeout_s

    @property
    def url(self) -> str:
        """The socket's URL for this voice and model."""
        query = urllib.parse.urlencode({"model_id": self.model, "output_format": OUTPUT_FORMAT})
        voice = urllib.parse.quote(self.voice, safe="")
        return f"{self.base_url}/v1/text-to-speech/{voice}/stream-input?{query}"

    async def synthesize(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """Yield the speech for ``text`` as the service streams it.

        Raises :class:`SpeechError`: ``auth``, ``config`` and a spent quota are not
        retryable; rate limits, timeouts and a dropped or refused connection are. Closing the
        generator closes the socket.
        """
        text = " ".join(text.split())
        if not text:
            return
        stream = PCMStream(ELEVENLABS_PCM_RATE, self.sample_rate)
        what = f"ElevenLabs ({self.model}, voice {self.voice!r})"
        try:
            async with connect(self.url, open_timeout=self.timeout_s, close_timeout=1.0) as socket:
                await self._send_text(socket, text)
                while True:
                    message = await self._receive(socket, what)
                    if message.error or (message.message and not message.audio):
                        raise _error_from_message(message, what)
                    pcm = _decode(message.audio, what) if message.audio else b""
                    if (chunk := stream.feed(pcm)) is not None:
                        yield chunk
                    if message.is_final:
                        break
        except websockets.exceptions.InvalidStatus as exc:
            raise _error_from_status(exc.response.status_code, what) from exc
        except websockets.exceptions.ConnectionClosedError as exc:
            raise _error_from_close(exc, what) from exc
        except websockets.exceptions.ConnectionClosedOK:
            pass  # the service ended the stream without an isFinal message: that is the end
        except websockets.exceptions.InvalidHandshake as exc:
            raise SpeechError(
                f"{what}: the WebSocket handshake failed: {exc}",
                kind=SpeechErrorKind.UNAVAILABLE,
                retryable=True,
            ) from exc
        except TimeoutError as exc:
            raise SpeechError(
                f"{what}: no answer within {self.timeout_s:g} s",
                kind=SpeechErrorKind.TIMEOUT,
                retryable=True,
            ) from exc
        except OSError as exc:
            raise SpeechError(
                f"{what}: cannot connect to {self.base_url}: {exc}",
                kind=SpeechErrorKind.UNAVAILABLE,
                retryable=True,
            ) from exc
        if (chunk := stream.flush()) is not None:
            yield chunk

    async def _send_text(self, socket: ClientConnection, text: str) -> None:
        # The whole text is known up front, so all three messages go at once; the service
        # starts speaking while the audio is being read.
        await socket.send(
            json.dumps(
                {"text": " ", "voice_settings": self.voice_settings, "xi_api_key": self._api_key}
            )
        )
        await socket.send(json.dumps({"text": text + " "}))
        await socket.send(json.dumps({"text": ""}))

    async def _receive(self, socket: ClientConnection, what: str) -> ServerMessage:
        async with asyncio.timeout(self.timeout_s):
            raw = await socket.recv()
        try:
            return ServerMessage.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            raise SpeechError(
                f"{what}: unexpected message from the service: {str(raw)[:200]!r}",
                kind=SpeechErrorKind.UNAVAILABLE,
            ) from exc


def _decode(audio: str, what: str) -> bytes:
    try:
        return base64.b64decode(audio, validate=True)
    except binascii.Error as exc:
        raise SpeechError(
            f"{what}: the service sent audio that is not base64", kind=SpeechErrorKind.UNAVAILABLE
        ) from exc


def _error_from_message(message: ServerMessage, what: str) -> SpeechError:
    # The service's error codes are not documented as a list; these cover the ones its
    # docs and SDK show (invalid key, quota, concurrency, input timeout, bad voice/model).
    detail = f"{what} failed: {message.message or message.error}"
    found = f"{message.error or ''} {message.message or ''}".lower()
    if "quota" in found:  # waiting does not refill a quota
        return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED)
    if any(word in found for word in ("api key", "api_key", "unauthori", "authenticat")):
        return SpeechError(detail, kind=SpeechErrorKind.AUTH)
    if any(word in found for word in ("rate", "too_many", "too many", "concurren")):
        return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED, retryable=True)
    if "timeout" in found:
        return SpeechError(detail, kind=SpeechErrorKind.TIMEOUT, retryable=True)
    if any(word in found for word in ("voice", "model", "format", "invalid")):
        return SpeechError(detail, kind=SpeechErrorKind.CONFIG)
    return SpeechError(detail, kind=SpeechErrorKind.UNAVAILABLE, retryable=True)


def _error_from_status(status: int, what: str) -> SpeechError:
    detail = f"{what}: the service refused the connection (HTTP {status})"
    if status in (401, 403):
        return SpeechError(detail, kind=SpeechErrorKind.AUTH)
    if status == 429:
        return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED, retryable=True)
    if status >= 500:
        return SpeechError(detail, kind=SpeechErrorKind.UNAVAILABLE, retryable=True)
    return SpeechError(detail, kind=SpeechErrorKind.CONFIG)  # e.g. 404: no such voice


def _error_from_close(exc: websockets.exceptions.ConnectionClosedError, what: str) -> SpeechError:
    close = exc.rcvd
    code = close.code if close is not None else None
    reason = close.reason if close is not None else "no close frame"
    detail = f"{what}: the service closed the socket ({code}: {reason or 'no reason'})"
    if code == 1008:  # policy violation: the service's answer to a bad key or request
        if reason:
            return _error_from_message(ServerMessage(message=reason), what)
        return SpeechError(detail, kind=SpeechErrorKind.CONFIG)
    return SpeechError(detail, kind=SpeechErrorKind.UNAVAILABLE, retryable=True)
