"""A custom-LLM session continues exactly across server processes and restarts.

Real uvicorn processes on PostgreSQL: every turn reconnects with the same
``custom_session_id`` to a different process, and ELIZA's memory and counters come back
from the database each time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.db import connections

from agents.eliza import sentence_case
from conversations.models import Conversation, Turn
from conversations.tests.hume_payloads import payload, sparse_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
REFERENCE = json.loads((SHARED / "conversations.json").read_text())["conversations"]


@pytest.fixture
async def doctor_agent(make_agent) -> AsyncIterator[Any]:
    yield await sync_to_async(make_agent)(
        slug="doctor", eliza_script=(SHARED / "DOCTOR-1966.txt").read_text()
    )
    await sync_to_async(connections.close_all)()


async def one_turn(url: str, text: str, session_id: str) -> str:
    async with websockets.connect(url) as socket:
        await socket.send(payload([sparse_user(text)], session_id))
        texts: list[str] = []
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "assistant_end":
                return " ".join(texts)
            assert frame["type"] == "assistant_input", frame
            texts.append(frame["text"])


@pytest.mark.parametrize("conversation", REFERENCE[:3], ids=[c["name"] for c in REFERENCE[:3]])
async def test_turns_alternating_between_processes_continue_exactly(
    doctor_agent, start_server, conversation
) -> None:
    servers = [await sync_to_async(start_server)() for _ in range(2)]
    exchanges = conversation["exchanges"]
    for index, exchange in enumerate(exchanges):
        server = servers[index % 2]
        reply = await one_turn(f"{server.ws_url}/llm/doctor", exchange["user"], "alternating")
        assert reply == sentence_case(exchange["eliza"]), f"exchange {index} on {server.port}"
    assert await sync_to_async(Turn.objects.count)() == 2 * len(exchanges)
    assert await sync_to_async(Conversation.objects.count)() == 1
    for server in servers:
        assert "Traceback" not in server.log()


async def test_a_session_survives_a_server_restart(doctor_agent, start_server) -> None:
    exchanges = REFERENCE[1]["exchanges"]
    server = await sync_to_async(start_server)()
    half = len(exchanges) // 2
    for index in range(len(exchanges)):
        if index == half:  # restart: a fresh process with nothing in memory
            server.process.terminate()
            server.process.wait(timeout=10)
            server = await sync_to_async(start_server)()
        reply = await one_turn(f"{server.ws_url}/llm/doctor", exchanges[index]["user"], "restart")
        assert reply == sentence_case(exchanges[index]["eliza"]), f"exchange {index}"
