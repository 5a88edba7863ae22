"""The Redis channel layer carries events between processes.

A turn stored in this (test) process reaches an operator's monitor socket that is
connected to a separate uvicorn process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test import Client

from conversations.models import Channel, Role
from conversations.services import conversation_start, turn_record

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def redis_layer() -> AsyncIterator[None]:
    assert (
        settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    ), "this test needs REDIS_URL (make test provides it)"
    yield
    # The ORM calls in these tests run on asgiref's worker thread; close its connection
    # so the test database can be dropped afterwards.
    await sync_to_async(connections.close_all)()


async def test_a_turn_stored_here_reaches_a_monitor_socket_in_another_process(
    redis_layer, start_server, operator, make_agent
) -> None:
    server = await sync_to_async(start_server)()
    client = Client()
    await sync_to_async(client.force_login)(operator)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    agent = await sync_to_async(make_agent)()
    conversation = await sync_to_async(conversation_start)(agent=agent, channel=Channel.HUME_CLM)

    async with websockets.connect(
        f"{server.ws_url}/ws/monitor",
        additional_headers={"Cookie": cookie, "Origin": server.http_url},
    ) as socket:
        # The consumer joins its group before accepting, so the subscription is live now.
        await sync_to_async(turn_record)(
            conversation=conversation, role=Role.USER, text="across processes"
        )
        event = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))

    assert event == {
        "kind": "turn.recorded",
        "conversation": str(conversation.pk),
        "index": 0,
        "role": "user",
        "text": "across processes",
        "interrupted": False,
    }
    assert "Traceback" not in server.log()


async def test_the_monitor_refuses_anonymous_sockets(redis_layer, start_server) -> None:
    server = await sync_to_async(start_server)()
    async with websockets.connect(
        f"{server.ws_url}/ws/monitor", additional_headers={"Origin": server.http_url}
    ) as socket:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(socket.recv(), timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4403
