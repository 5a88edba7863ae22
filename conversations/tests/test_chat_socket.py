"""The web page's text chat socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from agents.links import signed_link_token
from conversations.models import Conversation, Turn
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]


async def connect(path: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    socket = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await socket.connect()
    assert connected
    return socket, json.loads(await socket.receive_from(timeout=10))


async def ask(socket: WebsocketCommunicator, text: str) -> list[dict[str, Any]]:
    await socket.send_to(text_data=json.dumps({"type": "message", "text": text}))
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    return frames


@pytest.fixture
def eliza(make_agent) -> Any:
    return make_agent(slug="eliza", greeting="")


async def test_a_text_exchange_streams_and_is_stored(eliza) -> None:
    socket, session = await connect("/agents/eliza/chat")
    assert session["type"] == "session"
    assert session["resumed"] is False
    [greeting] = session["history"]
    assert greeting["role"] == "assistant"
    frames = await ask(socket, "I feel tired at work.")
    assert [f["type"] for f in frames][-1] == "done"
    deltas = " ".join(f["text"] for f in frames if f["type"] == "delta")
    assert deltas == frames[-1]["text"] != ""
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    assert str(conversation.pk) == session["conversation"]
    assert conversation.channel == "web_text"
    roles = await sync_to_async(
        lambda: list(Turn.objects.order_by("index").values_list("role", flat=True))
    )()
    assert roles == ["assistant", "user", "assistant"]


async def test_reconnecting_resumes_the_conversation_and_its_history(eliza) -> None:
    socket, first = await connect("/agents/eliza/chat")
    reply = (await ask(socket, "My mother worries about me."))[-1]["text"]
    await socket.disconnect()
    socket, again = await connect(f"/agents/eliza/chat?conversation={first['conversation']}")
    assert again["resumed"] is True
    assert again["conversation"] == first["conversation"]
    assert again["history"][-2:] == [
        {"role": "user", "text": "My mother worries about me.", "channel": "web_text"},
        {"role": "assistant", "text": reply, "channel": "web_text"},
    ]
    await ask(socket, "She calls every day.")
    await socket.disconnect()
    assert await sync_to_async(Conversation.objects.count)() == 1


async def test_an_unknown_conversation_id_starts_a_new_one(eliza) -> None:
    socket, session = await connect("/agents/eliza/chat?conversation=not-a-uuid")
    assert session["resumed"] is False
    await socket.disconnect()


async def test_bad_messages_get_errors_and_the_socket_keeps_serving(eliza) -> None:
    socket, _ = await connect("/chat")
    for raw, code in (
        ("not json", "bad_frame"),
        ('{"type": "dance"}', "bad_frame"),
        ('{"type": "message", "text": "   "}', "empty_message"),
        (json.dumps({"type": "message", "text": "x" * 5000}), "message_too_long"),
        (json.dumps({"type": "message", "text": "a\x00b"}), "bad_frame"),
    ):
        await socket.send_to(text_data=raw)
        frame = json.loads(await socket.receive_from(timeout=5))
        assert (frame["type"], frame["code"]) == ("error", code)
    assert (await ask(socket, "Hello"))[-1]["type"] == "done"
    await socket.disconnect()
    assert await sync_to_async(Turn.objects.filter(role="user").count)() == 1


async def test_private_agents_need_a_user_or_a_signed_link(make_agent) -> None:
    await sync_to_async(make_agent)(slug="private", is_public=False)
    socket = WebsocketCommunicator(application, "/agents/private/chat", headers=ORIGIN)
    await socket.connect()
    frame = json.loads(await socket.receive_from(timeout=5))
    assert frame["code"] == "login_required"
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await socket.disconnect()
    socket, session = await connect(f"/agents/private/chat?sig={signed_link_token('private')}")
    assert session["type"] == "session"
    await socket.disconnect()


async def test_closing_the_socket_ends_the_conversation_and_resuming_reopens_it(eliza) -> None:
    socket, session = await connect("/agents/eliza/chat")
    await ask(socket, "I feel tired at work.")
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    assert (conversation.status, conversation.end_reason) == ("ended", "caller_hung_up")
    assert conversation.ended_at is not None
    assert conversation.ended_at >= conversation.started_at

    socket, again = await connect(f"/agents/eliza/chat?conversation={session['conversation']}")
    assert again["resumed"] is True
    await conversation.arefresh_from_db()
    assert conversation.ended_at is None
    assert (conversation.status, conversation.end_reason) == ("active", "")
    await socket.disconnect()
    await conversation.arefresh_from_db()
    assert conversation.status == "ended"
