"""Agents read API keys only from variables the machine's operator permits
(``AGENT_KEY_VARIABLES``), checked when an agent is saved and again when a key is read."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents.keys import KeyVariableRefused, key_variable_allowed, read_key
from agents.models import Agent, LLMProvider
from agents.selectors import agent_llm_config
from knowledge.models import VectorStore
from knowledge.openai_sync import SyncFailed, _client

pytestmark = pytest.mark.django_db

# Variables every server process has, none of them a key an agent may send anywhere.
SERVER_VARIABLES = ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PATH", "HOME", "METRICS_TOKEN"]


@pytest.fixture
def staff_api(make_user: Callable[..., User]) -> APIClient:
    user = make_user(staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_agent", "add_agent", "change_agent"])
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_the_default_list_permits_the_openai_key_and_the_agent_key_prefix() -> None:
    assert key_variable_allowed("OPENAI_API_KEY")
    assert key_variable_allowed("AGENT_KEY_SUPPORT_DESK")
    assert not key_variable_allowed("AGENT_KEY_")  # the prefix alone names nothing
    for name in SERVER_VARIABLES:
        assert not key_variable_allowed(name), name


@pytest.mark.parametrize("name", SERVER_VARIABLES)
def test_staff_cannot_name_a_server_variable_through_the_api(
    staff_api: APIClient, name: str
) -> None:
    response = staff_api.post(
        "/api/agents/",
        {
            "name": "Probe",
            "slug": "probe",
            "llm_provider": LLMProvider.OPENAI_COMPATIBLE,
            "llm_model": "m",
            "llm_base_url": "https://listener.example/v1",
            "llm_api_key_env": name,
        },
    )
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["llm_api_key_env"]
    assert message.startswith(f"{name} is not a permitted key variable.")
    assert "AGENT_KEY_VARIABLES" in message
    assert not Agent.objects.exists()


def test_changing_an_agent_to_a_server_variable_changes_nothing(
    make_agent: Callable[..., Agent], staff_api: APIClient
) -> None:
    agent = make_agent(slug="desk", llm_api_key_env="AGENT_KEY_DESK")
    response = staff_api.patch("/api/agents/desk/", {"llm_api_key_env": "SECRET_KEY"})
    assert response.status_code == 400
    agent.refresh_from_db()
    assert agent.llm_api_key_env == "AGENT_KEY_DESK"


def test_the_operator_sets_the_list(make_agent: Callable[..., Agent], settings) -> None:
    settings.AGENT_KEY_VARIABLES = ["ACME_LLM_KEY", "TEAM_*"]
    make_agent(llm_api_key_env="ACME_LLM_KEY")
    make_agent(llm_api_key_env="TEAM_SUPPORT")
    with pytest.raises(ValidationError) as refused:
        make_agent(llm_api_key_env="OPENAI_API_KEY")
    assert "ACME_LLM_KEY, TEAM_*" in str(refused.value)


def test_a_row_saved_before_the_list_changed_reads_no_key(
    make_agent: Callable[..., Agent], monkeypatch: pytest.MonkeyPatch, caplog, settings
) -> None:
    monkeypatch.setenv("AGENT_KEY_OLD", "sk-old")
    agent = make_agent(
        slug="old",
        llm_provider=LLMProvider.OPENAI_COMPATIBLE,
        llm_model="m",
        llm_base_url="https://listener.example/v1",
        llm_api_key_env="AGENT_KEY_OLD",
    )
    assert agent_llm_config(agent=agent).api_key == "sk-old"
    # As if written before the check existed, or edited in the database by hand.
    Agent.objects.filter(pk=agent.pk).update(llm_api_key_env="SECRET_KEY")
    agent.refresh_from_db()
    caplog.set_level(logging.ERROR, logger="agents.selectors")
    assert agent_llm_config(agent=agent).api_key == ""
    assert [r.getMessage() for r in caplog.records] == [
        "agent old: SECRET_KEY is not a permitted key variable. This server permits: "
        "OPENAI_API_KEY, AGENT_KEY_* (the AGENT_KEY_VARIABLES setting of the machine's "
        "operator)."
    ]
    assert settings.SECRET_KEY not in caplog.text
    with pytest.raises(KeyVariableRefused):
        read_key("SECRET_KEY")


def test_the_knowledge_sync_reads_no_server_variable() -> None:
    store = VectorStore.objects.create(
        base_url="https://listener.example/v1", api_key_env="SECRET_KEY"
    )
    with pytest.raises(SyncFailed) as refused:
        _client(store)
    assert "not a permitted key variable" in str(refused.value)
    assert refused.value.retryable is False
