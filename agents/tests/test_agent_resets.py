"""A changed prompt marks the agent's open provider conversations for reset, by its policy."""

from __future__ import annotations

import pytest

from agents.models import Agent, ResetPolicy
from agents.services import prompt_version_create
from conversations.models import Channel, Conversation
from conversations.services import conversation_start

pytestmark = pytest.mark.django_db


def open_conversation(agent: Agent) -> Conversation:
    conversation = conversation_start(agent=agent, channel=Channel.HTTP_API)
    Conversation.objects.filter(pk=conversation.pk).update(provider_conversation_id="conv_1")
    return conversation


def test_a_changed_prompt_resets_open_conversations_after_commit(
    make_agent, django_capture_on_commit_callbacks
) -> None:
    agent = make_agent(reset_policy=ResetPolicy.ON_CHANGE)
    conversation = open_conversation(agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        prompt_version_create(agent=agent, text="A new prompt.")
    assert Conversation.objects.get(pk=conversation.pk).reset_requested is False
    for callback in callbacks:
        callback()
    assert Conversation.objects.get(pk=conversation.pk).reset_requested is True


def test_the_same_prompt_resets_nothing(make_agent, django_capture_on_commit_callbacks) -> None:
    agent = make_agent(prompt_text="Same.", reset_policy=ResetPolicy.ON_CHANGE)
    open_conversation(agent)
    with django_capture_on_commit_callbacks(execute=True):
        prompt_version_create(agent=agent, text="Same.")
    assert not Conversation.objects.filter(reset_requested=True).exists()


def test_an_agent_that_never_resets_keeps_its_conversations(
    make_agent, django_capture_on_commit_callbacks
) -> None:
    agent = make_agent(reset_policy=ResetPolicy.NEVER)
    open_conversation(agent)
    with django_capture_on_commit_callbacks(execute=True):
        prompt_version_create(agent=agent, text="Another prompt.")
    assert not Conversation.objects.filter(reset_requested=True).exists()
