"""Resetting provider conversations: by agents and users, on knowledge changes, on a schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from agents.models import Agent, ResetPolicy
from conversations.models import Channel, Conversation, ConversationStatus
from conversations.services import conversation_start
from knowledge.models import Document
from knowledge.services import (
    agents_mark_for_reset_on_change,
    conversations_mark_for_reset,
    document_delete,
    document_save,
)
from knowledge.tasks import conversations_reset

pytestmark = pytest.mark.django_db


def open_conversation(agent: Agent, user: User | None = None, provider_id: str = "conv_1"):
    conversation = conversation_start(agent=agent, channel=Channel.HTTP_API, user=user)
    conversation.provider_conversation_id = provider_id
    conversation.save(update_fields=["provider_conversation_id"])
    return conversation


def marked() -> set[object]:
    return set(Conversation.objects.filter(reset_requested=True).values_list("pk", flat=True))


def test_marking_by_agent_touches_only_that_agents_open_conversations(make_agent) -> None:
    first, second = make_agent(), make_agent()
    target = open_conversation(first)
    open_conversation(second)
    ended = open_conversation(first)
    Conversation.objects.filter(pk=ended.pk).update(status=ConversationStatus.ENDED)
    assert conversations_mark_for_reset(agent_ids=[first.pk]) == 1
    assert marked() == {target.pk}


def test_marking_by_user(make_agent, make_user: Callable[..., User]) -> None:
    agent = make_agent()
    alice, bob = make_user(), make_user()
    alices = open_conversation(agent, alice)
    open_conversation(agent, bob)
    assert conversations_mark_for_reset(user_ids=[alice.pk]) == 1
    assert marked() == {alices.pk}


def test_conversations_without_a_provider_conversation_are_left_alone(make_agent) -> None:
    agent = make_agent()
    open_conversation(agent, provider_id="")
    assert conversations_mark_for_reset() == 0


def test_an_empty_selection_marks_nothing(make_agent) -> None:
    open_conversation(make_agent())
    assert conversations_mark_for_reset(agent_ids=[]) == 0
    assert marked() == set()


def test_the_task_marks_everything_by_default(make_agent) -> None:
    conversations = {open_conversation(make_agent()).pk for _ in range(2)}
    assert conversations_reset.delay().get() == 2
    assert marked() == conversations


def test_the_reset_policy_decides_on_a_knowledge_change(make_agent) -> None:
    resetting = make_agent(reset_policy=ResetPolicy.ON_CHANGE)
    keeping = make_agent(reset_policy=ResetPolicy.NEVER)
    target = open_conversation(resetting)
    open_conversation(keeping)
    assert agents_mark_for_reset_on_change(agent_ids=[resetting.pk, keeping.pk]) == 1
    assert marked() == {target.pk}


def test_adding_and_removing_documents_marks_the_agents_conversations(
    make_agent, add_document, django_capture_on_commit_callbacks
) -> None:
    agent, other = make_agent(), make_agent()
    first = open_conversation(agent)
    add_document("a.txt", b"Alpha.", agents=[agent])
    assert marked() == {first.pk}
    Conversation.objects.update(reset_requested=False)
    document = Document.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        document_save(document=document, agents=[agent, other])  # agent unchanged
    assert marked() == set()
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=document)
    assert marked() == {first.pk}


def test_the_beat_schedule_follows_the_interval_setting(settings) -> None:
    assert settings.CELERY_BEAT_SCHEDULE == {}  # off unless an interval is set
    # Settings are read once per process: read them in a fresh one with the variable set.
    code = "import voiceapp.settings_test as s; print(s.CELERY_BEAT_SCHEDULE)"
    env = {**os.environ, "CONVERSATION_RESET_INTERVAL_SECONDS": "3600"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        "{'reset-provider-conversations': "
        "{'task': 'knowledge.tasks.conversations_reset', 'schedule': 3600.0}}"
    )
