"""The chatbot-server endpoints this project replaces (Conrad-X/chatbot-server), wire-compatible.

All four answer ``POST`` at the paths the old clients call, with and without the trailing
slash, for the default agent or ``?agent=<slug>``:

``/processText/``
    The reply to ``{"text": …}`` (JSON body), or to ``?text=`` with no body (the older
    form), spoken: audio streamed as the language model writes, one sentence or clause
    at a time, the first piece as soon as it is synthesised.
``/processAudioFile/``
    ``multipart/form-data`` with the recording in the field ``file``: any container FFmpeg
    reads (WAV, MP3, WebM/Opus, OGG, FLAC, …), or raw s16le mono PCM when a
    ``sample_rate`` (query or form field, 8000 to 192000) says at which rate, as the old
    clients sent it. Transcribed with the agent's speech-to-text, then answered as
    ``/processText/`` does. The transcript is in the ``X-Transcript`` header
    (percent-encoded UTF-8).
``/queryAssistant/``
    ``{"prompt": …, "address": …}`` → ``{"content", "run_id", "thread_id", "statusCode"}``.
    Each ``address`` has one stored conversation (channel "HTTP API", external id = the
    address) that later prompts continue: ELIZA's memory, the OpenAI conversation, or the
    stored history for an OpenAI-compatible server. ``thread_id`` is the OpenAI
    conversation id for OpenAI agents, otherwise our conversation id; ``run_id`` is the id
    of the stored assistant turn.
``/clearCache/``
    ``{"statusCode": 200, "status": true}``: the agent's per-address conversations start
    afresh on their next prompt (a reset queued as a Celery task after commit).

Audio formats (the reply of the two speech endpoints), chosen by ``?format=`` or else by
the first of ``audio/mpeg``, ``audio/wav`` (``audio/x-wav``, ``audio/wave``) or
``audio/pcm`` in the ``Accept`` header; MP3 otherwise:

======  ==========================  ==================================================
format  Content-Type                body
======  ==========================  ==================================================
mp3     application/octet-stream    independent MP3s (one per piece of speech) one
                                    after another, as the old server sent them
wav     audio/wav                   one WAV header (length unknown) and then PCM
pcm     application/octet-stream    s16le mono PCM
======  ==========================  ==================================================

Always mono at 22 050 Hz; ``X-Audio-Format`` (``mp3``, ``wav``, ``pcm_s16le``) and
``X-Sample-Rate`` say so too, and ``X-Conversation-Id`` names the stored conversation.

Every answered request is stored: a conversation with the user's turn and the agent's
turn, with timings (``llm_first_token_ms``, ``tts_first_audio_ms``; for audio also
``stt_ms`` and ``voice_to_voice_ms``, from the upload's arrival to the first audio) and,
with ``VOICE_STORE_AUDIO``, both sides' audio. A client that hangs up mid-reply leaves an
interrupted turn with the text whose audio it was sent. A refused request stores nothing.

Errors are JSON ``{"error": {"code", "message"}, "statusCode": <the HTTP status>}``:
unlike the old server, which answered 200 with the code in the body, bad input gets a
real 4xx status; ``statusCode`` stays in the body so that old clients reading it still
see the failure.

=========================  ======  ========================================================
code                       status  when
=========================  ======  ========================================================
``invalid_json``           400     the body is not JSON
``invalid``                400     JSON, but fields missing or of the wrong type (see
                                   ``fields``), or text that is not valid Unicode
``empty_text``             400     ``text`` or ``prompt`` is blank
``bad_format``             400     ``?format=`` is not ``mp3``, ``wav`` or ``pcm``
``no_file``                400     no ``file`` field in the upload
``not_audio``              400     the file is empty or cannot be decoded (or is raw PCM
                                   with an odd number of bytes)
``bad_sample_rate``        400     ``sample_rate`` is not a whole number in 8000 to 192000
``not_authenticated``      401     a non-public agent, and no signed-in user or token
``authentication_failed``  401     an ``Authorization: Token`` that matches no active user
``forbidden``              403     (``/queryAssistant/``) the address's conversation
                                   belongs to another signed-in user
``unknown_agent``          404     no agent with that slug (or no default agent)
``inactive_agent``         404     the agent is switched off
``method_not_allowed``     405     not ``POST``
``too_large``              413     a body over ``CHATBOT_MAX_AUDIO_MB`` (refused from its
                                   Content-Length before it is parsed) or the JSON limit,
                                   text over 10 000 characters, audio over 10 minutes
``unsupported_media_type`` 415     a body that is not JSON (text, prompt) or not
                                   ``multipart/form-data`` (audio)
``no_speech``              422     the recording was transcribed to nothing
``throttled``              429     over the ``CHATBOT_THROTTLE`` rate for this client
                                   address (``Retry-After`` says when to come back)
``overloaded``             503     the speech models' queue is full (``Retry-After``)
``speech_unavailable``     503     the agent's speech provider cannot be used
``llm_unavailable``        503     the agent's language model is misconfigured
``llm_failed``             502     (``/queryAssistant/`` only) the model failed; the body
                                   also carries the spoken fallback line as ``content``
=========================  ======  ========================================================

Access: as on the old server, public agents are open to anyone. Other agents need a
signed-in user (session) or ``Authorization: Token <key>`` (REST framework tokens). No
CSRF token is asked for: programs call these. A session counts only when the request does
not come from another site's page (its ``Origin`` is this site, one of
``CSRF_TRUSTED_ORIGINS``, or absent); from elsewhere the caller is anonymous. Requests are
throttled per client address (REST framework's ``chatbot`` rate, through the Django cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, JsonResponse, QueryDict, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from agents.llm import ChatMessage, LLMError, LLMProvider, build_provider
from agents.models import Agent
from agents.models import LLMProvider as LLMChoice
from agents.selectors import AgentNotFound, agent_get_active
from agents.speech.audio import decode_audio, decode_pcm16, float_to_pcm16_bytes
from agents.speech.base import (
    STT_SAMPLE_RATE,
    FloatAudio,
    SpeechError,
    SpeechErrorKind,
    STTProvider,
    TTSProvider,
)
from agents.speech.encode import AudioFormat, StreamEncoder
from agents.speech.executor import default_pool
from agents.speech.registry import build_stt, build_tts
from agents.speech_text import speakable
from agents.text_checks import unstorable_reason
from conversations import warmup
from conversations.models import (
    Channel,
    Conversation,
    ConversationStatus,
    EndReason,
    Role,
    Turn,
)
from conversations.services import conversation_end, conversations_end_for_channel
from conversations.stores import (
    LiveConversation,
    UserTurn,
    llm_config,
    open_conversation,
    stored_history,
)
from conversations.turn import PendingTurn, answer_turn
from conversations.voice_store import USER_AUDIO_RATE, wav_file
from voiceapp.api import error_body

log = logging.getLogger(__name__)

#: The rate of the reply audio in every format: Piper's own, and Polly's MP3 default.
OUTPUT_SAMPLE_RATE = 22_050
MAX_TEXT_CHARS = 10_000
MAX_AUDIO_SECONDS = 600
PCM_SAMPLE_RATES = range(8_000, 192_001)
#: What a multipart body may add to the file in it before Content-Length alone refuses it.
_MULTIPART_SLACK = 64 * 1024
#: The most stored messages sent as history to a model that keeps none itself.
_HISTORY_MESSAGES = 40

_MEDIA_TYPES = {
    AudioFormat.MP3: "application/octet-stream",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.PCM: "application/octet-stream",
}
_FORMAT_NAMES = {AudioFormat.MP3: "mp3", AudioFormat.WAV: "wav", AudioFormat.PCM: "pcm_s16le"}
_ACCEPTED = {
    "audio/mpeg": AudioFormat.MP3,
    "audio/mp3": AudioFormat.MP3,
    "audio/wav": AudioFormat.WAV,
    "audio/x-wav": AudioFormat.WAV,
    "audio/wave": AudioFormat.WAV,
    "audio/vnd.wave": AudioFormat.WAV,
    "audio/pcm": AudioFormat.PCM,
}
# Citation markers the old Assistants API put in answers ("【4:0†source】"); its server
# stripped them, and so do we (from what is returned, not from what is stored).
_CITATION = re.compile(r"【[^】]*】")


# --- refusals ---------------------------------------------------------------------------


class Refused(Exception):
    """A request that is answered with an error body instead of a reply."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JsonResponse:
        body = {**error_body(self.code, self.message, **self.extra), "statusCode": self.status}
        response = JsonResponse(body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def _invalid(error: ValidationError) -> Refused:
    fields: dict[str, list[str]] = {}
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        message = "This field is required." if problem["type"] == "missing" else problem["msg"]
        fields.setdefault(name, []).append(message)
    first = next(iter(fields))
    return Refused(400, "invalid", f"{first}: {fields[first][0]}", fields=fields)


# --- who is calling ---------------------------------------------------------------------


class ChatbotRateThrottle(SimpleRateThrottle):
    """REST framework's ``chatbot`` rate, per client address, kept in the Django cache."""

    scope = "chatbot"

    def get_rate(self) -> str | None:
        # Read at each request rather than at import, so a changed setting applies.
        rate: object = api_settings.DEFAULT_THROTTLE_RATES.get("chatbot")
        return rate if isinstance(rate, str) else None

    def get_ident(self, request: Request) -> str:
        # REST framework trusts X-Forwarded-For unless NUM_PROXIES is set, which would let
        # any client pick its own address here. The server (uvicorn --proxy-headers, from
        # trusted proxies only) already puts the real client in REMOTE_ADDR.
        if api_settings.NUM_PROXIES is None:
            return str(request.META.get("REMOTE_ADDR", ""))
        return super().get_ident(request)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _throttle_wait(request: HttpRequest) -> float | None:
    """None when the request may go on, else the seconds to wait (blocking: cache I/O)."""
    throttle = ChatbotRateThrottle()
    if throttle.allow_request(Request(request), APIView()):
        return None
    return throttle.wait() or 1.0


@dataclass(frozen=True)
class Caller:
    """An admitted request: the agent it talks to, and the user, if signed in."""

    agent: Agent
    user: User | None


def _token_user(key: str) -> User | None:
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None:
        return None
    user: User = token.user
    return user if user.is_active else None


async def _user(request: HttpRequest) -> User | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "token":
        user: User | None = await database_sync_to_async(_token_user)(key.strip())
        if user is None:
            raise Refused(401, "authentication_failed", "invalid token")
        return user
    session_user: object = await request.auser()
    if not isinstance(session_user, User):
        return None
    # No CSRF token is asked for (programs call these), so a browser's session counts only
    # from this site's own pages: another site's page must not make a signed-in visitor's
    # browser talk to a private agent as them. There the visitor is anonymous.
    return session_user if _from_this_site(request) else None


def _from_this_site(request: HttpRequest) -> bool:
    """Whether the request came from one of this site's pages, or not from a browser page
    at all: browsers name the page's origin in the Origin header of every POST."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    scheme = "https" if request.is_secure() else "http"
    return origin == f"{scheme}://{request.get_host()}" or origin in settings.CSRF_TRUSTED_ORIGINS


async def _admit(request: HttpRequest) -> Caller:
    if request.method != "POST":
        raise Refused(
            405, "method_not_allowed", f"use POST, not {request.method}", headers={"Allow": "POST"}
        )
    wait = await sync_to_async(_throttle_wait, thread_sensitive=False)(request)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise Refused(
            429,
            "throttled",
            f"Request was throttled. Expected available in {seconds} seconds.",
            headers={"Retry-After": str(seconds)},
            retry_after_seconds=seconds,
        )
    slug = request.GET.get("agent") or None
    try:
        agent = await database_sync_to_async(agent_get_active)(slug=slug)
    except AgentNotFound as exc:
        raise Refused(404, "inactive_agent" if exc.inactive else "unknown_agent", str(exc)) from exc
    user = await _user(request)
    if not agent.is_public and user is None:
        raise Refused(
            401,
            "not_authenticated",
            "this agent needs a signed-in user or an 'Authorization: Token <key>' header",
            headers={"WWW-Authenticate": "Token"},
        )
    return Caller(agent=agent, user=user)


View = Callable[[HttpRequest, Caller], Awaitable[HttpResponseBase]]


def chatbot_endpoint(
    view: View,
) -> Callable[[HttpRequest], Coroutine[Any, Any, HttpResponseBase]]:
    """Admit the request (method, throttle, agent, access), then run ``view``; any
    :class:`Refused` on the way becomes its error response."""

    @csrf_exempt
    @functools.wraps(view)
    async def endpoint(request: HttpRequest) -> HttpResponseBase:
        try:
            return await view(request, await _admit(request))
        except Refused as refused:
            log.info("%s refused (%s): %s", request.path, refused.code, refused.message)
            return refused.response()

    return endpoint


# --- reading requests -------------------------------------------------------------------


class _TextBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: StrictStr


class _QueryBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: StrictStr
    address: StrictStr


# C0 controls other than tab, newline and carriage return (NUL is refused before this):
# nothing to say, so they read as spaces.
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str, name: str) -> str:
    reason = unstorable_reason(value)
    if reason is not None:
        raise Refused(400, "invalid", f"{name}: {reason}", fields={name: [reason]})
    value = _CONTROL.sub(" ", value).strip()
    if not value:
        raise Refused(400, "empty_text", f"{name} is empty")
    if len(value) > MAX_TEXT_CHARS:
        raise Refused(
            413, "too_large", f"{name} has {len(value)} characters; the limit is {MAX_TEXT_CHARS}"
        )
    return value


def _body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise Refused(413, "too_large", "the body is too large") from exc


def _json_body(request: HttpRequest, raw: bytes) -> Any:
    """The JSON document in ``raw`` (an empty body counts as ``{}``: every field missing)."""
    media = request.content_type or ""
    if raw and media not in ("application/json", "") and not media.endswith("+json"):
        raise Refused(415, "unsupported_media_type", f"send application/json, not {media}")
    if not raw:
        return {}
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise Refused(400, "invalid_json", "the body is not JSON: nested too deeply") from exc
    if not isinstance(document, dict):
        raise Refused(400, "invalid", "the body must be a JSON object")
    return document


def _text_of(request: HttpRequest) -> str:
    """``{"text": …}``, or the older ``?text=`` when there is no body."""
    raw = _body(request)
    if not raw and "text" in request.GET:
        return _clean_text(request.GET["text"], "text")
    try:
        body = _TextBody.model_validate(_json_body(request, raw))
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return _clean_text(body.text, "text")


def _audio_format(request: HttpRequest) -> AudioFormat:
    asked = request.GET.get("format")
    if asked is not None:
        try:
            return AudioFormat(asked.strip().lower())
        except ValueError:
            raise Refused(400, "bad_format", "format must be one of: mp3, wav, pcm") from None
    for media_range in request.headers.get("Accept", "").split(","):
        chosen = _ACCEPTED.get(media_range.partition(";")[0].strip().lower())
        if chosen is not None:
            return chosen
    return AudioFormat.MP3


@dataclass(frozen=True)
class Upload:
    """An uploaded recording: its bytes, and the rate when they are raw PCM."""

    data: bytes
    pcm_rate: int | None


def _sample_rate(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        rate = int(raw.strip())
    except ValueError:
        rate = 0
    if rate not in PCM_SAMPLE_RATES:
        raise Refused(
            400,
            "bad_sample_rate",
            f"sample_rate must be a whole number from {PCM_SAMPLE_RATES.start} to "
            f"{PCM_SAMPLE_RATES.stop - 1}",
        )
    return rate


def _parse_multipart(request: HttpRequest) -> tuple[QueryDict, MultiValueDict[str, UploadedFile]]:
    return request.POST, request.FILES


async def _upload_of(request: HttpRequest) -> Upload:
    limit: int = settings.CHATBOT_MAX_AUDIO_BYTES
    too_large = Refused(413, "too_large", f"the upload is larger than {limit} bytes")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit + _MULTIPART_SLACK:
        raise too_large  # before parsing any of it
    if request.content_type != "multipart/form-data":
        raise Refused(
            415,
            "unsupported_media_type",
            f"send multipart/form-data with the recording in 'file', not {request.content_type}",
        )
    try:
        # Parsing reads the whole body (a temporary file for large uploads): not on the loop.
        form, files = await sync_to_async(_parse_multipart, thread_sensitive=False)(request)
    except RequestDataTooBig as exc:
        raise too_large from exc
    except (MultiPartParserError, SuspiciousOperation) as exc:
        raise Refused(400, "invalid", f"malformed multipart body: {exc}") from exc
    upload = files.get("file")
    if upload is None:
        raise Refused(400, "no_file", "no recording: send it in the multipart field 'file'")
    if upload.size is not None and upload.size > limit:
        raise too_large
    rate = _sample_rate(form.get("sample_rate", request.GET.get("sample_rate")))
    data = await sync_to_async(upload.read, thread_sensitive=False)()
    if not data:
        raise Refused(400, "not_audio", "the file is empty")
    return Upload(data=bytes(data), pcm_rate=rate)


def _decode(upload: Upload) -> FloatAudio:
    if upload.pcm_rate is not None:
        return decode_pcm16(upload.data, upload.pcm_rate)
    return decode_audio(upload.data, max_seconds=MAX_AUDIO_SECONDS)


async def _heard_audio(upload: Upload) -> FloatAudio:
    try:
        audio = await default_pool().run(_decode, upload)
    except SpeechError as exc:
        raise _speech_refusal(exc) from exc
    seconds = len(audio) / STT_SAMPLE_RATE
    if seconds > MAX_AUDIO_SECONDS:
        raise Refused(
            413,
            "too_large",
            f"the recording is {seconds:.0f} s long; the limit is {MAX_AUDIO_SECONDS} s",
        )
    return audio


def _speech_refusal(exc: SpeechError) -> Refused:
    if exc.kind is SpeechErrorKind.TOO_LONG:
        return Refused(413, "too_large", f"{exc}; the limit is {MAX_AUDIO_SECONDS} s")
    if exc.kind is SpeechErrorKind.BAD_AUDIO:
        log.info("undecodable upload: %s", exc)
        return Refused(400, "not_audio", "the file is not audio this server can decode")
    if exc.kind is SpeechErrorKind.OVERLOADED:
        return Refused(
            503, "overloaded", "the speech models are busy; try again", headers={"Retry-After": "1"}
        )
    log.error("speech provider failed: %r", exc)
    return Refused(503, "speech_unavailable", f"speech is unavailable: {exc}")


# --- models -----------------------------------------------------------------------------


async def _tts_for(agent: Agent) -> TTSProvider:
    device = warmup.speech_device()
    try:
        tts = await asyncio.to_thread(
            build_tts, agent.tts_provider, agent.tts_voice, device, sample_rate=OUTPUT_SAMPLE_RATE
        )
        await warmup.ensure(tts, "tts", agent.tts_provider, agent.tts_voice)
    except SpeechError as exc:
        raise _speech_refusal(exc) from exc
    return tts


async def _stt_for(agent: Agent) -> STTProvider:
    device = warmup.speech_device()
    try:
        stt = await asyncio.to_thread(build_stt, agent.stt_provider, agent.stt_model, device)
        await warmup.ensure(stt, "stt", agent.stt_provider, agent.stt_model)
    except SpeechError as exc:
        raise _speech_refusal(exc) from exc
    return stt


async def _provider_for(agent: Agent) -> LLMProvider:
    try:
        return build_provider(await llm_config(agent))
    except LLMError as exc:
        log.error("agent %s cannot answer: %r", agent.slug, exc)
        raise Refused(
            503, "llm_unavailable", f"the agent's language model cannot be used: {exc}"
        ) from exc


# --- the spoken reply -------------------------------------------------------------------


@dataclass
class SpokenRequest:
    """What a speech endpoint answers: the user's words, and how to send the reply."""

    caller: Caller
    user: UserTurn
    audio_format: AudioFormat
    received_at: float  # time.monotonic() when the request was in
    user_audio: ContentFile[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


async def _spoken_reply(request: SpokenRequest, tts: TTSProvider) -> StreamingHttpResponse:
    provider = await _provider_for(request.caller.agent)
    live = await open_conversation(
        request.caller.agent, Channel.HTTP_API, None, request.caller.user
    )
    encoder = StreamEncoder(request.audio_format, OUTPUT_SAMPLE_RATE)
    response = StreamingHttpResponse(
        _audio_body(request, live, provider, tts, encoder),
        content_type=_MEDIA_TYPES[request.audio_format],
    )
    response["X-Audio-Format"] = _FORMAT_NAMES[request.audio_format]
    response["X-Sample-Rate"] = str(OUTPUT_SAMPLE_RATE)
    response["X-Conversation-Id"] = live.conversation_id
    for name, value in request.headers.items():
        response[name] = value
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let reverse proxies pass the audio through at once
    return response


async def _audio_body(
    request: SpokenRequest,
    live: LiveConversation,
    provider: LLMProvider,
    tts: TTSProvider,
    encoder: StreamEncoder,
) -> AsyncIterator[bytes]:
    """The response body: the model writes clauses into a queue while this synthesises
    and sends the earlier ones. Whatever ends it (the reply is done, the client hangs up,
    synthesis fails), the exchange is stored once, with the text whose audio was sent."""
    turn = PendingTurn(live, request.user)
    answer = turn.answer
    clauses: asyncio.Queue[str | None] = asyncio.Queue()
    first_clause_at: float | None = None

    async def emit(clause: str) -> None:
        nonlocal first_clause_at
        if first_clause_at is None:
            first_clause_at = time.monotonic()
        await clauses.put(clause)

    async def produce() -> None:
        # Stored below, once it is known how much of the reply's audio was delivered.
        try:
            messages = [ChatMessage(role="user", content=request.user.text)]
            await turn.produce(provider, messages, emit, transform=speakable)
        finally:
            clauses.put_nowait(None)

    producer = asyncio.create_task(produce())
    reply_pcm = bytearray()
    first_audio_at: float | None = None
    delivered = 0  # clauses whose audio was all handed to the server
    finished = False
    try:
        if header := encoder.header():
            yield header
        while (clause := await clauses.get()) is not None:
            speech = tts.synthesize(clause)
            try:
                async for chunk in speech:
                    if first_audio_at is None:
                        first_audio_at = time.monotonic()
                    reply_pcm += chunk.pcm
                    if data := encoder.feed(chunk.pcm):
                        yield data
            finally:
                if isinstance(speech, AsyncGenerator):
                    await speech.aclose()  # stops the synthesis of a clause left half-way
            if data := encoder.flush():
                yield data
            delivered += 1
        await producer
        finished = True
    except SpeechError as exc:
        # The status line is gone already: the body just ends, the turn records why.
        log.warning("text-to-speech failed in %s: %s", live.conversation_id, exc)
        answer.error = answer.error or f"text-to-speech failed: {exc}"
        finished = True
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        elif not producer.cancelled() and (failure := producer.exception()) is not None:
            answer.error = answer.error or f"internal: {failure!r}"
        if not finished:  # the client went away (or the reply broke): keep what it heard
            answer.cancelled = True
            del answer.sent[delivered:]
        timings: dict[str, int | None] = {}
        if first_audio_at is not None and first_clause_at is not None:
            timings["tts_first_audio_ms"] = max(0, round((first_audio_at - first_clause_at) * 1000))
        if first_audio_at is not None and request.user_audio is not None:
            timings["voice_to_voice_ms"] = round((first_audio_at - request.received_at) * 1000)
        store_audio = settings.VOICE_STORE_AUDIO

        async def store_and_end() -> None:
            await turn.store(
                timings=timings,
                user_audio=request.user_audio if store_audio else None,
                reply_audio=wav_file(bytes(reply_pcm), OUTPUT_SAMPLE_RATE, "reply.wav")
                if store_audio and reply_pcm
                else None,
            )
            # A one-request conversation: it ends with its only exchange.
            await database_sync_to_async(_end)(live.conversation_id)

        await asyncio.shield(store_and_end())


def _end(conversation_id: str) -> None:
    conversation_end(
        conversation=Conversation.objects.get(pk=conversation_id),
        status=ConversationStatus.ENDED,
    )


# --- the views --------------------------------------------------------------------------


@chatbot_endpoint
async def process_text(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """``POST /processText/``: the spoken reply to ``{"text": …}`` (or ``?text=``)."""
    received_at = time.monotonic()
    audio_format = _audio_format(request)
    text = _text_of(request)
    tts = await _tts_for(caller.agent)
    return await _spoken_reply(
        SpokenRequest(caller, UserTurn(text=text), audio_format, received_at), tts
    )


@chatbot_endpoint
async def process_audio_file(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """``POST /processAudioFile/``: the spoken reply to a recording (multipart ``file``)."""
    received_at = time.monotonic()
    audio_format = _audio_format(request)
    upload = await _upload_of(request)
    audio = await _heard_audio(upload)
    stt, tts = await asyncio.gather(_stt_for(caller.agent), _tts_for(caller.agent))
    started = time.monotonic()
    try:
        transcript = await stt.transcribe(audio)
    except SpeechError as exc:
        raise _speech_refusal(exc) from exc
    stt_ms = round((time.monotonic() - started) * 1000)
    text = _CONTROL.sub(" ", transcript.text).strip()
    if not text:
        raise Refused(422, "no_speech", "no speech heard in the recording")
    user_audio = wav_file(float_to_pcm16_bytes(audio), USER_AUDIO_RATE, "user.wav")
    return await _spoken_reply(
        SpokenRequest(
            caller,
            UserTurn(text=text, stt_ms=stt_ms),
            audio_format,
            received_at,
            user_audio=user_audio,
            headers={"X-Transcript": quote(text)},
        ),
        tts,
    )


# One conversation per address: its prompts are answered one at a time in this process,
# so ELIZA's memory and the turn order stay consistent and run_id names this answer.
_address_locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def _address_lock(agent: Agent, address: str) -> asyncio.Lock:
    key = (agent.pk, address)
    lock = _address_locks.get(key)
    if lock is None:
        lock = _address_locks[key] = asyncio.Lock()
    return lock


def _address_owner(agent_id: int, address: str) -> int | None:
    """The id of the user whose conversation ``address`` is, if it is anyone's."""
    owner: int | None = (
        Conversation.objects.filter(
            agent_id=agent_id,
            channel=Channel.HTTP_API,
            external_id=address,
            status=ConversationStatus.ACTIVE,
        )
        .values_list("user_id", flat=True)
        .first()
    )
    return owner


def _last_answer_id(conversation_id: str) -> int | None:
    turn_id: int | None = (
        Turn.objects.filter(conversation_id=conversation_id, role=Role.ASSISTANT)
        .order_by("-index")
        .values_list("pk", flat=True)
        .first()
    )
    return turn_id


@chatbot_endpoint
async def query_assistant(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """``POST /queryAssistant/``: a text answer in the address's ongoing conversation."""
    try:
        body = _QueryBody.model_validate(_json_body(request, _body(request)))
    except ValidationError as exc:
        raise _invalid(exc) from exc
    prompt = _clean_text(body.prompt, "prompt")
    address = body.address.strip()
    if not 0 < len(address) <= 255 or _CONTROL.search(address) or unstorable_reason(address):
        rule = "1 to 255 characters of valid Unicode, no control characters"
        raise Refused(400, "invalid", f"address: {rule}", fields={"address": [rule]})
    provider = await _provider_for(caller.agent)
    async with _address_lock(caller.agent, address):
        owner = await database_sync_to_async(_address_owner)(caller.agent.pk, address)
        if owner is not None and (caller.user is None or caller.user.pk != owner):
            # Its history answers the next prompt: a user's conversation stays theirs.
            raise Refused(403, "forbidden", "this address's conversation belongs to another user")
        live = await open_conversation(caller.agent, Channel.HTTP_API, address, caller.user)
        history: list[ChatMessage] = []
        if live.llm.provider == LLMChoice.OPENAI_COMPATIBLE:
            history = await database_sync_to_async(stored_history)(
                live.conversation_id, last=_HISTORY_MESSAGES
            )
        turn = PendingTurn(live, UserTurn(text=prompt))

        async def ignore(clause: str) -> None:
            pass

        messages = [*history, ChatMessage(role="user", content=prompt)]
        answer = await answer_turn(turn, provider, messages, ignore)
        run_id = await database_sync_to_async(_last_answer_id)(live.conversation_id)
    content = _CITATION.sub("", answer.text).strip()
    reply: dict[str, Any] = {
        "content": content,
        "run_id": str(run_id),
        "thread_id": live.context.provider_conversation_id or live.conversation_id,
        "statusCode": 200,
    }
    if answer.error:
        reply["statusCode"] = 502
        reply.update(error_body("llm_failed", answer.error))
        return JsonResponse(reply, status=502)
    return JsonResponse(reply)


def _clear(agent_id: int) -> None:
    conversations_end_for_channel(
        agent_id=agent_id, channel=Channel.HTTP_API, reason=EndReason.MEMORY_CLEARED
    )


@chatbot_endpoint
async def clear_cache(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    """``POST /clearCache/``: every address of the agent starts a fresh conversation, with
    a new ``thread_id``, at its next ``/queryAssistant/`` (the ended ones stay for review)."""
    await database_sync_to_async(_clear)(caller.agent.pk)
    return JsonResponse({"statusCode": 200, "status": True})
