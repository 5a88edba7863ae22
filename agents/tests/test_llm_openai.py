"""The OpenAI providers and ReplyStream, driving the real ``openai`` client against FakeOpenAI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.conversations import Conversation
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from agents.llm import (
    DEFAULT_FALLBACK_TEXT,
    ChatMessage,
    ConversationContext,
    LLMConfig,
    LLMError,
    LLMProvider,
    LLMRequest,
    OpenAICompatibleProvider,
    OpenAIResponsesProvider,
    Passage,
    ReplyStream,
    aclose_cached_clients,
    build_provider,
)
from testing.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789"
REPLY = ["One", " two", " three", " four."]
GREETING = ChatMessage("assistant", "Hello, how can I help?")


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def fake(fake_server: FakeOpenAI) -> AsyncIterator[FakeOpenAI]:
    fake_server.reset()
    fake_server.reply = lambda request: REPLY
    yield fake_server
    # Clients are cached per event loop; each test has its own loop, so close them here.
    await aclose_cached_clients()
    assert fake_server.errors == []


def responses_config(fake: FakeOpenAI, **overrides: Any) -> LLMConfig:
    config = LLMConfig(
        provider="openai",
        model="gpt-test",
        api_key=KEY,
        base_url=fake.base_url,
        timeout_s=5.0,
        max_retries=2,
    )
    return dataclasses.replace(config, **overrides)


def compatible_config(fake: FakeOpenAI, **overrides: Any) -> LLMConfig:
    return responses_config(
        fake, **{"provider": "openai_compatible", "model": "llama3", "api_key": "", **overrides}
    )


def turn(
    *messages: ChatMessage, system_prompt: str = "You are kind.", passages: tuple[Passage, ...] = ()
) -> LLMRequest:
    return LLMRequest(system_prompt=system_prompt, messages=list(messages), passages=passages)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


async def collect(
    provider: LLMProvider, request: LLMRequest, context: ConversationContext
) -> list[str]:
    return [delta async for delta in provider.stream_reply(request, context)]


async def run_stream(stream: ReplyStream) -> list[str]:
    return [delta async for delta in stream]


async def eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# --- Responses API: streaming and conversations -----------------------------------


async def test_responses_provider_streams_the_text_deltas_in_order(fake: FakeOpenAI) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))

    deltas = await collect(provider, turn(user("Count to four.")), ConversationContext())

    assert deltas == REPLY


async def test_first_turn_creates_a_conversation_seeded_with_the_history_and_sends_only_the_new_message(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))
    context = ConversationContext()

    await collect(provider, turn(GREETING, user("What are your hours?")), context)

    [created] = fake.requests_to("/v1/conversations")
    [response] = fake.requests_to("/v1/responses")
    assert created.json == {"items": [{"role": "assistant", "content": "Hello, how can I help?"}]}
    assert list(fake.conversations) == [context.provider_conversation_id]
    assert context.provider_conversation_id.startswith("conv_")
    assert response.json["conversation"] == context.provider_conversation_id
    assert response.json["input"] == [{"role": "user", "content": "What are your hours?"}]
    assert [r.path for r in fake.requests] == ["/v1/conversations", "/v1/responses"]


async def test_a_conversation_without_history_is_created_empty(fake: FakeOpenAI) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))

    await collect(provider, turn(user("Hi.")), ConversationContext())

    [created] = fake.requests_to("/v1/conversations")
    assert created.json == {}


async def test_the_next_turn_reuses_the_conversation_and_sends_only_the_new_message(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))
    context = ConversationContext()
    await collect(provider, turn(GREETING, user("First question?")), context)
    conversation_id = context.provider_conversation_id

    history = [GREETING, user("First question?"), ChatMessage("assistant", "One two three four.")]
    await collect(provider, turn(*history, user("Second question?")), context)

    assert len(fake.requests_to("/v1/conversations")) == 1
    second = fake.requests_to("/v1/responses")[1]
    assert context.provider_conversation_id == conversation_id
    assert second.json["conversation"] == conversation_id
    assert second.json["input"] == [{"role": "user", "content": "Second question?"}]
    stored = [
        (item["role"], item["content"][0]["text"]) for item in fake.conversations[conversation_id]
    ]
    assert stored == [
        ("assistant", "Hello, how can I help?"),
        ("user", "First question?"),
        ("assistant", "One two three four."),
        ("user", "Second question?"),
        ("assistant", "One two three four."),
    ]


async def test_a_conversation_unknown_to_openai_is_replaced_on_the_retry(fake: FakeOpenAI) -> None:
    context = ConversationContext(provider_conversation_id="conv_expired")
    request = turn(GREETING, user("Still there?"))
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)), request, context, backoff_base_s=0.001
    )

    deltas = await run_stream(stream)

    assert deltas == REPLY
    assert stream.outcome.attempts == 2
    assert [r.path for r in fake.requests] == [
        "/v1/responses",
        "/v1/conversations",
        "/v1/responses",
    ]
    assert fake.requests[0].json["conversation"] == "conv_expired"
    assert fake.requests[1].json == {
        "items": [{"role": "assistant", "content": "Hello, how can I help?"}]
    }
    assert (
        context.provider_conversation_id == fake.requests[2].json["conversation"] != "conv_expired"
    )


async def test_a_long_history_is_seeded_twenty_items_at_a_time(fake: FakeOpenAI) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))
    history = [ChatMessage("user" if n % 2 else "assistant", f"message {n}") for n in range(45)]
    context = ConversationContext()

    await collect(provider, turn(*history, user("Now?")), context)

    [created] = fake.requests_to("/v1/conversations")
    added = fake.requests_to(f"/v1/conversations/{context.provider_conversation_id}/items")
    assert [len(created.json["items"])] + [len(r.json["items"]) for r in added] == [20, 20, 5]
    assert [
        item["content"][0]["text"] for item in fake.conversations[context.provider_conversation_id]
    ] == [f"message {n}" for n in range(45)] + ["Now?", "One two three four."]


async def test_instructions_carry_the_system_prompt_and_the_passages(fake: FakeOpenAI) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))
    passages = (
        Passage(ref="hours.md#1", text="We open at 9 and close at 5.", title="Opening hours"),
        Passage(ref="faq#7", text="Parking is free.\n"),
    )

    await collect(
        provider,
        turn(user("When?"), system_prompt="You are the front desk.", passages=passages),
        ConversationContext(),
    )

    [response] = fake.requests_to("/v1/responses")
    assert response.json["instructions"] == (
        "You are the front desk.\n\n"
        "# Knowledge\n"
        "Passages retrieved for this turn. Answer from them when they are relevant; if they do not "
        "cover the question, say so rather than guess. Never read the bracketed references aloud.\n\n"
        "[hours.md#1] Opening hours\nWe open at 9 and close at 5.\n\n"
        "[faq#7]\nParking is free."
    )


async def test_the_request_carries_model_sampling_and_stream_settings_and_no_tools_by_default(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake, temperature=0.2, max_tokens=123))

    await collect(provider, turn(user("Hi.")), ConversationContext())

    [response] = fake.requests_to("/v1/responses")
    assert response.json["model"] == "gpt-test"
    assert response.json["stream"] is True
    assert response.json["temperature"] == 0.2
    assert response.json["max_output_tokens"] == 123
    assert response.json["instructions"] == "You are kind."
    assert "tools" not in response.json


async def test_a_vector_store_adds_the_file_search_tool_and_search_events_are_not_spoken(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake, vector_store_id="vs_abc123"))

    deltas = await collect(provider, turn(user("What does the manual say?")), ConversationContext())

    [response] = fake.requests_to("/v1/responses")
    assert response.json["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_abc123"]}]
    assert deltas == REPLY


async def test_every_request_carries_the_api_key_as_a_bearer_token(fake: FakeOpenAI) -> None:
    provider = OpenAIResponsesProvider(responses_config(fake))

    await collect(provider, turn(user("Hi.")), ConversationContext())

    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {KEY}"] * 2


def test_the_openai_provider_needs_a_key_and_a_model() -> None:
    with pytest.raises(LLMError, match="needs an API key") as no_key:
        OpenAIResponsesProvider(LLMConfig(provider="openai", model="gpt-test"))
    with pytest.raises(LLMError, match="needs a model name") as no_model:
        OpenAIResponsesProvider(LLMConfig(provider="openai", api_key=KEY))

    assert (no_key.value.kind, no_model.value.kind) == ("config", "config")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout_s", 0.0, "timeout_s must be positive, got 0.0"),
        ("max_retries", -1, "max_retries must be >= 0, got -1"),
        ("max_tokens", 0, "max_tokens must be positive, got 0"),
    ],
)
def test_a_config_with_impossible_limits_is_a_config_error(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(LLMError, match=message) as raised:
        LLMConfig(provider="openai", **{field: value})  # type: ignore[arg-type]

    assert raised.value.kind == "config"


def test_the_api_key_is_not_in_the_config_repr() -> None:
    config = LLMConfig(provider="openai", model="gpt-test", api_key=KEY)

    assert KEY not in repr(config)
    assert "api_key" not in repr(config)


def test_the_registry_builds_both_openai_providers(fake_server: FakeOpenAI) -> None:
    assert isinstance(build_provider(responses_config(fake_server)), OpenAIResponsesProvider)
    assert isinstance(build_provider(compatible_config(fake_server)), OpenAICompatibleProvider)


# --- Chat Completions (OpenAI-compatible servers) ------------------------------------


async def test_compatible_provider_streams_deltas_and_sends_system_prompt_passages_and_history(
    fake: FakeOpenAI,
) -> None:
    provider = OpenAICompatibleProvider(compatible_config(fake, temperature=0.3, max_tokens=64))
    request = turn(
        GREETING,
        user("Is parking free?"),
        ChatMessage("assistant", "Let me check."),
        user("Thanks, and?"),
        system_prompt="You are the front desk.",
        passages=(Passage("faq#7", "Parking is free."),),
    )

    deltas = await collect(provider, request, ConversationContext())

    [sent] = fake.requests
    assert deltas == REPLY
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "llama3"
    assert sent.json["stream"] is True
    assert (sent.json["temperature"], sent.json["max_tokens"]) == (0.3, 64)
    assert sent.json["messages"] == [
        {
            "role": "system",
            "content": "You are the front desk.\n\n# Knowledge\nPassages retrieved for this turn. Answer "
            "from them when they are relevant; if they do not cover the question, say so rather than "
            "guess. Never read the bracketed references aloud.\n\n[faq#7]\nParking is free.",
        },
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Is parking free?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": "Thanks, and?"},
    ]


async def test_compatible_provider_sends_a_placeholder_key_when_none_is_configured(
    fake: FakeOpenAI,
) -> None:
    await collect(
        OpenAICompatibleProvider(compatible_config(fake)), turn(user("Hi.")), ConversationContext()
    )
    await collect(
        OpenAICompatibleProvider(compatible_config(fake, api_key=KEY)),
        turn(user("Hi.")),
        ConversationContext(),
    )

    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer no-key", f"Bearer {KEY}"]


async def test_compatible_provider_leaves_the_context_alone(fake: FakeOpenAI) -> None:
    context = ConversationContext()

    await collect(OpenAICompatibleProvider(compatible_config(fake)), turn(user("Hi.")), context)

    assert context == ConversationContext()


def test_the_compatible_provider_needs_a_base_url() -> None:
    with pytest.raises(LLMError, match="needs a base URL") as raised:
        OpenAICompatibleProvider(LLMConfig(provider="openai_compatible", model="llama3"))

    assert raised.value.kind == "config"


# --- ReplyStream: retries, timeouts, fallback, cancellation --------------------------


async def test_a_429_is_retried_and_the_text_is_not_duplicated(fake: FakeOpenAI) -> None:
    fake.fail_next(429, path="/v1/responses")
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == REPLY
    assert stream.outcome.text == "One two three four."
    assert (stream.outcome.attempts, stream.outcome.used_fallback, stream.outcome.error) == (
        2,
        False,
        "",
    )
    assert [r.path for r in fake.requests] == [
        "/v1/conversations",
        "/v1/responses",
        "/v1/responses",
    ]


async def test_three_500s_give_the_fallback_line_and_record_the_error(fake: FakeOpenAI) -> None:
    fake.fail_next(500, times=3, path="/v1/responses")
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == [DEFAULT_FALLBACK_TEXT]
    assert stream.outcome.text == "Sorry, I'm having trouble answering right now. Please try again."
    assert stream.outcome.used_fallback is True
    assert (
        stream.outcome.error
        == "server: server error (HTTP 500): The server had an error while processing your request."
    )
    assert stream.outcome.attempts == 3
    assert stream.outcome.first_token_ms is None
    assert len(fake.requests_to("/v1/responses")) == 3


async def test_a_400_is_not_retried(fake: FakeOpenAI) -> None:
    fake.fail_next(400, path="/v1/responses", message="Unsupported parameter: 'temperature'.")
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == [DEFAULT_FALLBACK_TEXT]
    assert (
        stream.outcome.error
        == "client: request rejected (HTTP 400): Unsupported parameter: 'temperature'."
    )
    assert stream.outcome.attempts == 1
    assert len(fake.requests_to("/v1/responses")) == 1


async def test_an_exhausted_quota_429_is_not_retried(fake: FakeOpenAI) -> None:
    fake.fail_next(
        429,
        path="/v1/responses",
        code="insufficient_quota",
        message="You exceeded your current quota.",
    )
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    await run_stream(stream)

    assert (
        stream.outcome.error
        == "rate_limited: rate limited (HTTP 429): You exceeded your current quota."
    )
    assert stream.outcome.attempts == 1


async def test_a_stall_times_out_closes_the_response_and_is_retried(fake: FakeOpenAI) -> None:
    fake.stall_next(10.0, path="/v1/responses")
    config = responses_config(fake, timeout_s=0.3)
    stream = ReplyStream(
        OpenAIResponsesProvider(config),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    started = time.monotonic()
    deltas = await run_stream(stream)

    assert time.monotonic() - started < 2.0
    assert deltas == REPLY
    assert (stream.outcome.attempts, stream.outcome.error) == (2, "")
    stalled, retried = fake.requests_to("/v1/responses")
    assert await eventually(lambda: stalled.disconnected)
    assert retried.disconnected is False


async def test_a_failure_mid_stream_appends_the_fallback_and_is_not_retried(
    fake: FakeOpenAI,
) -> None:
    fake.disconnect_next(after_deltas=2, path="/v1/responses")
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == [
        "One",
        " two",
        " Sorry, I'm having trouble answering right now. Please try again.",
    ]
    assert (
        stream.outcome.text
        == "One two Sorry, I'm having trouble answering right now. Please try again."
    )
    assert stream.outcome.used_fallback is True
    assert stream.outcome.error == "connection: connection failed: Connection error."
    assert stream.outcome.attempts == 1
    assert len(fake.requests_to("/v1/responses")) == 1


async def test_the_compatible_provider_is_retried_after_a_503(fake: FakeOpenAI) -> None:
    fake.fail_next(503)
    stream = ReplyStream(
        OpenAICompatibleProvider(compatible_config(fake)),
        turn(user("Hi.")),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == REPLY
    assert stream.outcome.attempts == 2
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 2


async def test_a_request_without_a_user_message_gets_the_fallback_without_retries(
    fake: FakeOpenAI,
) -> None:
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)),
        turn(GREETING),
        ConversationContext(),
        backoff_base_s=0.001,
    )

    deltas = await run_stream(stream)

    assert deltas == [DEFAULT_FALLBACK_TEXT]
    assert stream.outcome.error == "client: the request has no user message to answer"
    assert stream.outcome.attempts == 1
    assert fake.requests == []


async def test_first_token_ms_covers_the_wait_for_the_first_delta(fake: FakeOpenAI) -> None:
    fake.stall_next(0.2, path="/v1/responses")
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)), turn(user("Hi.")), ConversationContext()
    )

    await run_stream(stream)

    assert stream.outcome.first_token_ms is not None
    assert 200 <= stream.outcome.first_token_ms < 3000
    assert stream.outcome.attempts == 1


async def test_cancelling_the_consumer_mid_stream_stops_promptly_and_closes_the_response(
    fake: FakeOpenAI,
) -> None:
    fake.reply = lambda request: [f" word{n}" for n in range(100)]
    fake.delta_delay_s = 0.05
    stream = ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)), turn(user("Talk.")), ConversationContext()
    )
    received: list[str] = []
    two_deltas = asyncio.Event()

    async def consume() -> None:
        async for delta in stream:
            received.append(delta)
            if len(received) == 2:
                two_deltas.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_deltas.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - cancelled_at < 0.2
    assert stream.outcome.cancelled is True
    assert stream.outcome.used_fallback is False
    assert stream.outcome.text == "".join(received)
    assert 2 <= len(received) < 100
    [response] = fake.requests_to("/v1/responses")
    assert await eventually(lambda: response.disconnected)


async def test_aclose_mid_stream_stops_the_provider_and_closes_the_response(
    fake: FakeOpenAI,
) -> None:
    fake.reply = lambda request: [f" word{n}" for n in range(100)]
    fake.delta_delay_s = 0.05

    async with ReplyStream(
        OpenAICompatibleProvider(compatible_config(fake)),
        turn(user("Talk.")),
        ConversationContext(),
    ) as stream:
        async for delta in stream:
            assert delta == " word0"
            break

    assert stream.outcome.cancelled is True
    assert stream.outcome.text == " word0"
    [request] = fake.requests
    assert await eventually(lambda: request.disconnected)
    assert [delta async for delta in stream] == []


async def test_a_completed_stream_is_not_marked_cancelled(fake: FakeOpenAI) -> None:
    async with ReplyStream(
        OpenAIResponsesProvider(responses_config(fake)), turn(user("Hi.")), ConversationContext()
    ) as stream:
        deltas = [delta async for delta in stream]

    assert deltas == REPLY
    assert stream.outcome.cancelled is False
    assert fake.requests_to("/v1/responses")[0].disconnected is False


# --- The fake speaks the real wire format -------------------------------------------


def test_the_fake_responses_stream_parses_as_the_sdk_event_types(fake_server: FakeOpenAI) -> None:
    fake_server.reset()
    events = TypeAdapter(ResponseStreamEvent)
    with httpx.Client(base_url=fake_server.base_url) as http:
        conversation = Conversation.model_validate(http.post("/conversations", json={}).json())
        body = {
            "model": "gpt-test",
            "input": "Hi",
            "stream": True,
            "conversation": conversation.id,
            "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}],
        }
        streamed = http.post("/responses", json=body)
        whole = http.post("/responses", json={**body, "stream": False})

    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    blocks = [
        dict(line.split(": ", 1) for line in block.split("\n"))
        for block in streamed.text.strip().split("\n\n")
    ]
    parsed = [events.validate_python(json.loads(block["data"])) for block in blocks]
    assert [block["event"] for block in blocks] == [event.type for event in parsed]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    assert parsed[0].type == "response.created"
    assert parsed[-1].type == "response.completed"
    assert (
        "".join(event.delta for event in parsed if event.type == "response.output_text.delta")
        == "Hello from the fake model."
    )
    assert Response.model_validate(whole.json()).output_text == "Hello from the fake model."
    assert fake_server.errors == []


def test_the_fake_chat_stream_parses_as_sdk_chunks_and_ends_with_done(
    fake_server: FakeOpenAI,
) -> None:
    fake_server.reset()
    with httpx.Client(base_url=fake_server.base_url) as http:
        streamed = http.post(
            "/chat/completions",
            json={
                "model": "llama3",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )

    blocks = streamed.text.strip().split("\n\n")
    chunks = [
        ChatCompletionChunk.model_validate_json(block.removeprefix("data: "))
        for block in blocks[:-1]
    ]
    assert blocks[-1] == "data: [DONE]"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "Hello from the fake model."
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
