"""The Echo-compatible audio socket with the real models and real speech.

Speech is made with the bundled Piper voice, streamed in 100 ms chunks, transcribed by
faster-whisper, answered by ELIZA (or a fake OpenAI-compatible model), spoken by Piper,
and the reply audio is transcribed back to check what the agent actually said.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from agents.eliza import sentence_case
from conversations.models import Conversation, Turn
from testing.speech import chunks, hear, same_words, say, silence
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")


@pytest.fixture(autouse=True)
def sessions_are_released() -> Any:
    """Every test closes its sockets; afterwards no session may still be counted."""
    from conversations.consumers import voice

    yield
    leaked = dict(voice._sessions_per_client)
    voice._sessions_per_client.clear()
    assert leaked == {}


@pytest.fixture
def doctor_agent(make_agent) -> Any:
    return make_agent(slug="doctor", eliza_script=(SHARED / "DOCTOR-1966.txt").read_text())


@pytest.fixture(scope="module")
def need_a_job() -> np.ndarray:
    return say("I need a new job.")


@pytest.fixture(scope="module")
def stop_please() -> np.ndarray:
    return say("Stop, please, I have heard enough of that.")


class Client:
    """A test client speaking the Echo protocol over a WebSocket communicator."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.ws = WebsocketCommunicator(application, path, headers=[HOST, *(headers or [ORIGIN])])
        self.frames: list[dict[str, Any]] = []

    async def connect(self) -> None:
        connected, _ = await self.ws.connect()
        assert connected

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_to(bytes_data=msgpack.packb(message, use_bin_type=True))

    async def recv(self, wait_s: float = 20) -> dict[str, Any]:
        frame: dict[str, Any] = msgpack.unpackb(
            await self.ws.receive_from(timeout=wait_s), raw=False
        )
        self.frames.append(frame)
        return frame

    async def until(self, kind: str, wait_s: float = 30) -> list[dict[str, Any]]:
        """Frames up to and including the next one of type ``kind``."""
        got = []
        while True:
            frame = await self.recv(wait_s)
            got.append(frame)
            if frame["type"] == kind:
                return got

    async def stream(self, audio: np.ndarray, *, pace: bool = False) -> None:
        for piece in chunks(audio):
            await self.send({"type": "audio", "audio": piece.astype("<f4").tobytes()})
            if pace:
                await asyncio.sleep(len(piece) / 16_000)


def reply_audio(frames: list[dict[str, Any]], token: str) -> bytes:
    audio = [f["audio"] for f in frames if f["type"] == "audio"]
    assert audio, "no reply audio"
    assert all(a[:8] == token.encode() for a in audio)
    return b"".join(a[8:] for a in audio)


async def test_the_agent_greets_hears_answers_and_says_it(doctor_agent, need_a_job) -> None:
    client = Client("/conversation")
    await client.connect()
    await client.send({"type": "open", "prompt": "ignored"})
    token_frame = await client.recv()
    assert token_frame["type"] == "token"
    token = token_frame["token"]
    assert len(token) == 8
    assert token.isalpha()
    assert token.islower()

    greeting = await client.until("metrics")
    assert [f["text"] for f in greeting if f["type"] == "reply"] == [
        "How do you do. Please tell me your problem."
    ]
    assert same_words(
        await hear(reply_audio(greeting, token), 44_100),
        "How do you do. Please tell me your problem.",
    )
    await client.send({"type": "state", "state": "waiting"})

    await client.stream(np.concatenate([silence(0.3), need_a_job, silence(1.0)]))
    turn = await client.until("metrics")
    [transcript] = [f for f in turn if f["type"] == "transcript"]
    assert same_words(transcript["text"], "I need a new job.")
    expected = sentence_case("WHAT WOULD IT MEAN TO YOU IF YOU GOT A NEW JOB")
    assert " ".join(f["text"] for f in turn if f["type"] == "reply") == expected
    assert same_words(await hear(reply_audio(turn, token), 44_100), expected)
    metrics = turn[-1]
    assert metrics["voice_to_voice_ms"] is not None
    assert metrics["stt_ms"] is not None
    await client.send({"type": "close"})
    await client.ws.disconnect()

    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.channel == "web_voice"
    turns = await sync_to_async(lambda: list(Turn.objects.order_by("index")))()
    assert [(t.role, t.text) for t in turns] == [
        ("assistant", "How do you do. Please tell me your problem."),
        ("user", transcript["text"]),
        ("assistant", expected),
    ]
    assert turns[2].voice_to_voice_ms == metrics["voice_to_voice_ms"]
    assert turns[1].stt_ms is not None
    assert turns[2].tts_first_audio_ms is not None


async def test_an_output_format_can_be_chosen(doctor_agent) -> None:
    client = Client("/agents/doctor/conversation")
    await client.connect()
    await client.send({"type": "open", "format": "pcm_16000"})
    token = (await client.recv())["token"]
    greeting = await client.until("metrics")
    assert same_words(
        await hear(reply_audio(greeting, token), 16_000),
        "How do you do. Please tell me your problem.",
    )
    await client.ws.disconnect()


@pytest.fixture
def remote_agent(make_agent, fake_openai) -> Any:
    return make_agent(
        slug="storyteller",
        llm_provider="openai_compatible",
        llm_model="story-1",
        llm_base_url=fake_openai.base_url,
    )


async def test_barge_in_interrupts_cancels_and_stores_what_was_heard(
    remote_agent, fake_openai, need_a_job, stop_please
) -> None:
    story = " ".join(f"This is sentence number {n} of a very long story." for n in range(1, 30))
    fake_openai.reply = lambda request: story if len(request.json["messages"]) == 2 else "OK."
    fake_openai.delta_delay_s = 0.05  # the model keeps writing while the first clauses play
    client = Client("/agents/storyteller/conversation")
    await client.connect()
    await client.send({"type": "open"})
    old_token = (await client.recv())["token"]
    await client.stream(np.concatenate([need_a_job, silence(1.0)]))
    while (await client.recv())["type"] != "audio":
        pass
    # The user talks over the reply, in real time.
    await client.stream(np.concatenate([stop_please, silence(0.2)]), pace=True)
    await client.until("interrupt")
    interrupt_at = next(i for i, f in enumerate(client.frames) if f["type"] == "interrupt")
    new_token = client.frames[interrupt_at]["token"]
    assert new_token != old_token
    await client.stream(silence(1.0))
    await client.until("metrics")  # the reply to "stop please" follows
    after = client.frames[interrupt_at + 1 :]
    assert not [f for f in after if f["type"] == "audio" and f["audio"][:8] == old_token.encode()]
    await client.ws.disconnect()

    first_request = fake_openai.requests_to("/v1/chat/completions")[0]
    assert first_request.disconnected  # the LLM stream was cancelled
    interrupted = await sync_to_async(Turn.objects.get)(interrupted=True)
    assert interrupted.role == "assistant"
    assert interrupted.text.startswith("This is sentence number 1")
    assert interrupted.text != story
    assert interrupted.text.startswith(interrupted.heard_text)
    assert len(interrupted.heard_text) < len(interrupted.text)


# --- bad input ------------------------------------------------------------------------------


async def errors_after(client: Client, payload: bytes | str) -> dict[str, Any]:
    if isinstance(payload, str):
        await client.ws.send_to(text_data=payload)
    else:
        await client.ws.send_to(bytes_data=payload)
    frame = await client.recv()
    assert frame["type"] == "error"
    return frame


async def test_bad_frames_get_error_frames_and_the_session_continues(
    doctor_agent, settings
) -> None:
    settings.VOICE_MAX_FRAME_BYTES = 4096
    client = Client("/conversation")
    await client.connect()
    audio = np.zeros(1600, "<f4").tobytes()
    cases = [
        (msgpack.packb({"type": "audio", "audio": audio[:4000]}), "not_open"),
        (b"\xc1\xff garbage", "bad_frame"),
        ("a text frame", "bad_frame"),
        (msgpack.packb([1, 2, 3]), "bad_frame"),
        (msgpack.packb({"type": "dance"}), "unknown_type"),
        (msgpack.packb({"type": "open", "format": "mp3_22050"}), "bad_format"),
        (msgpack.packb({"type": "open", "reports_played": "yes"}), "bad_frame"),
        (b"\x00" * 5000, "frame_too_large"),
    ]
    for payload, code in cases:
        assert (await errors_after(client, payload))["code"] == code
    await client.send({"type": "open"})
    assert (await client.recv())["type"] == "token"
    await client.until("metrics")
    bad_audio = [
        ({"type": "audio", "audio": b"\x00\x00\x00"}, "bad_audio"),
        ({"type": "audio", "audio": "not bytes"}, "bad_audio"),
        ({"type": "audio", "audio": np.full(160, np.nan, "<f4").tobytes()}, "bad_audio"),
        ({"type": "audio", "audio": np.zeros(160, "<i2").tobytes() + b"\x00"}, "bad_audio"),
        ({"type": "state", "state": "dancing"}, "bad_state"),
        ({"type": "played", "token": 5}, "bad_frame"),
        ({"type": "open"}, "already_open"),
    ]
    for message, code in bad_audio:
        assert (await errors_after(client, msgpack.packb(message, use_bin_type=True)))[
            "code"
        ] == code
    # Still serving: silence goes in without complaint, and close ends it cleanly.
    await client.send({"type": "audio", "audio": np.zeros(800, "<f4").tobytes()})
    await client.send({"type": "close"})
    out = await client.ws.receive_output(timeout=5)
    assert out["type"] == "websocket.close", msgpack.unpackb(out.get("bytes") or b"\xc0")
    await client.ws.disconnect()


async def test_unknown_agents_are_refused_with_4404(make_agent) -> None:
    await sync_to_async(make_agent)()
    client = Client("/agents/nobody/conversation")
    await client.connect()
    await client.send({"type": "open"})
    assert (await client.recv())["code"] == "unknown_agent"
    assert await client.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    await client.ws.disconnect()


async def test_private_agents_need_a_user_or_a_signed_link(make_agent) -> None:
    from agents.links import signed_link_token

    await sync_to_async(make_agent)(slug="private", is_public=False)
    client = Client("/agents/private/conversation")
    await client.connect()
    await client.send({"type": "open"})
    assert (await client.recv())["code"] == "login_required"
    assert await client.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await client.ws.disconnect()

    signed = Client(f"/agents/private/conversation?sig={signed_link_token('private')}")
    await signed.connect()
    await signed.send({"type": "open"})
    assert (await signed.recv())["type"] == "token"
    await signed.ws.disconnect()

    forged = Client(f"/agents/private/conversation?sig={signed_link_token('other')}")
    await forged.connect()
    await forged.send({"type": "open"})
    assert (await forged.recv())["code"] == "login_required"
    await forged.ws.disconnect()


async def test_too_many_sessions_from_one_address_are_refused(doctor_agent, settings) -> None:
    settings.VOICE_MAX_SESSIONS_PER_CLIENT = 2
    clients = [Client("/conversation") for _ in range(3)]
    for client in clients[:2]:
        await client.connect()
    await clients[2].connect()
    assert (await clients[2].recv())["code"] == "too_many_sessions"
    assert await clients[2].ws.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": 4429,
    }
    await clients[2].ws.disconnect()
    for client in clients[:2]:
        await client.ws.disconnect()


# Every field of every client frame, with a value of the wrong type or out of range.
WRONG_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"type": "open", "format": [1]}, "bad_format"),
    ({"type": "open", "format": None}, "bad_format"),
    ({"type": "open", "format": 44100}, "bad_format"),
    ({"type": "open", "agent": ["doctor"]}, "bad_frame"),
    ({"type": "open", "agent": {"slug": "doctor"}}, "bad_frame"),
    ({"type": "open", "agent": ""}, "bad_frame"),
    ({"type": "open", "conversation": 12}, "bad_frame"),
    ({"type": "open", "conversation": "x" * 65}, "bad_frame"),
    ({"type": "open", "prompt": {"a": 1}}, "bad_frame"),
    ({"type": "open", "reports_played": "yes"}, "bad_frame"),
    ({"type": "open", "reports_played": 1}, "bad_frame"),
    ({"type": "audio"}, "bad_audio"),
    ({"type": "audio", "audio": [0.0, 0.1]}, "bad_audio"),
    ({"type": "audio", "audio": None}, "bad_audio"),
    ({"type": "state"}, "bad_state"),
    ({"type": "state", "state": ["waiting"]}, "bad_state"),
    ({"type": "played", "token": "abcdefgh"}, "bad_frame"),
    ({"type": "played", "token": ["abcdefgh"], "ms": 1}, "bad_frame"),
    ({"type": "played", "token": "ABCDEFGH", "ms": 1}, "bad_frame"),
    ({"type": "played", "token": "abcdefgh", "ms": float("nan")}, "bad_frame"),
    ({"type": "played", "token": "abcdefgh", "ms": float("inf")}, "bad_frame"),
    ({"type": "played", "token": "abcdefgh", "ms": -1}, "bad_frame"),
    ({"type": "played", "token": "abcdefgh", "ms": "12"}, "bad_frame"),
    ({"type": "played", "token": "abcdefgh", "ms": True}, "bad_frame"),
    ({"type": ["open"]}, "bad_frame"),
    ({"type": 7}, "bad_frame"),
]


async def test_every_field_is_checked_by_type_and_no_slot_leaks(doctor_agent, settings) -> None:
    # A malformed frame used to raise inside the handler, so the consumer never cleaned
    # up and the address's session slot stayed taken until the process restarted.
    settings.VOICE_MAX_SESSIONS_PER_CLIENT = 1
    for message, code in WRONG_FIELDS:
        client = Client("/conversation")
        await client.connect()
        await client.send(message)
        frame = await client.recv()
        assert (frame["type"], frame["code"]) == ("error", code), message
        await client.ws.disconnect()
    # The one slot of this address is free: a well-formed call opens.
    client = Client("/conversation")
    await client.connect()
    await client.send({"type": "open", "format": "pcm_16000", "reports_played": True})
    assert (await client.recv())["type"] == "token"
    await client.until("metrics")
    await client.ws.disconnect()


async def test_a_consumer_that_fails_still_gives_back_its_slot(
    doctor_agent, settings, monkeypatch
) -> None:
    from conversations.consumers import voice

    async def broken(self: Any, frame: Any) -> None:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(voice.VoiceConsumer, "on_open", broken)
    client = Client("/conversation")
    await client.connect()
    assert sum(voice._sessions_per_client.values()) == 1
    await client.send({"type": "open"})
    with pytest.raises(RuntimeError, match="a bug in a handler"):
        await client.ws.wait(timeout=5)
    assert voice._sessions_per_client == {}


async def test_foreign_origins_are_rejected(doctor_agent) -> None:
    client = Client("/conversation", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await client.ws.connect()
    assert connected is False


async def test_sessions_end_at_the_maximum_length(doctor_agent, settings) -> None:
    settings.VOICE_MAX_SESSION_SECONDS = 1
    client = Client("/conversation")
    await client.connect()
    frame = await client.recv(wait_s=5)
    assert frame["code"] == "session_too_long"
    assert await client.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4408}
    await client.ws.disconnect()


async def test_a_call_ended_by_the_caller_or_the_time_limit_ends_its_conversation(
    doctor_agent, settings
) -> None:
    from conversations.models import Conversation

    client = Client("/conversation")
    await client.connect()
    await client.send({"type": "open", "format": "pcm_16000"})
    [session] = [f for f in await client.until("session") if f["type"] == "session"]
    await client.until("metrics")  # the greeting is spoken and stored
    await client.send({"type": "close"})  # "End call"
    assert (await client.ws.receive_output(timeout=10))["type"] == "websocket.close"
    await client.ws.disconnect()
    first = await Conversation.objects.aget(pk=session["conversation"])
    assert (first.status, first.end_reason) == ("ended", "caller_hung_up")

    settings.VOICE_MAX_SESSION_SECONDS = 3
    client = Client("/conversation")
    await client.connect()
    await client.send({"type": "open", "format": "pcm_16000"})
    frames = await client.until("error", wait_s=30)
    assert frames[-1]["code"] == "session_too_long"
    [session] = [f for f in frames if f["type"] == "session"]
    while (await client.ws.receive_output(timeout=10))["type"] != "websocket.close":
        pass
    await client.ws.disconnect()
    second = await Conversation.objects.aget(pk=session["conversation"])
    assert (second.status, second.end_reason) == ("ended", "timed_out")


# --- one page, one conversation: typed and spoken turns --------------------------------------


async def chat_ask(socket: WebsocketCommunicator, text: str) -> dict[str, Any]:
    await socket.send_to(text_data=json.dumps({"type": "message", "text": text}))
    frame: dict[str, Any] = {"type": ""}
    while frame["type"] not in ("done", "error"):
        frame = json.loads(await socket.receive_from(timeout=20))
    assert frame["type"] == "done", frame
    return frame


async def chat_connect(path: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    socket = WebsocketCommunicator(application, path, headers=[HOST, ORIGIN])
    connected, _ = await socket.connect()
    assert connected
    return socket, json.loads(await socket.receive_from(timeout=10))


async def test_typing_then_calling_on_one_page_is_one_conversation_the_model_remembers(
    remote_agent, fake_openai, need_a_job
) -> None:
    fake_openai.reply = lambda request: f"Noted {len(request.json['messages'])}."
    chat, session = await chat_connect("/agents/storyteller/chat")
    conversation = session["conversation"]
    await chat_ask(chat, "My name is Ada.")

    # The call continues the typed conversation: no second greeting, and the model is
    # given what was typed.
    call = Client("/agents/storyteller/conversation")
    await call.connect()
    await call.send({"type": "open", "conversation": conversation})
    opened = await call.until("session")
    assert opened[-1] == {"type": "session", "conversation": conversation, "resumed": True}
    await call.stream(np.concatenate([silence(0.3), need_a_job, silence(1.0)]))
    turn = await call.until("metrics")
    assert not [f for f in opened if f["type"] in ("reply", "audio")]  # not greeted again
    [heard] = [f["text"] for f in turn if f["type"] == "transcript"]
    spoken_request = fake_openai.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert {"role": "user", "content": "My name is Ada."} in spoken_request
    assert spoken_request[-1] == {"role": "user", "content": heard}
    await call.send({"type": "close"})
    await call.ws.disconnect()

    # Typing after the call: the chat socket, open all along, sees what was said in it.
    done = await chat_ask(chat, "What did I just say?")
    typed_request = fake_openai.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert {"role": "user", "content": heard} in typed_request
    assert typed_request[-1] == {"role": "user", "content": "What did I just say?"}
    await chat.disconnect()

    # One stored conversation, each turn with the channel it came in on.
    stored = await sync_to_async(
        lambda: (
            Conversation.objects.count(),
            list(Turn.objects.order_by("index").values_list("role", "channel", "text")),
        )
    )()
    assert stored[0] == 1
    turns = stored[1]
    assert [(role, channel) for role, channel, _ in turns[-6:]] == [
        ("user", "web_text"),
        ("assistant", "web_text"),
        ("user", "web_voice"),
        ("assistant", "web_voice"),
        ("user", "web_text"),
        ("assistant", "web_text"),
    ]
    assert turns[-1][2] == done["text"]

    # A reload shows both kinds of turn, in order.
    again, resumed = await chat_connect(f"/agents/storyteller/chat?conversation={conversation}")
    assert resumed["resumed"] is True
    assert resumed["conversation"] == conversation
    assert [(h["role"], h["channel"]) for h in resumed["history"][-6:]] == [
        (role, channel) for role, channel, _ in turns[-6:]
    ]
    await again.disconnect()
