"""Reads for agents."""

from __future__ import annotations

import logging
import re

from django.db.models import QuerySet

from agents.keys import KeyVariableRefused, read_key
from agents.llm import LLMConfig
from agents.models import Agent, PromptVersion

log = logging.getLogger(__name__)
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")  # a SlugField of max_length 60


class AgentNotFound(LookupError):
    """No agent answers to that slug, or it is switched off (``inactive`` tells which)."""

    def __init__(self, message: str, *, inactive: bool = False) -> None:
        super().__init__(message)
        self.inactive = inactive


def agent_list_active() -> QuerySet[Agent]:
    return Agent.objects.filter(is_active=True).order_by("name")


def agent_get_active(*, slug: str | None) -> Agent:
    """The active agent with ``slug``, or the default agent when ``slug`` is None."""
    if slug is None:
        agent = Agent.objects.filter(is_default=True, is_active=True).first()
        if agent is None:
            raise AgentNotFound("there is no default agent")
        return agent
    # Anything that is not a slug names no agent, and is not sent to the database (which
    # may refuse it outright: PostgreSQL text cannot hold U+0000).
    agent = Agent.objects.filter(slug=slug).first() if _SLUG.fullmatch(slug) else None
    if agent is None:
        raise AgentNotFound(f"no agent {slug[:60]!r}")
    if not agent.is_active:
        raise AgentNotFound(f"agent {slug!r} is inactive", inactive=True)
    return agent


def agent_is_public(*, slug: str) -> bool:
    """Whether an agent (active or not) with ``slug`` is public."""
    return Agent.objects.filter(slug=slug, is_public=True).exists()


def prompt_version_get_active(*, agent: Agent) -> PromptVersion:
    return PromptVersion.objects.get(agent=agent, is_active=True)


def agent_llm_config(*, agent: Agent, vector_store_id: str = "") -> LLMConfig:
    """The provider configuration for ``agent``, with its API key read from the environment.

    Only the variable's name is stored on the agent; the key itself never touches the
    database or the logs.
    """
    try:
        api_key = read_key(agent.llm_api_key_env)
    except KeyVariableRefused as exc:
        # Saved before the operator's list changed: the model is asked without a key and
        # fails visibly (its spoken fallback), and the variable is never read.
        log.error("agent %s: %s", agent.slug, exc)
        api_key = ""
    return LLMConfig(
        provider=agent.llm_provider,
        model=agent.llm_model,
        temperature=agent.llm_temperature,
        max_tokens=agent.llm_max_tokens,
        base_url=agent.llm_base_url,
        api_key=api_key,
        eliza_script=agent.eliza_script,
        vector_store_id=vector_store_id,
    )
