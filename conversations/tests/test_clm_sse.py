"""Hume's SSE custom-LLM interface: an OpenAI chat-completions request, streamed back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from openai.types.chat import ChatCompletionChunk

from conversations.models import Conversation, Turn

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"


@pytest.fixture
def doctor_agent(make_agent) -> Any:
    return make_agent(slug="doctor", eliza_script=(SHARED / "DOCTOR-1966.txt").read_text())


def body(*contents: str) -> str:
    messages = []
    for index, content in enumerate(contents):
        role = "user" if index % 2 == 0 else "assistant"
        messages.append(
            {
                "role": role,
                "content": content,
                "time": {"begin": 10, "end": 990},
                "models": {"prosody": {"scores": {"Joy": 0.4, "Interest": 0.3}}},
            }
        )
    return json.dumps({"model": "custom", "messages": messages, "stream": True})


async def events(response: Any) -> list[str]:
    assert response["Content-Type"] == "text/event-stream"
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert raw.endswith("\n\n")
    blocks = raw.strip("\n").split("\n\n")
    assert all(block.startswith("data: ") for block in blocks)
    return [block.removeprefix("data: ") for block in blocks]


async def test_sse_streams_openai_chunks_ending_with_done(doctor_agent) -> None:
    client = AsyncClient()
    response = await client.post(
        "/llm/doctor/chat/completions?custom_session_id=evi-1",
        body("I need some help {worried}"),
        content_type="application/json",
    )
    assert response.status_code == 200
    data = await events(response)
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]
    assert {chunk.system_fingerprint for chunk in chunks} == {"evi-1"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "What would it mean to you if you got some help."


async def test_sse_session_id_continues_the_same_conversation(doctor_agent) -> None:
    client = AsyncClient()
    for contents in (("Hello",), ("Hello", "How do you do.", "I need some help")):
        response = await client.post(
            "/llm/chat/completions?custom_session_id=evi-2",
            body(*contents),
            content_type="application/json",
        )
        await events(response)
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.external_id == "evi-2"
    texts = await sync_to_async(
        lambda: list(Turn.objects.order_by("index").values_list("role", "text"))
    )()
    assert [role for role, _ in texts] == ["user", "assistant", "user", "assistant"]
    assert texts[2] == ("user", "I need some help")


async def test_sse_without_a_session_id_hands_one_out(doctor_agent) -> None:
    response = await AsyncClient().post(
        "/llm/chat/completions", body("Hello"), content_type="application/json"
    )
    chunk = ChatCompletionChunk.model_validate_json((await events(response))[0])
    conversation = await sync_to_async(Conversation.objects.get)()
    assert chunk.system_fingerprint == conversation.external_id != ""


async def test_sse_stores_prosody_and_time(doctor_agent) -> None:
    response = await AsyncClient().post(
        "/llm/chat/completions?custom_session_id=p", body("Hello"), content_type="application/json"
    )
    await events(response)
    user = await sync_to_async(Turn.objects.get)(role="user")
    assert (user.prosody, user.speech_time) == (
        {"Joy": 0.4, "Interest": 0.3},
        {"begin": 10, "end": 990},
    )


@pytest.mark.parametrize(
    ("url", "payload", "headers", "status", "code"),
    [
        ("/llm/nobody/chat/completions", None, {}, 404, "unknown_agent"),
        ("/llm/sleeping/chat/completions", None, {}, 404, "inactive_agent"),
        ("/llm/secure/chat/completions", None, {}, 401, "unauthorized"),
        (
            "/llm/secure/chat/completions",
            None,
            {"Authorization": "Bearer nope"},
            401,
            "unauthorized",
        ),
        ("/llm/doctor/chat/completions", "{oops", {}, 400, "invalid_json"),
        (
            "/llm/doctor/chat/completions",
            '{"messages": [{"role": "user"}]}',
            {},
            400,
            "invalid_payload",
        ),
    ],
)
async def test_sse_errors_are_json_with_documented_codes(
    doctor_agent, make_agent, url, payload, headers, status, code
) -> None:
    await sync_to_async(make_agent)(slug="sleeping", is_active=False)
    await sync_to_async(make_agent)(slug="secure", clm_token="tok")
    response = await AsyncClient().post(
        url,
        payload if payload is not None else body("Hi"),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert await sync_to_async(Turn.objects.count)() == 0


async def test_sse_accepts_the_right_bearer_token(make_agent) -> None:
    await sync_to_async(make_agent)(slug="secure", clm_token="tok")
    response = await AsyncClient().post(
        "/llm/secure/chat/completions",
        body("Hi"),
        content_type="application/json",
        headers={"Authorization": "Bearer tok"},
    )
    assert response.status_code == 200
    assert (await events(response))[-1] == "[DONE]"


async def test_sse_needs_post(doctor_agent) -> None:
    response = await AsyncClient().get("/llm/doctor/chat/completions")
    assert response.status_code == 405
