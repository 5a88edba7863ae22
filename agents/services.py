"""Writes for agents and their prompt versions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max

from agents.models import Agent, LLMProvider, PromptVersion
from knowledge.services import agents_mark_for_reset_on_change, vector_store_request_sync

#: Fields that decide where an agent's OpenAI vector store lives: changing one re-syncs it.
STORE_FIELDS = frozenset({"llm_provider", "llm_base_url", "llm_api_key_env"})


@transaction.atomic
def agent_create(
    *,
    name: str,
    slug: str,
    prompt_text: str = "",
    created_by: User | None = None,
    **fields: Any,
) -> Agent:
    """Create a validated agent with its first prompt version.

    The first agent ever created becomes the default, so there is always exactly one
    default once any agent exists.
    """
    fields.pop("is_default", None)
    agent = Agent(name=name, slug=slug, **fields)
    agent.is_default = not Agent.objects.filter(is_default=True).exists()
    agent.full_clean()
    agent.save()
    PromptVersion.objects.create(
        agent=agent, number=1, text=prompt_text, is_active=True, created_by=created_by
    )
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, data: dict[str, Any]) -> Agent:
    """Change the given fields of ``agent``, validated; only changed fields are written.

    A change to where the agent's model lives re-syncs its OpenAI vector store.
    """
    changed = [name for name, value in data.items() if getattr(agent, name) != value]
    if not changed:
        return agent
    for name in changed:
        setattr(agent, name, data[name])
    agent.full_clean()
    agent.save(update_fields=[*changed, "updated_at"])
    if STORE_FIELDS & set(changed):
        vector_store_request_sync(agent_ids=[agent.pk])
    return agent


@transaction.atomic
def prompt_version_create(
    *, agent: Agent, text: str, created_by: User | None = None
) -> PromptVersion:
    """Store ``text`` as the agent's new active prompt; earlier versions stay unchanged.

    Saving the text that is already active creates nothing and returns that version.
    """
    # Lock the agent row so two editors cannot both claim the next number.
    Agent.objects.select_for_update().filter(pk=agent.pk).first()
    active = PromptVersion.objects.filter(agent=agent, is_active=True).first()
    if active is not None and active.text == text:
        return active
    last = PromptVersion.objects.filter(agent=agent).aggregate(n=Max("number"))["n"] or 0
    PromptVersion.objects.filter(agent=agent, is_active=True).update(is_active=False)
    version = PromptVersion.objects.create(
        agent=agent, number=last + 1, text=text, is_active=True, created_by=created_by
    )
    if active is not None:
        # A changed prompt: open provider conversations start afresh if the agent says so.
        agent_id = agent.pk
        transaction.on_commit(lambda: agents_mark_for_reset_on_change(agent_ids=[agent_id]))
    return version


@transaction.atomic
def prompt_version_activate(*, version: PromptVersion) -> PromptVersion:
    """Make an earlier version the agent's active prompt again (its text, unchanged, and
    its number: conversations keep naming the version they ran with)."""
    agent = version.agent
    Agent.objects.select_for_update().filter(pk=agent.pk).first()
    if version.is_active:
        return version
    PromptVersion.objects.filter(agent=agent, is_active=True).update(is_active=False)
    version.is_active = True
    version.save(update_fields=["is_active"])
    agent_id = agent.pk
    transaction.on_commit(lambda: agents_mark_for_reset_on_change(agent_ids=[agent_id]))
    return version


@transaction.atomic
def agent_make_default(*, agent: Agent) -> Agent:
    """Move the default flag to ``agent`` (activating it) in one transaction."""
    Agent.objects.select_for_update().filter(is_default=True).exclude(pk=agent.pk).update(
        is_default=False
    )
    agent.is_default = True
    agent.is_active = True
    agent.save(update_fields=["is_default", "is_active", "updated_at"])
    return agent


DEMO_SLUG = "eliza"


def agent_ensure_demo() -> tuple[Agent, bool]:
    """Create the demo ELIZA agent (slug ``eliza``) unless it exists.

    Returns the agent and whether it was created now.
    """
    existing = Agent.objects.filter(slug=DEMO_SLUG).first()
    if existing is not None:
        return existing, False
    agent = agent_create(
        name="ELIZA",
        slug=DEMO_SLUG,
        llm_provider=LLMProvider.ELIZA,
        is_active=True,
        is_public=True,
        prompt_text="You are ELIZA, a Rogerian psychotherapist.",
    )
    return agent, True
