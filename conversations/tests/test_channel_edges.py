"""What every text channel refuses at its edge, and how each ends a reply that failed inside.

Text that cannot be stored (lone surrogates, U+0000) is refused before anything is
answered, on the chat socket, the custom-LLM socket and SSE, and the chatbot endpoints;
a failure after streaming began still ends the stream in the documented form, and the
socket goes on serving. Non-public agents answer the custom-LLM routes only with a token.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from conversations import stores
from conversations.models import Turn
from conversations.tests.hume_payloads import payload, sparse_user
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]

# json.dumps escapes them (ensure_ascii), so each frame is itself valid UTF-8 JSON.
UNSTORABLE = ["\ud800", "Hi \udfff there", "\x00", "ok\x00ok", "\ud83d alone"]


async def body_of(response: Any) -> bytes:
    """A streamed response's body, whole (it ends whatever failed inside)."""
    return b"".join([chunk async for chunk in response.streaming_content])


async def turn_count() -> int:
    return int(await sync_to_async(Turn.objects.count)())


async def chat_socket(path: str = "/agents/eliza/chat") -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await socket.connect()
    assert connected
    assert json.loads(await socket.receive_from(timeout=10))["type"] == "session"
    return socket


async def chat_until_end(socket: WebsocketCommunicator) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    return frames


async def clm_until_end(socket: WebsocketCommunicator) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("assistant_end", "error"):
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    return frames


@pytest.fixture
def eliza(make_agent) -> Any:
    return make_agent(slug="eliza", greeting="")


# --- text that cannot be stored ---------------------------------------------------------


async def test_the_chat_socket_refuses_unstorable_text_and_keeps_serving(eliza) -> None:
    socket = await chat_socket()
    for text in UNSTORABLE:
        await socket.send_to(text_data=json.dumps({"type": "message", "text": text}))
        [frame] = await chat_until_end(socket)
        assert (frame["type"], frame["code"]) == ("error", "bad_frame"), text
    # Deep nesting is a bad frame too, not a crash.
    await socket.send_to(text_data="[" * 100_000 + "]" * 100_000)
    assert json.loads(await socket.receive_from(timeout=10))["code"] == "bad_frame"
    assert await turn_count() == 1  # the greeting only
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "I am sad."}))
    assert (await chat_until_end(socket))[-1]["type"] == "done"
    await socket.disconnect()


async def test_the_custom_llm_socket_refuses_unstorable_text_anywhere_in_the_payload(
    eliza,
) -> None:
    socket = WebsocketCommunicator(application, "/llm/eliza")
    assert (await socket.connect())[0]
    good = payload([sparse_user("Hello")])
    for text in UNSTORABLE:
        in_text = json.loads(good)
        in_text["messages"][-1]["message"]["content"] = text  # the message answered
        in_key = {**json.loads(good), text: 1}  # an extra key, anywhere
        for raw in (json.dumps(in_text), json.dumps(in_key)):
            await socket.send_to(text_data=raw)
            [frame] = await clm_until_end(socket)
            assert (frame["type"], frame["code"]) == ("error", "invalid_payload"), raw[:80]
    assert await turn_count() == 0
    frames = await clm_until_end_after(socket, good)
    assert frames[-1] == {"type": "assistant_end"}
    await socket.disconnect()


async def clm_until_end_after(socket: WebsocketCommunicator, raw: str) -> list[dict[str, Any]]:
    await socket.send_to(text_data=raw)
    return await clm_until_end(socket)


async def test_sse_refuses_unstorable_text_with_a_400(eliza) -> None:
    for text in UNSTORABLE:
        body = json.dumps({"messages": [{"role": "user", "content": text}], "stream": True})
        response = await AsyncClient().post(
            "/llm/eliza/chat/completions", body, content_type="application/json"
        )
        assert response.status_code == 400, text
        assert response.json()["error"]["code"] == "invalid_payload"
    assert await turn_count() == 0


async def test_the_chatbot_endpoints_refuse_unstorable_text_with_a_400(eliza) -> None:
    for text in UNSTORABLE:
        for path, body in (
            ("/processText/", json.dumps({"text": text})),
            ("/queryAssistant/", json.dumps({"prompt": text, "address": "a"})),
            ("/queryAssistant/", json.dumps({"prompt": "Hi", "address": text})),
        ):
            response = await AsyncClient().post(path, body, content_type="application/json")
            assert response.status_code == 400, (path, text, response.content[:200])
    assert await turn_count() == 0


# --- failures inside a reply ------------------------------------------------------------


def failing_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next exchange a channel stores fails (a bug, not an outage); later ones work."""
    from conversations import turn

    real = stores.write_exchange
    failures = [RuntimeError("the write failed")]

    async def write(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await real(*args, **kwargs)

    monkeypatch.setattr(turn, "write_exchange", write)


async def test_a_chat_reply_that_cannot_be_stored_ends_with_an_error_and_the_socket_goes_on(
    eliza, monkeypatch
) -> None:
    socket = await chat_socket()  # its greeting is stored
    failing_store(monkeypatch)
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "I am sad."}))
    frames = await chat_until_end(socket)
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "internal")
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "I am sad."}))
    assert (await chat_until_end(socket))[-1]["type"] == "done"
    await socket.disconnect()


async def test_an_sse_reply_that_cannot_be_stored_still_ends_the_stream(eliza, monkeypatch) -> None:

    failing_store(monkeypatch)
    body = json.dumps({"messages": [{"role": "user", "content": "I am sad."}], "stream": True})
    response = await AsyncClient().post(
        "/llm/eliza/chat/completions", body, content_type="application/json"
    )
    assert response.status_code == 200
    raw = (await body_of(response)).decode()
    blocks = [b.removeprefix("data: ") for b in raw.strip("\n").split("\n\n")]
    assert blocks[-1] == "[DONE]"
    assert json.loads(blocks[-2]) == {
        "error": {"code": "internal", "message": "the reply failed; try again"}
    }


async def test_a_custom_llm_reply_that_cannot_be_stored_ends_and_the_socket_goes_on(
    eliza, monkeypatch
) -> None:
    failing_store(monkeypatch)
    socket = WebsocketCommunicator(application, "/llm/eliza")
    assert (await socket.connect())[0]
    good = payload([sparse_user("Hello")])
    await socket.send_to(text_data=good)
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "assistant_end":
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    assert {"type": "error", "code": "internal", "message": "the reply failed; try again"} in (
        frames
    )
    assert (await clm_until_end_after(socket, good))[-1] == {"type": "assistant_end"}
    await socket.disconnect()


# --- non-public agents on the custom-LLM routes --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "token", "served"),
    [
        ({"is_public": True}, "", True),
        ({"is_public": False}, "", False),
        ({"is_public": False}, "guess", False),
        ({"is_public": False, "clm_token": "tok-1"}, "", False),
        ({"is_public": False, "clm_token": "tok-1"}, "tok-1", True),
        ({"is_public": True, "clm_token": "tok-1"}, "wrong", False),
    ],
)
async def test_the_custom_llm_routes_serve_a_non_public_agent_only_with_its_token(
    make_agent, fields, token, served
) -> None:
    await sync_to_async(make_agent)(slug="desk", **fields)
    query = f"?token={token}" if token else ""
    socket = WebsocketCommunicator(application, f"/llm/desk{query}")
    assert (await socket.connect())[0]
    if served:
        assert (await clm_until_end_after(socket, payload([sparse_user("Hi")])))[-1] == {
            "type": "assistant_end"
        }
        await socket.disconnect()
    else:
        frame = json.loads(await socket.receive_from(timeout=5))
        assert (frame["type"], frame["code"]) == ("error", "unauthorized")
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    response = await AsyncClient().post(
        "/llm/desk/chat/completions", body, content_type="application/json", headers=headers
    )
    assert response.status_code == (200 if served else 401)
    if served:
        await body_of(response)
    assert await turn_count() == (4 if served else 0)
