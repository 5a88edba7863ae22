"""The chatbot-server endpoints (/processText/, /processAudioFile/, /queryAssistant/,
/clearCache/) through the ASGI application, with the real ELIZA, Piper and faster-whisper.

Requests are driven by a small ASGI client (``call``) so that the test sees each body chunk
as Django sends it and can hang up in the middle, as a real client would. Speech is made
with the bundled voice and heard back with faster-whisper (``testing.speech``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import av
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import Client
from django.test.client import encode_multipart
from rest_framework.authtoken.models import Token

from agents.eliza import Eliza, parse_script, sentence_case
from agents.llm import ConversationContext, LLMConfig, LLMProvider, LLMRequest
from agents.models import Agent
from agents.models import LLMProvider as LLMChoice
from agents.speech.audio import float_to_pcm16_bytes, resample
from conversations import chatbot
from conversations.models import Channel, Conversation, Turn
from conversations.services import conversation_start
from testing.fake_openai import FakeOpenAI
from testing.speech import hear, same_words, say, silence
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
DOCTOR = (SHARED / "DOCTOR-1966.txt").read_text()
REFERENCE = json.loads((SHARED / "conversations.json").read_text())["conversations"]
BOUNDARY = "chatbot-test-boundary"
RATE = chatbot.OUTPUT_SAMPLE_RATE


# --- an ASGI client that sees every chunk ------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    chunks: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    path: str,
    *,
    body: bytes = b"",
    content_type: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    on_chunk: Callable[[list[bytes]], None] | None = None,
    hang_up: Callable[[list[bytes]], bool] | None = None,
    client: str = "127.0.0.1",
) -> Reply:
    """One HTTP request through the project's ASGI application, as uvicorn makes it.

    ``hang_up`` is asked after every body chunk whether the client disconnects now.
    """
    raw_headers = [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())]
    if content_type is not None:
        raw_headers.append((b"content-type", content_type.encode()))
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode(), value.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": (client, 50_000),
        "server": ("testserver", 80),
    }
    gone = asyncio.Event()
    body_sent = False
    reply = Reply(0, {}, [])

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            reply.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message.get("body"):
            reply.chunks.append(message["body"])
            if on_chunk is not None:
                on_chunk(reply.chunks)
            if hang_up is not None and hang_up(reply.chunks):
                gone.set()
        elif not message.get("more_body", False):
            gone.set()  # the response is complete: the connection's end is no news

    await application(scope, receive, send)
    return reply


async def post_json(path: str, document: Any, **kwargs: Any) -> Reply:
    return await call(
        path, body=json.dumps(document).encode(), content_type="application/json", **kwargs
    )


async def post_file(
    path: str, data: bytes, *, fields: dict[str, str] | None = None, **kw: Any
) -> Reply:
    form: dict[str, Any] = {"file": _named(data)}
    form.update(fields or {})
    return await call(
        path,
        body=encode_multipart(BOUNDARY, form),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **kw,
    )


def _named(data: bytes) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = "recording"
    return upload


# --- audio in and out -------------------------------------------------------------------


def encoded(audio: np.ndarray, container: str, codec: str, rate: int) -> bytes:
    """16 kHz float speech in a container, encoded by FFmpeg as a client would."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(
            resample(audio, 16_000, rate).reshape(1, -1), format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def mp3_pcm(data: bytes) -> bytes:
    """s16le at RATE of a body of concatenated MP3s, decoded by FFmpeg."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        assert (container.format.name, stream.rate, stream.channels) == ("mp3", RATE, 1)
        samples = [frame.to_ndarray()[0] for frame in container.decode(stream)]
    return float_to_pcm16_bytes(np.concatenate(samples).astype(np.float32))


def eliza_replies(*prompts: str) -> list[str]:
    """What the DOCTOR script says to ``prompts`` in one fresh conversation."""
    engine = Eliza(parse_script(DOCTOR))
    return [sentence_case(engine.respond(prompt)) for prompt in prompts]


class GatedLLM(LLMProvider):
    """Says its first part, then waits for the test before the rest."""

    name: ClassVar[str] = "gated"

    def __init__(self, first: str, rest: str) -> None:
        super().__init__(LLMConfig(provider="gated"))
        self.first, self.rest = first, rest
        self.gate = asyncio.Event()
        self.finished = False

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        yield self.first
        await self.gate.wait()
        yield self.rest
        self.finished = True


def _all(queryset: Any) -> list[Any]:
    return list(queryset)


async def stored() -> tuple[list[Conversation], list[Turn]]:
    conversations = await sync_to_async(_all)(Conversation.objects.order_by("started_at"))
    turns = await sync_to_async(_all)(Turn.objects.order_by("conversation__started_at", "index"))
    return conversations, turns


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def doctor(make_agent: Callable[..., Agent]) -> Agent:
    """The default agent: ELIZA with the 1966 DOCTOR script, Piper, faster-whisper."""
    return make_agent(slug="doctor", eliza_script=DOCTOR)


@pytest.fixture(autouse=True)
def fresh_throttle() -> Any:
    cache.clear()  # throttling counts live in the cache, shared by every test here
    yield
    cache.clear()


@pytest.fixture(scope="module")
def need_a_job() -> np.ndarray:
    return say("I need a new job.")


# --- /processText/ ----------------------------------------------------------------------


async def test_process_text_streams_mp3_that_says_elizas_reply(doctor: Agent) -> None:
    reply = await post_json("/processText/", {"text": "I need a new job."})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    assert (reply.headers["x-audio-format"], reply.headers["x-sample-rate"]) == ("mp3", "22050")
    [expected] = eliza_replies("I need a new job.")
    assert same_words(await hear(mp3_pcm(reply.body), RATE), expected)
    conversations, turns = await stored()
    [conversation] = conversations
    assert reply.headers["x-conversation-id"] == str(conversation.pk)
    assert (conversation.channel, conversation.external_id, conversation.status) == (
        "http_api",
        "",
        "ended",
    )
    user, assistant = turns
    assert (user.role, user.text, user.stt_ms) == ("user", "I need a new job.", None)
    assert (assistant.role, assistant.text, assistant.heard_text) == (
        "assistant",
        expected,
        expected,
    )
    assert (assistant.status, assistant.interrupted) == ("complete", False)
    assert assistant.llm_first_token_ms is not None
    assert assistant.tts_first_audio_ms is not None
    assert not assistant.audio  # VOICE_STORE_AUDIO is off


async def test_the_older_query_form_and_wav_without_the_slash(doctor: Agent) -> None:
    reply = await call("/processText", query="text=I+need+a+new+job.&format=wav")
    assert reply.status == 200
    assert reply.headers["content-type"] == "audio/wav"
    assert reply.headers["x-audio-format"] == "wav"
    with wave.open(io.BytesIO(reply.body)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        pcm = wav.readframes(1 << 30)
    assert same_words(await hear(pcm, RATE), eliza_replies("I need a new job.")[0])


async def test_raw_pcm_is_chosen_by_the_accept_header(doctor: Agent) -> None:
    reply = await post_json(
        "/processText/",
        {"text": "I need a new job."},
        query="agent=doctor",
        headers={"Accept": "audio/pcm, */*"},
    )
    assert reply.status == 200
    assert (reply.headers["content-type"], reply.headers["x-audio-format"]) == (
        "application/octet-stream",
        "pcm_s16le",
    )
    assert same_words(await hear(reply.body, RATE), eliza_replies("I need a new job.")[0])


async def test_the_first_audio_arrives_while_the_model_is_still_writing(
    doctor: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chunker commits a sentence when the next one starts.
    llm = GatedLLM("Hello there, my friend. The", " weather is lovely today.")
    monkeypatch.setattr(chatbot, "build_provider", lambda config: llm)
    first_audio = asyncio.Event()
    request = asyncio.create_task(
        post_json("/processText/", {"text": "Hi"}, on_chunk=lambda chunks: first_audio.set())
    )
    await asyncio.wait_for(first_audio.wait(), timeout=20)
    assert not llm.finished  # the reply is not written yet, and its start is already out
    llm.gate.set()
    reply = await request
    assert reply.status == 200
    assert len(reply.chunks) >= 2
    # Each piece is an MP3 of its own: the first chunk plays without the rest.
    assert same_words(await hear(mp3_pcm(reply.chunks[0]), RATE), "Hello there, my friend.")
    assert same_words(
        await hear(mp3_pcm(reply.body), RATE),
        "Hello there, my friend. The weather is lovely today.",
    )
    _, [_, assistant] = await stored()
    assert assistant.text == "Hello there, my friend. The weather is lovely today."


async def test_a_client_that_hangs_up_leaves_an_interrupted_turn_with_what_it_got(
    doctor: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = GatedLLM("I hear you. And", " now something it never gets.")
    monkeypatch.setattr(chatbot, "build_provider", lambda config: llm)
    reply = await post_json("/processText/", {"text": "Hi"}, hang_up=lambda chunks: True)
    assert len(reply.chunks) == 1
    assert not llm.finished
    conversations, turns = await stored()
    assert len(conversations) == 1
    user, assistant = turns  # stored once, whole
    assert user.text == "Hi"
    # Generated: as far as the model got; heard: the sentence whose audio went out.
    assert (assistant.text, assistant.heard_text, assistant.interrupted) == (
        "I hear you. And",
        "I hear you.",
        True,
    )
    assert assistant.tts_first_audio_ms is not None


async def test_audio_is_stored_with_the_turns_when_asked(
    doctor: Agent, need_a_job: np.ndarray, settings: Any, tmp_path: Path
) -> None:
    settings.VOICE_STORE_AUDIO = True
    settings.MEDIA_ROOT = tmp_path
    wav = encoded(need_a_job, "wav", "pcm_s16le", 16_000)
    reply = await post_file("/processAudioFile/", wav)
    assert reply.status == 200
    _, [user, assistant] = await stored()
    with user.audio.open("rb") as f, wave.open(f) as stored_wav:
        assert stored_wav.getframerate() == 16_000
        heard = stored_wav.readframes(1 << 30)
    assert same_words(await hear(heard, 16_000), "I need a new job.")
    with assistant.audio.open("rb") as f, wave.open(f) as stored_wav:
        assert stored_wav.getframerate() == RATE
        assert stored_wav.getnframes() > RATE // 2


# --- /processAudioFile/ -----------------------------------------------------------------


async def test_a_wav_recording_is_heard_answered_and_the_answer_spoken(
    doctor: Agent, need_a_job: np.ndarray
) -> None:
    wav = encoded(need_a_job, "wav", "pcm_s16le", 16_000)
    reply = await post_file("/processAudioFile/", wav)
    assert reply.status == 200
    _, [user, assistant] = await stored()
    assert same_words(user.text, "I need a new job.")
    assert reply.headers["x-transcript"] == user.text.replace(" ", "%20")
    assert assistant.text == eliza_replies(user.text)[0]
    assert same_words(await hear(mp3_pcm(reply.body), RATE), assistant.text)
    assert user.stt_ms is not None
    assert assistant.llm_first_token_ms is not None
    assert assistant.tts_first_audio_ms is not None
    assert assistant.voice_to_voice_ms is not None
    assert not user.audio


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("mp3", "libmp3lame", 22_050), ("webm", "libopus", 48_000), ("ogg", "libopus", 48_000)],
)
async def test_compressed_recordings_are_decoded(
    doctor: Agent, need_a_job: np.ndarray, container: str, codec: str, rate: int
) -> None:
    reply = await post_file("/processAudioFile", encoded(need_a_job, container, codec, rate))
    assert reply.status == 200
    _, [user, assistant] = await stored()
    assert same_words(user.text, "I need a new job.")
    assert assistant.text == eliza_replies(user.text)[0]


async def test_raw_pcm_at_the_given_rate_as_the_old_clients_sent_it(
    doctor: Agent, need_a_job: np.ndarray
) -> None:
    pcm = float_to_pcm16_bytes(resample(need_a_job, 16_000, 44_100))
    reply = await post_file("/processAudioFile/", pcm, fields={"sample_rate": "44100"})
    assert reply.status == 200
    _, [user, _] = await stored()
    assert same_words(user.text, "I need a new job.")


async def test_a_recording_of_nothing_is_422_and_stores_nothing(doctor: Agent) -> None:
    reply = await post_file("/processAudioFile/", encoded(silence(1.0), "wav", "pcm_s16le", 16_000))
    assert (reply.status, reply.json()) == (
        422,
        {
            "error": {"code": "no_speech", "message": "no speech heard in the recording"},
            "statusCode": 422,
        },
    )
    assert await stored() == ([], [])


# --- /queryAssistant/ and /clearCache/ --------------------------------------------------


async def ask(prompt: str, address: str, **kwargs: Any) -> dict[str, Any]:
    reply = await post_json("/queryAssistant/", {"prompt": prompt, "address": address}, **kwargs)
    assert reply.status == 200, reply.body
    answer: dict[str, Any] = reply.json()
    return answer


async def test_each_address_continues_its_own_eliza_conversation(doctor: Agent) -> None:
    exchanges = REFERENCE[3]["exchanges"][:3]  # the third reply recalls the first prompt
    other = await ask(exchanges[2]["user"], "cc:dd")
    answers = [await ask(exchange["user"], "aa:bb") for exchange in exchanges]
    assert [a["content"] for a in answers] == [sentence_case(e["eliza"]) for e in exchanges]
    assert answers[2]["content"] == "But your mother never understood you."
    assert other["content"] == eliza_replies(exchanges[2]["user"])[0] != answers[2]["content"]
    conversations, turns = await stored()
    by_address = {c.external_id: c for c in conversations}
    assert set(by_address) == {"aa:bb", "cc:dd"}
    assert {c.channel for c in conversations} == {"http_api"}
    assert {a["thread_id"] for a in answers} == {str(by_address["aa:bb"].pk)}
    assert other["thread_id"] == str(by_address["cc:dd"].pk)
    assistant_ids = [
        str(t.pk)
        for t in turns
        if t.role == "assistant" and t.conversation_id == by_address["aa:bb"].pk
    ]
    assert [a["run_id"] for a in answers] == assistant_ids
    assert {a["statusCode"] for a in answers} == {200}
    assert set(answers[0]) == {"content", "run_id", "thread_id", "statusCode"}


async def test_clear_cache_gives_the_next_prompt_a_fresh_conversation_and_thread(
    doctor: Agent,
) -> None:
    exchanges = REFERENCE[3]["exchanges"][:2]
    before = [await ask(exchange["user"], "aa:bb") for exchange in exchanges]
    # Conversations of other channels and one-off /processText/ requests are not touched.
    assert (await post_json("/processText/", {"text": "Hello"})).status == 200
    web = await sync_to_async(conversation_start)(agent=doctor, channel=Channel.WEB_TEXT)
    cleared = await call("/clearCache")
    assert (cleared.status, cleared.json()) == (200, {"statusCode": 200, "status": True})
    old = await Conversation.objects.aget(pk=before[0]["thread_id"])
    assert (old.status, old.end_reason) == ("ended", "memory_cleared")  # kept for review
    assert (await Conversation.objects.aget(pk=web.pk)).status == "active"

    answer = await ask("Dad never said he loved me.", "aa:bb")
    assert answer["content"] == eliza_replies("Dad never said he loved me.")[0]
    assert answer["content"] != "But your mother never understood you."
    # Conrad-X's clients expect a new thread after a clear: a new conversation.
    assert answer["thread_id"] != before[0]["thread_id"]
    fresh = await Conversation.objects.aget(pk=answer["thread_id"])
    assert (fresh.external_id, fresh.status) == ("aa:bb", "active")
    assert await sync_to_async(fresh.turns.count)() == 2
    again = await ask("My mother is kind.", "aa:bb")
    assert again["thread_id"] == answer["thread_id"]  # the new thread goes on


@pytest.fixture
def openai_agent(
    make_agent: Callable[..., Agent], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Agent:
    monkeypatch.setenv("AGENT_KEY_CHATBOT_TEST", "sk-test-chatbot")
    fake_openai.reply_text = "Visitors sign in at reception."
    return make_agent(
        slug="desk",
        llm_provider=LLMChoice.OPENAI,
        llm_model="gpt-test",
        llm_api_key_env="AGENT_KEY_CHATBOT_TEST",
        llm_base_url=fake_openai.base_url,
    )


async def test_an_openai_agent_answers_with_its_conversation_as_the_thread(
    openai_agent: Agent, fake_openai: FakeOpenAI
) -> None:
    first = await ask("Where do visitors sign in?", "10.0.0.7", query="agent=desk")
    assert first["content"] == "Visitors sign in at reception."
    assert first["thread_id"] in fake_openai.conversations
    second = await ask("And on Sundays?", "10.0.0.7", query="agent=desk")
    assert second["thread_id"] == first["thread_id"]
    assert second["run_id"] != first["run_id"]
    sent = fake_openai.requests_to("/v1/responses")
    assert [r.json["conversation"] for r in sent] == [first["thread_id"]] * 2
    conversation = await sync_to_async(Conversation.objects.get)(external_id="10.0.0.7")
    assert conversation.provider_conversation_id == first["thread_id"]

    cleared = await call("/clearCache/", query="agent=desk")
    assert cleared.status == 200
    third = await ask("Hello again", "10.0.0.7", query="agent=desk")
    assert third["thread_id"] in fake_openai.conversations
    assert third["thread_id"] != first["thread_id"]


async def test_an_answer_the_model_failed_is_502_with_the_fallback(
    openai_agent: Agent, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(status=400)  # not worth a retry: the fallback line is spoken
    reply = await post_json(
        "/queryAssistant/", {"prompt": "Hi", "address": "x"}, query="agent=desk"
    )
    body = reply.json()
    assert (reply.status, body["statusCode"], body["error"]["code"]) == (502, 502, "llm_failed")
    assert body["content"] == "Sorry, I'm having trouble answering right now. Please try again."
    _, [_, assistant] = await stored()
    assert assistant.status == "failed"


# --- refusals ---------------------------------------------------------------------------


def refusal(status: int, code: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message, **extra}, "statusCode": status}


JSON = "application/json"

BAD_REQUESTS = [
    pytest.param(
        "/processText/",
        b"{nope",
        JSON,
        "",
        refusal(
            400,
            "invalid_json",
            "the body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        id="text-not-json",
    ),
    pytest.param(
        "/queryAssistant/",
        b"[" * 200_000,
        JSON,
        "",
        refusal(400, "invalid_json", "the body is not JSON: nested too deeply"),
        id="query-nested-too-deeply",
    ),
    pytest.param(
        "/processText/",
        b"",
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "text: This field is required.",
            fields={"text": ["This field is required."]},
        ),
        id="text-missing",
    ),
    pytest.param(
        "/processText/",
        b'{"text": 5}',
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "text: Input should be a valid string",
            fields={"text": ["Input should be a valid string"]},
        ),
        id="text-not-a-string",
    ),
    pytest.param(
        "/processText/",
        b'["text"]',
        JSON,
        "",
        refusal(400, "invalid", "the body must be a JSON object"),
        id="text-not-an-object",
    ),
    pytest.param(
        "/processText/",
        b'{"text": " \\u0001 "}',
        JSON,
        "",
        refusal(400, "empty_text", "text is empty"),
        id="text-empty",
    ),
    pytest.param(
        "/processText/",
        b'{"text": "a \\u0000 b"}',
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "text: text must not contain U+0000 (NUL)",
            fields={"text": ["text must not contain U+0000 (NUL)"]},
        ),
        id="text-nul",
    ),
    pytest.param(
        "/processText/",
        b'{"text": "\\ud800"}',
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "text: text must be valid Unicode (it holds a lone surrogate)",
            fields={"text": ["text must be valid Unicode (it holds a lone surrogate)"]},
        ),
        id="text-lone-surrogate",
    ),
    pytest.param(
        "/processText/",
        b"text=hello",
        "application/x-www-form-urlencoded",
        "",
        refusal(
            415,
            "unsupported_media_type",
            "send application/json, not application/x-www-form-urlencoded",
        ),
        id="text-form-encoded",
    ),
    pytest.param(
        "/processText/",
        b'{"text": "hi"}',
        JSON,
        "format=ogg",
        refusal(400, "bad_format", "format must be one of: mp3, wav, pcm"),
        id="text-bad-format",
    ),
    pytest.param(
        "/processText/",
        json.dumps({"text": "a" * 10_001}).encode(),
        JSON,
        "",
        refusal(413, "too_large", "text has 10001 characters; the limit is 10000"),
        id="text-too-long",
    ),
    pytest.param(
        "/processAudioFile/",
        b'{"file": "x"}',
        JSON,
        "",
        refusal(
            415,
            "unsupported_media_type",
            "send multipart/form-data with the recording in 'file', not application/json",
        ),
        id="audio-as-json",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"other": "x"}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
        refusal(400, "no_file", "no recording: send it in the multipart field 'file'"),
        id="audio-no-file",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"file": _named(b"")}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
        refusal(400, "not_audio", "the file is empty"),
        id="audio-empty-file",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"file": _named(b"this is not audio at all" * 10)}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
        refusal(400, "not_audio", "the file is not audio this server can decode"),
        id="audio-not-audio",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"file": _named(b"\0\0\0"), "sample_rate": "16000"}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
        refusal(400, "not_audio", "the file is not audio this server can decode"),
        id="audio-odd-pcm",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"file": _named(b"\0\0"), "sample_rate": "fast"}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "",
        refusal(400, "bad_sample_rate", "sample_rate must be a whole number from 8000 to 192000"),
        id="audio-rate-not-a-number",
    ),
    pytest.param(
        "/processAudioFile/",
        encode_multipart(BOUNDARY, {"file": _named(b"\0\0")}),
        f"multipart/form-data; boundary={BOUNDARY}",
        "sample_rate=100",
        refusal(400, "bad_sample_rate", "sample_rate must be a whole number from 8000 to 192000"),
        id="audio-rate-too-low",
    ),
    pytest.param(
        "/processAudioFile/",
        b"--nothing--",
        "multipart/form-data",
        "",
        refusal(400, "invalid", "malformed multipart body: Invalid boundary in multipart: None"),
        id="audio-no-boundary",
    ),
    pytest.param(
        "/queryAssistant/",
        b'{"prompt": "hi"}',
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "address: This field is required.",
            fields={"address": ["This field is required."]},
        ),
        id="query-no-address",
    ),
    pytest.param(
        "/queryAssistant/",
        b'{"prompt": "  ", "address": "a"}',
        JSON,
        "",
        refusal(400, "empty_text", "prompt is empty"),
        id="query-empty-prompt",
    ),
    pytest.param(
        "/queryAssistant/",
        b'{"prompt": "hi", "address": "a\\u0000b"}',
        JSON,
        "",
        refusal(
            400,
            "invalid",
            "address: 1 to 255 characters of valid Unicode, no control characters",
            fields={"address": ["1 to 255 characters of valid Unicode, no control characters"]},
        ),
        id="query-bad-address",
    ),
    pytest.param(
        "/queryAssistant/",
        b"prompt=hi",
        "text/plain",
        "",
        refusal(415, "unsupported_media_type", "send application/json, not text/plain"),
        id="query-not-json",
    ),
    pytest.param(
        "/clearCache/",
        b"",
        None,
        "agent=nobody",
        refusal(404, "unknown_agent", "no agent 'nobody'"),
        id="unknown-agent",
    ),
    pytest.param(
        "/processText/",
        b'{"text": "hi"}',
        JSON,
        "agent=sleeping",
        refusal(404, "inactive_agent", "agent 'sleeping' is inactive"),
        id="inactive-agent",
    ),
]


@pytest.mark.parametrize(("path", "body", "content_type", "query", "expected"), BAD_REQUESTS)
async def test_bad_input_gets_its_documented_error_and_nothing_is_stored(
    doctor: Agent,
    make_agent: Callable[..., Agent],
    path: str,
    body: bytes,
    content_type: str | None,
    query: str,
    expected: tuple[int, dict[str, Any]],
) -> None:
    await sync_to_async(make_agent)(slug="sleeping", is_active=False)
    reply = await call(path, body=body, content_type=content_type, query=query)
    assert (reply.status, reply.json()) == expected
    assert reply.headers["content-type"] == "application/json"
    assert await stored() == ([], [])


async def test_an_upload_over_the_limit_is_refused_from_its_length(
    doctor: Agent, settings: Any
) -> None:
    settings.CHATBOT_MAX_AUDIO_BYTES = 1000
    reply = await post_file("/processAudioFile/", b"\0" * 70_000)
    assert (reply.status, reply.json()) == refusal(
        413, "too_large", "the upload is larger than 1000 bytes"
    )
    reply = await post_file("/processAudioFile/", b"\0" * 2000)  # within the slack: parsed
    assert (reply.status, reply.json()) == refusal(
        413, "too_large", "the upload is larger than 1000 bytes"
    )
    assert await stored() == ([], [])


async def test_only_post_is_answered(doctor: Agent) -> None:
    reply = await call("/queryAssistant/", method="GET")
    assert (reply.status, reply.json()) == refusal(405, "method_not_allowed", "use POST, not GET")
    assert reply.headers["allow"] == "POST"


async def test_a_private_agent_needs_a_user_or_a_token(
    doctor: Agent, make_agent: Callable[..., Agent], make_user: Callable[..., Any]
) -> None:
    await sync_to_async(make_agent)(slug="staff-only", is_public=False)
    user = await sync_to_async(make_user)()
    token = await sync_to_async(Token.objects.create)(user=user)
    query = "agent=staff-only"
    refused = await call("/clearCache/", query=query)
    assert (refused.status, refused.json()) == refusal(
        401,
        "not_authenticated",
        "this agent needs a signed-in user or an 'Authorization: Token <key>' header",
    )
    assert refused.headers["www-authenticate"] == "Token"
    wrong = await call("/clearCache/", query=query, headers={"Authorization": "Token nope"})
    assert (wrong.status, wrong.json()) == refusal(401, "authentication_failed", "invalid token")
    with_token = await call(
        "/clearCache/", query=query, headers={"Authorization": f"Token {token.key}"}
    )
    assert with_token.status == 200
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    answer = await ask("Hello", "me", query=query, headers={"Cookie": cookie})
    conversation = await sync_to_async(Conversation.objects.get)()
    assert (conversation.user_id, answer["thread_id"]) == (user.pk, str(conversation.pk))


async def test_requests_over_the_rate_are_throttled_per_address(
    doctor: Agent, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "chatbot": "2/minute",
        },
    }
    assert [(await call("/clearCache/")).status for _ in range(2)] == [200, 200]
    throttled = await call("/processText/", body=b'{"text": "hi"}', content_type=JSON)
    assert throttled.status == 429
    assert (
        throttled.json()
        == refusal(
            429,
            "throttled",
            "Request was throttled. Expected available in 60 seconds.",
            retry_after_seconds=60,
        )[1]
    )
    assert throttled.headers["retry-after"] == "60"
    # A forwarded-for header of the client's own making changes nothing...
    spoofed = await call("/clearCache/", headers={"X-Forwarded-For": "10.9.8.7"})
    assert spoofed.status == 429
    # ...but another address has its own count.
    elsewhere = await call("/clearCache/", client="10.9.8.7")
    assert elsewhere.status == 200
    assert await stored() == ([], [])


# --- generated requests -----------------------------------------------------------------


@pytest.fixture
def wsgi_app() -> Any:
    """The project's WSGI application, which schemathesis calls in-process (the async views
    run through ``async_to_sync``; the tests here commit, so connections may be closed)."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_no_generated_request_meets_a_server_error(
    wsgi_app: Any, make_agent: Callable[..., Agent], subtests: Any
) -> None:
    """Valid and invalid requests generated from the schema: never a 5xx, and the
    documented content type and body."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    make_agent(slug="doctor", eliza_script=DOCTOR)
    config = schemathesis.Config.from_dict({"generation": {"database": "none"}})
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app, config=config)
    operations = [
        cast(Any, result).ok()  # an Err would raise here, naming the broken operation
        for result in schema.include(
            path_regex="^/(processText|processAudioFile|queryAssistant|clearCache)/$"
        ).get_all_operations()
    ]
    assert len(operations) == 4
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    for operation in operations:

        @given(case=st.one_of([operation.as_strategy(mode) for mode in GenerationMode]))
        @hypothesis_settings(
            # FUZZ_EXAMPLES raises the count for a longer hunt; FUZZ_RANDOM=1 varies it.
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5")),
            derandomize=os.environ.get("FUZZ_RANDOM") != "1",
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            cache.clear()
            case.call_and_validate(checks=checks)

        with subtests.test(operation=operation.path):
            check()
