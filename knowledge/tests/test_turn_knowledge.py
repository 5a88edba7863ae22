"""A user turn gets the agent's passages, and the stored turn lists the chunks it used.

Acceptance: with the embedded default (local retrieval), an OpenAI-compatible agent
pointed at the fake OpenAI server receives the right passages for a question about an
uploaded document, over Hume's SSE interface and its WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from agents.llm import aclose_cached_clients
from agents.models import Agent, LLMProvider
from conversations.models import Conversation, Turn
from conversations.tests.hume_payloads import payload, sparse_user
from knowledge.models import Chunk, VectorStore
from knowledge.services import conversations_mark_for_reset
from knowledge.tests.retrieval_corpus import DOCUMENTS
from testing.fake_openai import FakeOpenAI
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def fake(fake_openai: FakeOpenAI):
    fake_openai.reply_text = "Visitors sign in at reception."
    yield fake_openai
    await aclose_cached_clients()
    assert fake_openai.errors == []


def body(question: str) -> str:
    return json.dumps(
        {"model": "custom", "messages": [{"role": "user", "content": question}], "stream": True}
    )


async def ask_sse(slug: str, question: str, session: str = "s1") -> str:
    response: Any = await AsyncClient().post(
        f"/llm/{slug}/chat/completions?custom_session_id={session}",
        body(question),
        content_type="application/json",
    )
    assert response.status_code == 200
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


def handbook(add_document, agent: Agent) -> None:
    for name, text in DOCUMENTS:
        add_document(name, text.encode(), agents=[agent])


@pytest.fixture
def compatible_agent(make_agent: Callable[..., Agent], fake: FakeOpenAI, add_document) -> Agent:
    agent = make_agent(
        slug="desk",
        llm_provider=LLMProvider.OPENAI_COMPATIBLE,
        llm_model="llama-test",
        llm_base_url=fake.base_url,
        prompt_text="You answer staff questions.",
    )
    handbook(add_document, agent)
    return agent


async def test_an_openai_compatible_agent_receives_the_answering_passage_over_sse(
    compatible_agent: Agent, fake: FakeOpenAI
) -> None:
    await ask_sse("desk", "Where do visitors sign in?")
    [request] = fake.requests_to("/v1/chat/completions")
    system = request.json["messages"][0]
    assert system["role"] == "system"
    answer = await sync_to_async(Chunk.objects.get)(text__contains="Visitors sign in at reception")
    # The best passage comes first in the knowledge section, with its reference.
    knowledge = system["content"].split("# Knowledge", 1)[1]
    first_ref = knowledge.split("\n[", 1)[1].split("]", 1)[0]
    assert first_ref == f"D{answer.document_id}:C{answer.index}"
    assert answer.text in system["content"]
    assert system["content"].startswith("You answer staff questions.")


async def test_the_assistant_turn_lists_the_chunks_it_used(
    compatible_agent: Agent, fake: FakeOpenAI
) -> None:
    await ask_sse("desk", "Where do visitors sign in?")
    user, assistant = await sync_to_async(lambda: list(Turn.objects.order_by("index")))()
    assert user.knowledge_refs == []
    answer = await sync_to_async(Chunk.objects.select_related("document").get)(
        text__contains="Visitors sign in at reception"
    )
    assert 1 <= len(assistant.knowledge_refs) <= 4
    first = assistant.knowledge_refs[0]
    assert {key: first[key] for key in ("ref", "chunk_id", "document", "section")} == {
        "ref": f"D{answer.document_id}:C{answer.index}",
        "chunk_id": answer.pk,
        "document": answer.document.title,
        "section": "Facilities > Visitors",
    }
    assert assistant.text == "Visitors sign in at reception."


async def test_the_websocket_turn_uses_the_passages_too(
    compatible_agent: Agent, fake: FakeOpenAI
) -> None:
    communicator = WebsocketCommunicator(application, "/llm/desk")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(
        text_data=payload([sparse_user("Where is the fire assembly point?")], "ws-1")
    )
    while json.loads(await communicator.receive_from(timeout=10))["type"] != "assistant_end":
        pass
    await communicator.disconnect()
    [request] = fake.requests_to("/v1/chat/completions")
    assert "assembly point in the north car park" in request.json["messages"][0]["content"]
    assistant = await sync_to_async(Turn.objects.get)(role="assistant")
    assert assistant.knowledge_refs[0]["section"] == "Facilities > Fire safety"


async def test_an_eliza_agent_gets_no_passages_and_records_none(
    make_agent: Callable[..., Agent], add_document
) -> None:
    agent = await sync_to_async(make_agent)(slug="eliza-k")
    await sync_to_async(handbook)(add_document, agent)
    await ask_sse("eliza-k", "Where do visitors sign in?")
    assistant = await sync_to_async(Turn.objects.get)(role="assistant")
    assert assistant.knowledge_refs == []


async def test_an_openai_agent_gets_passages_and_file_search_over_its_store(
    openai_agent: Agent, fake: FakeOpenAI, add_document
) -> None:
    await sync_to_async(add_document)(
        "hours.txt", b"The office opens at seven.", agents=[openai_agent]
    )
    store = await sync_to_async(VectorStore.objects.get)(agent=openai_agent)
    await ask_sse(openai_agent.slug, "When does the office open?")
    [request] = fake.requests_to("/v1/responses")
    assert request.json["tools"] == [{"type": "file_search", "vector_store_ids": [store.openai_id]}]
    assert "The office opens at seven." in request.json["instructions"]


async def test_a_reset_makes_the_next_turn_start_a_fresh_openai_conversation(
    openai_agent: Agent, fake: FakeOpenAI
) -> None:
    await ask_sse(openai_agent.slug, "Hello there", session="reset-me")
    conversation = await sync_to_async(Conversation.objects.get)()
    first_id = conversation.provider_conversation_id
    assert first_id in fake.conversations
    count = await sync_to_async(conversations_mark_for_reset)(agent_ids=[openai_agent.pk])
    assert count == 1
    await ask_sse(openai_agent.slug, "Hello again", session="reset-me")
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.provider_conversation_id not in {"", first_id}
    assert conversation.reset_requested is False
    assert len(fake.requests_to("/v1/conversations")) == 2


async def test_a_reset_reaches_a_websocket_that_is_already_open(
    openai_agent: Agent, fake: FakeOpenAI
) -> None:
    communicator = WebsocketCommunicator(application, f"/llm/{openai_agent.slug}")
    await communicator.connect()

    async def ask(question: str) -> None:
        await communicator.send_to(text_data=payload([sparse_user(question)], "ws-reset"))
        while json.loads(await communicator.receive_from(timeout=10))["type"] != "assistant_end":
            pass

    await ask("Hello")
    conversation = await sync_to_async(Conversation.objects.get)()
    first_id = conversation.provider_conversation_id
    await sync_to_async(conversations_mark_for_reset)(agent_ids=[openai_agent.pk])
    await ask("Hello again")
    await communicator.disconnect()
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.provider_conversation_id not in {"", first_id}
