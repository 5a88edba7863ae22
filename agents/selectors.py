"""Reads for agents."""

from __future__ import annotations

from django.db.models import QuerySet

from agents.models import Agent, PromptVersion


class AgentNotFound(LookupError):
    """No active agent answers to that slug (or there is no default agent)."""


def agent_list_active() -> QuerySet[Agent]:
    return Agent.objects.filter(is_active=True).order_by("name")


def agent_get_active(*, slug: str | None) -> Agent:
    """The active agent with ``slug``, or the default agent when ``slug`` is None."""
    queryset = Agent.objects.filter(is_active=True)
    agent = (
        queryset.filter(is_default=True).first()
        if slug is None
        else queryset.filter(slug=slug).first()
    )
    if agent is None:
        raise AgentNotFound("no default agent" if slug is None else f"no active agent {slug!r}")
    return agent


def prompt_version_get_active(*, agent: Agent) -> PromptVersion:
    return PromptVersion.objects.get(agent=agent, is_active=True)
