"""Agents and their prompt versions: invariants held by the services and the database."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agents.models import Agent, LLMProvider, PromptVersion
from agents.selectors import AgentNotFound, agent_get_active
from agents.services import agent_ensure_demo, agent_make_default, prompt_version_create

pytestmark = pytest.mark.django_db


def test_first_agent_becomes_the_default_and_later_ones_do_not(make_agent) -> None:
    first, second = make_agent(), make_agent()
    assert (first.is_default, second.is_default) == (True, False)
    assert agent_get_active(slug=None) == first


def test_the_database_refuses_a_second_default(make_agent) -> None:
    make_agent()
    second = make_agent()
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=second.pk).update(is_default=True)


def test_making_an_agent_default_moves_the_flag(make_agent) -> None:
    make_agent()
    second = make_agent(is_active=False)
    agent_make_default(agent=second)
    assert list(Agent.objects.filter(is_default=True)) == [second]
    second.refresh_from_db()
    assert second.is_active is True


def test_the_default_agent_cannot_be_deactivated(make_agent) -> None:
    agent = make_agent()
    agent.is_active = False
    with pytest.raises(ValidationError, match="The default agent must be active"):
        agent.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(is_active=False)


def test_editing_a_prompt_adds_a_version_and_keeps_the_old_one(make_agent) -> None:
    agent = make_agent(prompt_text="Be brief.")
    v1 = agent.active_prompt
    v2 = prompt_version_create(agent=agent, text="Be brief and kind.")
    v1_after = PromptVersion.objects.get(pk=v1.pk)
    assert (v1_after.number, v1_after.text, v1_after.is_active) == (1, "Be brief.", False)
    assert (v2.number, v2.text, v2.is_active) == (2, "Be brief and kind.", True)
    assert agent.active_prompt == v2


def test_saving_the_same_prompt_creates_no_version(make_agent) -> None:
    agent = make_agent(prompt_text="Same.")
    assert prompt_version_create(agent=agent, text="Same.") == agent.active_prompt
    assert agent.prompt_versions.count() == 1


def test_a_prompt_version_is_immutable(make_agent) -> None:
    version = make_agent(prompt_text="Original.").active_prompt
    version.text = "Rewritten."
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    assert PromptVersion.objects.get(pk=version.pk).text == "Original."


def test_the_database_refuses_two_active_versions(make_agent) -> None:
    agent = make_agent()
    with pytest.raises(IntegrityError), transaction.atomic():
        PromptVersion.objects.create(agent=agent, number=2, text="x", is_active=True)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"llm_provider": LLMProvider.OPENAI_COMPATIBLE, "llm_model": "m"},
            "llm_base_url",
            "An OpenAI-compatible server needs a base URL.",
        ),
        (
            {"llm_provider": LLMProvider.OPENAI},
            "llm_model",
            "Name the model this provider should run.",
        ),
        (
            {"llm_provider": LLMProvider.OPENAI, "llm_model": "gpt-x"},
            "llm_api_key_env",
            "OpenAI needs the name of the variable holding its key.",
        ),
        (
            {"llm_api_key_env": "sk-live-abc"},
            "llm_api_key_env",
            "Name of an environment variable (upper case letters, digits and _), not the key itself.",
        ),
        (
            {"llm_temperature": 3.0},
            "llm_temperature",
            "Ensure this value is less than or equal to 2.0.",
        ),
    ],
)
def test_invalid_agent_settings_are_refused_with_a_message(
    make_agent, fields, field, message
) -> None:
    with pytest.raises(ValidationError) as info:
        make_agent(**fields)
    assert info.value.message_dict[field] == [message]
    assert not Agent.objects.exists()


def test_inactive_or_unknown_agents_are_not_found(make_agent) -> None:
    make_agent()
    hidden = make_agent(is_active=False)
    with pytest.raises(AgentNotFound, match=r"no agent .nobody."):
        agent_get_active(slug="nobody")
    with pytest.raises(AgentNotFound, match=f"agent '{hidden.slug}' is inactive") as info:
        agent_get_active(slug=hidden.slug)
    assert info.value.inactive is True


def test_demo_agent_is_created_once() -> None:
    agent, created = agent_ensure_demo()
    again, created_again = agent_ensure_demo()
    assert (agent.slug, agent.llm_provider, agent.is_active, agent.is_default) == (
        "eliza",
        "eliza",
        True,
        True,
    )
    assert (created, created_again, again.pk) == (True, False, agent.pk)


@pytest.mark.parametrize("slug", ["a\x00b", "", "../etc", "x" * 61, "\ud800", "two words"])
def test_what_is_not_a_slug_names_no_agent_and_never_reaches_the_database(
    make_agent, slug, django_assert_num_queries
) -> None:
    from agents.selectors import AgentNotFound, agent_get_active

    make_agent(slug="desk")
    with django_assert_num_queries(0), pytest.raises(AgentNotFound):
        agent_get_active(slug=slug)
