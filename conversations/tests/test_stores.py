"""Storing exchanges through the group-commit writer, whatever the channel layer does."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async

from conversations import stores
from conversations.models import Channel, Turn
from conversations.realtime.session import SpokenReply, TurnMetrics, Utterance
from conversations.replies import Answer
from conversations.stores import UserTurn, open_conversation, record_exchange
from conversations.voice_store import VoiceTurnStore
from testing.waits import until

pytestmark = pytest.mark.django_db(transaction=True)


class HangingLayer:
    """A channel layer whose Redis never answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def group_send(self, group: str, message: dict[str, object]) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_a_hanging_channel_layer_delays_no_reply_and_loses_no_turn(
    make_agent, monkeypatch, caplog
) -> None:
    agent = await sync_to_async(make_agent)()
    layer = HangingLayer()
    monkeypatch.setattr(stores, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(stores, "PUBLISH_TIMEOUT_S", 0.2)
    live = await open_conversation(agent, Channel.WEB_TEXT, None, None)
    caplog.set_level(logging.WARNING, logger="conversations.stores")

    for text in ("First.", "Second."):
        answer = Answer(generated=[f"Re: {text}"], sent=[f"Re: {text}"])
        # Each write returns once committed, not once monitors have been told.
        await asyncio.wait_for(record_exchange(live, UserTurn(text=text), answer), timeout=5)

    texts = await sync_to_async(
        lambda: list(Turn.objects.order_by("index").values_list("text", flat=True))
    )()
    assert texts == ["First.", "Re: First.", "Second.", "Re: Second."]
    # The publishing gives up after its timeout and says so, once per write.
    await until(
        lambda: len([r for r in caplog.records if "telling monitors" in r.getMessage()]) == 2,
        what="both publishing failures to be logged",
    )
    assert layer.calls == 2
    failures = [r for r in caplog.records if "telling monitors" in r.getMessage()]
    assert [r.getMessage() for r in failures] == [
        "telling monitors about 2 stored turns failed"
    ] * 2


async def test_a_voice_reply_cut_after_it_was_stored_is_amended_in_place(make_agent) -> None:
    agent = await sync_to_async(make_agent)()
    live = await open_conversation(agent, Channel.WEB_VOICE, None, None)
    store = VoiceTurnStore(live)
    greeting = SpokenReply(answer=Answer(generated=["Hello there."], sent=["Hello there."]))
    answer = SpokenReply(answer=Answer(generated=["One. Two."], sent=["One. Two."]))
    first = await store.record(user=None, reply=greeting, metrics=TurnMetrics())
    second = await store.record(user=Utterance(text="Hi."), reply=answer, metrics=TurnMetrics())
    assert (first, second) == (0, 2)

    await store.cut(second, heard_text="One.")

    rows = await sync_to_async(
        lambda: list(
            Turn.objects.order_by("index").values_list("text", "heard_text", "interrupted")
        )
    )()
    assert rows == [
        ("Hello there.", "Hello there.", False),
        ("Hi.", "Hi.", False),
        ("One. Two.", "One.", True),
    ]
    with pytest.raises(Turn.DoesNotExist):
        await store.cut(1, heard_text="")  # the user's turn: not a reply
