"""ElizaProvider: the ELIZA engine behind the LLM interface, and the registry around it."""

from __future__ import annotations

import pytest

from agents.eliza import Eliza, load_default_script, parse_script, sentence_case
from agents.llm import (
    ChatMessage,
    ConversationContext,
    ElizaProvider,
    LLMConfig,
    LLMError,
    LLMRequest,
    Passage,
    ReplyStream,
    build_provider,
    provider_names,
)
from agents.llm.eliza import _script

TINY_SCRIPT = """(HELLO THERE)
START
(DREAM ((0) (WHAT DOES THAT DREAM SUGGEST TO YOU) (DO YOU DREAM OFTEN)))
(NONE ((0) (PLEASE GO ON) (I SEE)))
()
"""

INPUTS = [
    "I had a strange dream last night.",
    "My mother was in it.",
    "I dream about her often.",
    "Everybody dreams about their mother.",
    "You are not very helpful.",
]


def request_for(
    *user_texts: str, system_prompt: str = "", passages: tuple[Passage, ...] = ()
) -> LLMRequest:
    messages: list[ChatMessage] = []
    for text in user_texts:
        messages.append(ChatMessage("user", text))
        messages.append(ChatMessage("assistant", "(earlier reply)"))
    return LLMRequest(system_prompt=system_prompt, messages=messages[:-1], passages=passages)


async def reply(
    provider: ElizaProvider, request: LLMRequest, context: ConversationContext
) -> list[str]:
    return [delta async for delta in provider.stream_reply(request, context)]


async def test_reply_is_the_sentence_cased_engine_response_as_one_delta() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza"))
    expected = sentence_case(Eliza(load_default_script()).respond(INPUTS[0]))

    deltas = await reply(provider, request_for(INPUTS[0]), ConversationContext())

    assert deltas == [expected]


async def test_answers_the_last_user_message_not_the_history() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    request = LLMRequest(
        system_prompt="",
        messages=[
            ChatMessage("user", "nothing special"),
            ChatMessage("assistant", "Please go on."),
            ChatMessage("user", "I had a dream"),
        ],
    )

    assert await reply(provider, request, ConversationContext()) == [
        "What does that dream suggest to you."
    ]


async def test_state_written_to_the_context_continues_the_conversation_across_instances() -> None:
    one_engine = Eliza(load_default_script())
    expected = [sentence_case(one_engine.respond(text)) for text in INPUTS]
    context = ConversationContext()

    got = []
    for text in INPUTS:
        # A new provider for every turn, as in a fresh process: only the context carries state.
        provider = ElizaProvider(LLMConfig(provider="eliza"))
        got += await reply(provider, request_for(text), context)

    assert got == expected
    assert context.engine_state == one_engine.state.to_dict()


async def test_state_round_trips_through_the_context_turn_by_turn() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    context = ConversationContext()

    first = await reply(provider, request_for("a dream"), context)
    second = await reply(provider, request_for("a dream"), context)

    # The rule's two reassemblies are used in turn (its counter wraps back to 0), which only
    # happens if the counter survived the trip through the context.
    assert (first, second) == (["What does that dream suggest to you."], ["Do you dream often."])
    assert context.engine_state == {
        "version": 1,
        "limit": 3,
        "counters": {"DREAM#1": 0},
        "memory": [],
    }


async def test_empty_engine_state_starts_a_fresh_conversation() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))

    deltas = await reply(provider, request_for("a dream"), ConversationContext(engine_state={}))

    assert deltas == ["What does that dream suggest to you."]


async def test_unreadable_engine_state_is_discarded_and_the_conversation_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    context = ConversationContext(engine_state={"version": 99})

    deltas = await reply(provider, request_for("a dream"), context)

    assert deltas == ["What does that dream suggest to you."]
    assert context.engine_state["version"] == 1
    assert "discarding unreadable ELIZA state" in caplog.text


async def test_system_prompt_and_passages_do_not_change_the_reply() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    plain = await reply(provider, request_for("a dream"), ConversationContext())

    dressed = await reply(
        provider,
        request_for(
            "a dream", system_prompt="Be terse.", passages=(Passage("p1", "Dreams are data."),)
        ),
        ConversationContext(),
    )

    assert dressed == plain


def test_greeting_is_the_sentence_cased_script_greeting() -> None:
    assert ElizaProvider(LLMConfig(provider="eliza")).greeting() == sentence_case(
        load_default_script().greeting
    )
    assert (
        ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT)).greeting()
        == "Hello there."
    )


def test_a_script_is_parsed_once_per_process() -> None:
    _script.cache_clear()

    ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))

    info = _script.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert _script(TINY_SCRIPT) is _script(TINY_SCRIPT)
    assert _script(TINY_SCRIPT) == parse_script(TINY_SCRIPT)


def test_a_script_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(LLMError) as raised:
        ElizaProvider(LLMConfig(provider="eliza", eliza_script="(HI)\nSTART\n(BROKEN"))

    assert raised.value.kind == "config"
    assert raised.value.retryable is False


async def test_reply_stream_over_eliza_reports_the_outcome_with_first_token_time() -> None:
    provider = ElizaProvider(LLMConfig(provider="eliza", eliza_script=TINY_SCRIPT))
    ticks = iter([100.0, 100.25])

    stream = ReplyStream(
        provider, request_for("a dream"), ConversationContext(), clock=lambda: next(ticks)
    )
    deltas = [delta async for delta in stream]

    assert deltas == ["What does that dream suggest to you."]
    assert stream.outcome.text == "What does that dream suggest to you."
    assert stream.outcome.first_token_ms == 250
    assert (stream.outcome.error, stream.outcome.used_fallback) == ("", False)
    assert (stream.outcome.attempts, stream.outcome.cancelled) == (1, False)


def test_registry_builds_eliza_by_name() -> None:
    provider = build_provider(LLMConfig(provider="eliza"))

    assert isinstance(provider, ElizaProvider)
    assert provider.name == "eliza"
    assert provider_names() == ("eliza", "openai", "openai_compatible")


def test_registry_rejects_an_unknown_provider_as_a_config_error() -> None:
    with pytest.raises(
        LLMError,
        match=r"unknown LLM provider 'gpt-banana' \(known: eliza, openai, openai_compatible\)",
    ) as raised:
        build_provider(LLMConfig(provider="gpt-banana"))

    assert raised.value.kind == "config"
    assert raised.value.retryable is False
