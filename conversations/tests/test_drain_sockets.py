"""Each socket under a draining process (voiceapp.drain): idle ones close at once with 1012,
one in a turn right after its reply has ended and been stored; nothing new is answered.

In-process (the ASGI application under Channels' communicator), with a fresh drain
registry per test; the process-level stop is tested end to end in
``test_faults_integration.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from conversations.models import Conversation, Turn
from conversations.tests.hume_payloads import payload, sparse_user
from testing.fake_openai import FakeOpenAI
from testing.waits import until
from voiceapp import drain
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
REPLY = "One clause, then another, and a third one, slowly."
CLOSED_FOR_RESTART = {"type": "websocket.close", "code": 1012}


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    # The ORM calls here run on asgiref's worker thread: close its connection, so that the
    # test database can be dropped afterwards.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> drain.Registry:
    fresh = drain.Registry()
    monkeypatch.setattr(drain, "_registry", fresh)
    return fresh


@pytest.fixture
def slow_agent(make_agent, fake_openai: FakeOpenAI) -> Any:
    fake_openai.reply_text = REPLY
    fake_openai.delta_delay_s = 0.1
    return make_agent(
        slug="slow",
        llm_provider="openai_compatible",
        llm_model="slow-test",
        llm_base_url=fake_openai.base_url,
        is_public=True,
        greeting="",
    )


async def registered(registry: drain.Registry, count: int = 1) -> None:
    """Wait until the consumer has registered (it does once it is ready to talk)."""
    await until(lambda: len(registry) >= count, what=f"{count} registered socket(s)")


async def test_an_idle_custom_llm_socket_is_closed_with_1012_at_once(registry, make_agent) -> None:
    await sync_to_async(make_agent)(slug="doctor")
    socket = WebsocketCommunicator(application, "/llm/doctor")
    assert (await socket.connect())[0]
    await registered(registry)
    registry.begin()
    assert await socket.receive_output(timeout=5) == CLOSED_FOR_RESTART
    await socket.disconnect()  # what the server does once the close is sent
    assert len(registry) == 0


async def test_a_custom_llm_reply_in_flight_ends_and_is_stored_then_the_socket_closes(
    registry, slow_agent
) -> None:
    socket = WebsocketCommunicator(application, "/llm/slow")
    assert (await socket.connect())[0]
    await registered(registry)
    await socket.send_to(text_data=payload([sparse_user("Go on.")], "drain"))
    frames = [json.loads(await socket.receive_from(timeout=10))]
    registry.begin()
    # Not answered: the process is stopping.
    await socket.send_to(text_data=payload([sparse_user("And another thing.")], "drain"))
    while frames[-1]["type"] != "assistant_end":
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    assert await socket.receive_output(timeout=5) == CLOSED_FOR_RESTART
    await socket.disconnect()
    assert " ".join(f["text"] for f in frames[:-1]) == REPLY
    turns = await sync_to_async(
        lambda: list(Turn.objects.order_by("index").values_list("role", "text", "interrupted"))
    )()
    assert turns == [("user", "Go on.", False), ("assistant", REPLY, False)]


async def test_a_chat_reply_in_flight_ends_with_done_then_the_socket_closes(
    registry, slow_agent
) -> None:
    socket = WebsocketCommunicator(application, "/agents/slow/chat", headers=ORIGIN)
    assert (await socket.connect())[0]
    assert json.loads(await socket.receive_from(timeout=10))["type"] == "session"
    await registered(registry)
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "Go on."}))
    frames = [json.loads(await socket.receive_from(timeout=10))]
    registry.begin()
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "Not answered."}))
    while frames[-1]["type"] != "done":
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    assert frames[-1] == {"type": "done", "text": REPLY, "error": None}
    assert await socket.receive_output(timeout=5) == CLOSED_FOR_RESTART
    await socket.disconnect()
    turns = await sync_to_async(
        lambda: list(Turn.objects.order_by("index").values_list("role", "text"))
    )()
    assert turns == [("user", "Go on."), ("assistant", REPLY)]
    # Until the page reconnects elsewhere and resumes it.
    conversation = await Conversation.objects.aget()
    assert (conversation.status, conversation.end_reason) == ("ended", "server_restart")


async def test_a_voice_greeting_being_spoken_ends_whole_then_the_socket_closes(
    registry, make_agent
) -> None:
    await sync_to_async(make_agent)(slug="doctor")
    socket = WebsocketCommunicator(application, "/agents/doctor/conversation", headers=ORIGIN)
    assert (await socket.connect())[0]
    await registered(registry)
    await socket.send_to(bytes_data=msgpack.packb({"type": "open"}))
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "reply":
        frames.append(msgpack.unpackb(await socket.receive_from(timeout=30)))
    registry.begin()  # the greeting is being spoken
    while frames[-1]["type"] != "metrics":
        frames.append(msgpack.unpackb(await socket.receive_from(timeout=30)))
    assert await socket.receive_output(timeout=10) == CLOSED_FOR_RESTART
    await socket.disconnect()
    spoken = " ".join(f["text"] for f in frames if f["type"] == "reply")
    turns = await sync_to_async(
        lambda: list(Turn.objects.values_list("role", "text", "interrupted"))
    )()
    assert turns == [("assistant", spoken, False)]
    assert spoken == "Hello. What would you like to talk about today."  # ELIZA's, whole


async def test_a_socket_whose_connect_fails_after_registering_still_leaves_the_registry(
    registry: drain.Registry,
) -> None:
    from channels.generic.websocket import AsyncWebsocketConsumer

    from conversations.consumers.common import ReleasesOnEnd

    class Vanishing(ReleasesOnEnd, AsyncWebsocketConsumer):  # type: ignore[misc]
        channel_layer_alias = None

        async def connect(self) -> None:
            await self.accept()
            self.live_socket = drain.register(self.close)
            # The client went away while the socket was still being set up: Channels never
            # calls disconnect() for it.
            raise ConnectionResetError("client went away")

    communicator = WebsocketCommunicator(Vanishing.as_asgi(), "/x")
    connected, _ = await communicator.connect()
    assert connected
    with pytest.raises(ConnectionResetError):
        await communicator.wait()
    assert len(registry) == 0
    await asyncio.wait_for(registry.wait_closed(), timeout=1)  # a drain would not wait
