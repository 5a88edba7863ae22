"""The Hume custom-LLM WebSocket, through a real WebSocket client against the ASGI app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from hume.empathic_voice.types import AssistantEnd, AssistantInput

from agents.eliza import sentence_case
from conversations.models import Conversation, Turn
from conversations.tests.hume_payloads import payload, sdk_assistant, sdk_user, sparse_user
from testing.waits import until
from voiceapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
REFERENCE = json.loads((SHARED / "conversations.json").read_text())["conversations"]


@pytest.fixture
def doctor_agent(make_agent) -> Any:
    """The default agent, running the 1966 DOCTOR script (test data from ../shared)."""
    return make_agent(slug="doctor", eliza_script=(SHARED / "DOCTOR-1966.txt").read_text())


async def open_socket(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask(socket: WebsocketCommunicator, raw: str) -> list[dict[str, Any]]:
    """Send one payload; return the frames up to and including ``assistant_end``."""
    await socket.send_to(text_data=raw)
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "assistant_end":
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    return frames


def _all(queryset: Any) -> list[Any]:
    return list(queryset)


def reply_text(frames: list[dict[str, Any]]) -> str:
    inputs = frames[:-1]
    for frame in inputs:
        AssistantInput.model_validate(frame)
        assert set(frame) == {"type", "text"}
    AssistantEnd.model_validate(frames[-1])
    assert frames[-1] == {"type": "assistant_end"}
    return " ".join(frame["text"] for frame in inputs)


def history_for(exchanges: list[dict[str, str]], upto: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for exchange in exchanges[:upto]:
        messages.append(sdk_user(exchange["user"]))
        messages.append(sdk_assistant(sentence_case(exchange["eliza"])))
    messages.append(sdk_user(exchanges[upto]["user"] + " {calm, interested}", Calmness=0.6))
    return messages


@pytest.mark.parametrize("conversation", REFERENCE, ids=[c["name"] for c in REFERENCE])
async def test_socket_replies_equal_the_engine_on_the_reference_conversations(
    doctor_agent, conversation
) -> None:
    socket = await open_socket("/llm")
    exchanges = conversation["exchanges"]
    for index, exchange in enumerate(exchanges):
        frames = await ask(socket, payload(history_for(exchanges, index)))
        assert reply_text(frames) == sentence_case(exchange["eliza"]), f"exchange {index}"
    await socket.disconnect()
    stored = await sync_to_async(Turn.objects.count)()
    assert stored == 2 * len(exchanges)


async def test_reconnecting_with_the_session_id_continues_the_conversation(doctor_agent) -> None:
    exchanges = REFERENCE[0]["exchanges"]
    half = len(exchanges) // 2
    for start, stop in ((0, half), (half, len(exchanges))):
        socket = await open_socket("/llm/doctor")
        for index in range(start, stop):
            frames = await ask(socket, payload(history_for(exchanges, index), "caller-7"))
            assert reply_text(frames) == sentence_case(exchanges[index]["eliza"]), index
        await socket.disconnect()
    conversations = await sync_to_async(_all)(Conversation.objects.all())
    assert [(c.channel, c.external_id) for c in conversations] == [("hume_clm", "caller-7")]


async def test_turns_are_stored_with_prosody_time_and_timings(doctor_agent) -> None:
    socket = await open_socket("/llm")
    message = sdk_user("I am sad today. {quite sad}", begin=1200, end=2400, Sadness=0.9)
    await ask(socket, payload([message], "s-1"))
    await socket.disconnect()
    turns = await sync_to_async(_all)(Turn.objects.order_by("index"))
    user, assistant = turns
    assert (user.role, user.text, user.speech_time) == (
        "user",
        "I am sad today.",
        {"begin": 1200, "end": 2400},
    )
    assert user.prosody["Sadness"] == 0.9
    assert (assistant.role, assistant.status, assistant.interrupted) == (
        "assistant",
        "complete",
        False,
    )
    assert assistant.text == assistant.heard_text != ""
    assert assistant.llm_first_token_ms is not None
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.engine_state != {}


async def test_bad_frames_get_error_frames_and_the_socket_keeps_serving(doctor_agent) -> None:
    socket = await open_socket("/llm")
    for raw, code in (
        ("{not json", "invalid_json"),
        ('{"messages": 3}', "invalid_payload"),
        ('{"messages": []}', "invalid_payload"),
    ):
        await socket.send_to(text_data=raw)
        frame = json.loads(await socket.receive_from(timeout=5))
        assert (frame["type"], frame["code"]) == ("error", code)
        assert "Traceback" not in frame["message"]
    assert await sync_to_async(Turn.objects.count)() == 0  # nothing bogus stored
    frames = await ask(socket, payload([sparse_user("Hello")]))
    assert reply_text(frames) == "How do you do. Please state your problem."
    await socket.disconnect()


@pytest.mark.parametrize(
    ("path", "code", "close_code"),
    [("/llm/nobody", "unknown_agent", 4404), ("/llm/sleeping", "inactive_agent", 4404)],
)
async def test_unknown_or_inactive_agents_are_refused(make_agent, path, code, close_code) -> None:
    await sync_to_async(make_agent)()
    await sync_to_async(make_agent)(slug="sleeping", is_active=False)
    socket = await open_socket(path)
    frame = json.loads(await socket.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", code)
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": close_code}


@pytest.mark.parametrize("query", ["", "?token=wrong"])
async def test_a_token_agent_refuses_missing_or_wrong_tokens(make_agent, query) -> None:
    await sync_to_async(make_agent)(slug="secure", clm_token="s3cret-token")
    socket = await open_socket(f"/llm/secure{query}")
    frame = json.loads(await socket.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", "unauthorized")
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_a_token_agent_serves_the_right_token(make_agent) -> None:
    await sync_to_async(make_agent)(slug="secure", clm_token="s3cret-token")
    socket = await open_socket("/llm/secure?token=s3cret-token")
    frames = await ask(socket, payload([sparse_user("Hello")]))
    assert frames[-1] == {"type": "assistant_end"}
    await socket.disconnect()


async def test_multi_megabyte_histories_are_answered(doctor_agent) -> None:
    filler = [sdk_user("x" * 2000) for _ in range(1500)]  # about 5 MB with prosody
    raw = payload([*filler, sparse_user("I remember my mother.")])
    assert len(raw) > 4 * 1024 * 1024
    socket = await open_socket("/llm")
    frames = await ask(socket, payload([sparse_user("Hello")]))
    frames = await ask(socket, raw)
    assert reply_text(frames) != ""
    await socket.disconnect()


async def test_frames_over_the_cap_are_refused_and_the_socket_continues(
    doctor_agent, settings
) -> None:
    settings.CLM_MAX_FRAME_BYTES = 4096
    socket = await open_socket("/llm")
    await socket.send_to(text_data=payload([sparse_user("y" * 5000)]))
    frame = json.loads(await socket.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", "payload_too_large")
    frames = await ask(socket, payload([sparse_user("Hello")]))
    assert frames[-1] == {"type": "assistant_end"}
    await socket.disconnect()


@pytest.fixture
def remote_agent(make_agent, fake_openai) -> Any:
    """An agent on an OpenAI-compatible server (the local fake), as the default."""
    return make_agent(
        slug="remote",
        llm_provider="openai_compatible",
        llm_model="llama-test",
        llm_base_url=fake_openai.base_url,
        prompt_text="You are a concise assistant.",
    )


async def test_a_remote_model_gets_the_prompt_and_the_history(remote_agent, fake_openai) -> None:
    fake_openai.reply_text = "It costs 12 dollars. Anything else?"
    socket = await open_socket("/llm/remote")
    history = [sparse_user("Hi {calm}"), sdk_assistant("Hello!"), sparse_user("Price? {curious}")]
    frames = await ask(socket, payload(history))
    await socket.disconnect()
    # Numbers become words for Hume's voice; the stored turn keeps the model's own text.
    assert reply_text(frames) == "It costs twelve dollars. Anything else?"
    sent = fake_openai.requests_to("/v1/chat/completions")[-1].json
    assert sent["model"] == "llama-test"
    assert [(m["role"], m["content"]) for m in sent["messages"][1:]] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Price?"),
    ]
    assert "You are a concise assistant." in sent["messages"][0]["content"]
    assistant = await sync_to_async(Turn.objects.get)(role="assistant")
    assert assistant.text == "It costs 12 dollars. Anything else?"


async def test_a_new_payload_cancels_the_reply_in_flight(remote_agent, fake_openai) -> None:
    fake_openai.reply = lambda request: (
        "First answer." if "first" in json.dumps(request.json) else "Second answer."
    )
    fake_openai.stall_next(30.0)  # the first reply hangs before its first delta
    socket = await open_socket("/llm/remote")
    await socket.send_to(text_data=payload([sparse_user("first question")], "s"))
    await until(lambda: bool(fake_openai.requests), what="the first request at the model")
    frames = await ask(socket, payload([sparse_user("second question")], "s"))
    await socket.disconnect()
    first, second = fake_openai.requests_to("/v1/chat/completions")
    assert (first.disconnected, second.disconnected) == (True, False)  # cancelled upstream too
    # Only the second reply is heard, ended once: the two never interleave.
    assert [f["type"] for f in frames].count("assistant_end") == 1
    assert reply_text(frames) == "Second answer."
    turns = await sync_to_async(_all)(
        Turn.objects.order_by("index").values_list("role", "text", "heard_text", "interrupted")
    )
    assert turns == [
        ("user", "first question", "first question", False),
        ("assistant", "", "", True),
        ("user", "second question", "second question", False),
        ("assistant", "Second answer.", "Second answer.", False),
    ]


async def test_a_failing_provider_speaks_the_fallback_and_stores_the_error(
    remote_agent, fake_openai
) -> None:
    fake_openai.fail_next(status=503, times=10)
    socket = await open_socket("/llm/remote")
    frames = await ask(socket, payload([sparse_user("Hello?")]))
    await socket.disconnect()
    assert reply_text(frames) == "Sorry, I'm having trouble answering right now. Please try again."
    assistant = await sync_to_async(Turn.objects.get)(role="assistant")
    assert assistant.status == "failed"
    assert "503" in assistant.error
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 3  # first try + 2 retries
