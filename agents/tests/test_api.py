"""The agents HTTP API: who may read and change agents and prompt versions, what they see,
and the error bodies and throttling that every API endpoint shares."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from agents.links import signed_link_valid
from agents.models import Agent, LLMProvider, PromptVersion
from agents.services import prompt_version_create
from knowledge.models import VectorStore

pytestmark = pytest.mark.django_db

AGENTS = "/api/agents/"
SECRET = "hume-secret-7f3a"


def _with_perms(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh instance: no cached permissions


@pytest.fixture
def token_client() -> Callable[[User], APIClient]:
    def client_for(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return client_for


@pytest.fixture
def plain(make_user: Callable[..., User], token_client: Callable[[User], APIClient]) -> APIClient:
    return token_client(make_user())


@pytest.fixture
def operator_client(operator: User, token_client: Callable[[User], APIClient]) -> APIClient:
    return token_client(operator)


@pytest.fixture
def staff(make_user: Callable[..., User], token_client: Callable[[User], APIClient]) -> APIClient:
    user = _with_perms(make_user(staff=True), "view_agent", "add_agent", "change_agent")
    return token_client(user)


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(slug="desk", name="Front desk", prompt_text="Be brief.", clm_token=SECRET)


# --- reading --------------------------------------------------------------------------------


def test_anonymous_requests_are_refused_with_401(agent: Agent) -> None:
    response = APIClient().get(AGENTS)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
        }
    }
    assert response["WWW-Authenticate"] == "Token"
    for url in (
        f"{AGENTS}desk/",
        f"{AGENTS}desk/prompt-versions/",
        f"{AGENTS}desk/prompt-versions/1/",
    ):
        assert APIClient().get(url).status_code == 401, url
    assert APIClient().post(AGENTS, {"name": "X", "slug": "x"}).status_code == 401
    assert Agent.objects.count() == 1


def test_a_bad_token_is_refused_with_401(agent: Agent) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get(AGENTS)
    assert (response.status_code, response.json()["error"]["code"]) == (
        401,
        "authentication_failed",
    )


def test_a_user_with_a_token_lists_agents_without_their_secrets(
    agent: Agent, plain: APIClient
) -> None:
    response = plain.get(AGENTS)
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], [a["slug"] for a in body["results"]]) == (1, ["desk"])
    listed = body["results"][0]
    assert (listed["name"], listed["is_default"], listed["prompt_version"]) == (
        "Front desk",
        True,
        1,
    )
    for staff_only in ("has_clm_token", "clm_token", "llm_base_url", "llm_api_key_env"):
        assert staff_only not in listed
    assert SECRET not in response.content.decode()


def test_a_session_user_reads_an_agent(agent: Agent, make_user) -> None:
    client = APIClient()
    client.force_login(make_user())
    response = client.get(f"{AGENTS}desk/")
    assert (response.status_code, response.json()["slug"]) == (200, "desk")
    assert "has_clm_token" not in response.json()


def test_staff_see_whether_a_token_is_set_but_never_the_token(
    agent: Agent, make_agent, staff: APIClient
) -> None:
    make_agent(slug="open")
    response = staff.get(AGENTS)
    tokens = {a["slug"]: a["has_clm_token"] for a in response.json()["results"]}
    assert tokens == {"desk": True, "open": False}
    assert SECRET not in response.content.decode()
    assert SECRET not in staff.get(f"{AGENTS}desk/").content.decode()


def test_an_unknown_slug_is_a_404_in_the_error_shape(plain: APIClient) -> None:
    response = plain.get(f"{AGENTS}nobody/")
    assert (response.status_code, response.json()) == (
        404,
        {"error": {"code": "not_found", "message": "There is no agent 'nobody'."}},
    )


def test_an_unknown_path_under_the_api_is_a_404_in_the_error_shape(plain: APIClient) -> None:
    response = plain.get(f"{AGENTS}desk/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- creating and changing --------------------------------------------------------------------


def test_staff_create_an_agent_with_its_first_prompt_version(staff: APIClient) -> None:
    response = staff.post(
        AGENTS,
        {"name": "Sales", "slug": "sales", "prompt_text": "Sell kindly.", "clm_token": SECRET},
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["slug"], body["prompt_version"], body["has_clm_token"]) == ("sales", 1, True)
    assert SECRET not in response.content.decode()
    agent = Agent.objects.get(slug="sales")
    assert (agent.clm_token, agent.is_default) == (SECRET, True)
    version = agent.prompt_versions.get()
    assert version.created_by is not None
    assert (version.number, version.text, version.created_by.username) == (
        1,
        "Sell kindly.",
        User.objects.get(is_staff=True).username,
    )


def test_creating_an_openai_agent_prepares_its_vector_store(staff: APIClient) -> None:
    response = staff.post(
        AGENTS,
        {
            "name": "Helper",
            "slug": "helper",
            "llm_provider": LLMProvider.OPENAI,
            "llm_model": "gpt-test",
            "llm_api_key_env": "OPENAI_API_KEY",
        },
    )
    assert response.status_code == 201, response.json()
    assert VectorStore.objects.filter(agent__slug="helper").count() == 1


def test_the_models_validation_errors_name_the_fields_and_create_nothing(
    staff: APIClient,
) -> None:
    response = staff.post(AGENTS, {"name": "Bot", "slug": "bot", "llm_provider": "openai"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"] == {
        "llm_model": ["Name the model this provider should run."],
        "llm_api_key_env": ["OpenAI needs the name of the variable holding its key."],
    }
    assert not Agent.objects.exists()
    assert not PromptVersion.objects.exists()


def test_out_of_range_and_malformed_values_are_refused_by_field(staff: APIClient) -> None:
    response = staff.post(
        AGENTS,
        {
            "name": "",
            "slug": "not a slug",
            "vad_threshold": 5,
            "llm_provider": "nobody",
            "llm_api_key_env": "sk-live-key",
        },
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {
        "name",
        "slug",
        "vad_threshold",
        "llm_provider",
        "llm_api_key_env",
    }
    assert not Agent.objects.exists()


def test_a_taken_slug_is_refused(agent: Agent, staff: APIClient) -> None:
    response = staff.post(AGENTS, {"name": "Other", "slug": "desk"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["slug"]
    assert Agent.objects.get().name == "Front desk"


def test_staff_change_settings_and_deactivate_with_patch(
    agent: Agent, make_agent, staff: APIClient
) -> None:
    other = make_agent(slug="other")
    response = staff.patch(
        f"{AGENTS}other/", {"is_active": False, "greeting": "Hello!", "clm_token": "new-secret"}
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["is_active"], response.json()["has_clm_token"]) == (False, True)
    assert "new-secret" not in response.content.decode()
    other.refresh_from_db()
    assert (other.is_active, other.greeting, other.clm_token) == (False, "Hello!", "new-secret")


def test_the_slug_is_not_changed_by_patch(agent: Agent, staff: APIClient) -> None:
    response = staff.patch(f"{AGENTS}desk/", {"slug": "renamed", "name": "Desk"})
    assert response.status_code == 200
    assert list(Agent.objects.values_list("slug", "name")) == [("desk", "Desk")]


def test_the_default_agent_cannot_be_deactivated(agent: Agent, staff: APIClient) -> None:
    response = staff.patch(f"{AGENTS}desk/", {"is_active": False})
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": "invalid",
                "message": "The default agent must be active.",
                "fields": {"non_field_errors": ["The default agent must be active."]},
            }
        },
    )
    agent.refresh_from_db()
    assert agent.is_active is True


def test_an_invalid_patch_changes_nothing(agent: Agent, staff: APIClient) -> None:
    before = Agent.objects.values().get()
    response = staff.patch(f"{AGENTS}desk/", {"greeting": "Hi", "llm_temperature": 9})
    assert (response.status_code, list(response.json()["error"]["fields"])) == (
        400,
        ["llm_temperature"],
    )
    assert Agent.objects.values().get() == before


def test_staff_move_the_default_flag(agent: Agent, make_agent, staff: APIClient) -> None:
    make_agent(slug="next", is_active=False)
    response = staff.post(f"{AGENTS}next/make-default/")
    assert response.status_code == 200
    assert (response.json()["is_default"], response.json()["is_active"]) == (True, True)
    assert list(Agent.objects.filter(is_default=True).values_list("slug", flat=True)) == ["next"]


@pytest.mark.parametrize("who", ["plain", "operator_client"])
def test_users_without_the_agent_permissions_change_nothing(
    who: str, agent: Agent, request: pytest.FixtureRequest
) -> None:
    client: APIClient = request.getfixturevalue(who)
    assert client.get(f"{AGENTS}desk/").status_code == 200
    assert client.get(f"{AGENTS}desk/prompt-versions/").status_code == 200
    before = Agent.objects.values().get()
    refused = [
        client.post(AGENTS, {"name": "X", "slug": "x"}),
        client.patch(f"{AGENTS}desk/", {"name": "Changed"}),
        client.post(f"{AGENTS}desk/make-default/"),
        client.post(f"{AGENTS}desk/prompt-versions/", {"text": "Changed."}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert refused[0].json()["error"]["code"] == "permission_denied"
    assert Agent.objects.values().get() == before
    assert PromptVersion.objects.count() == 1


def test_staff_need_the_model_permission_as_well(agent: Agent, make_user, token_client) -> None:
    client = token_client(_with_perms(make_user(staff=True), "view_agent"))
    assert client.post(AGENTS, {"name": "X", "slug": "x"}).status_code == 403
    assert client.patch(f"{AGENTS}desk/", {"name": "Y"}).status_code == 403
    assert not Agent.objects.filter(slug="x").exists()


def test_a_superuser_may_do_everything(agent: Agent, make_user, token_client) -> None:
    client = token_client(make_user(superuser=True))
    assert client.post(AGENTS, {"name": "X", "slug": "x"}).status_code == 201
    assert client.patch(f"{AGENTS}x/", {"name": "Y"}).status_code == 200


# --- prompt versions --------------------------------------------------------------------------


def test_everyone_signed_in_reads_prompt_versions_newest_first(
    agent: Agent, plain: APIClient
) -> None:
    prompt_version_create(agent=agent, text="Be kind.")
    response = plain.get(f"{AGENTS}desk/prompt-versions/")
    assert response.status_code == 200
    assert [(v["number"], v["text"], v["is_active"]) for v in response.json()["results"]] == [
        (2, "Be kind.", True),
        (1, "Be brief.", False),
    ]
    one = plain.get(f"{AGENTS}desk/prompt-versions/1/")
    assert (one.status_code, one.json()["text"], one.json()["created_by"]) == (
        200,
        "Be brief.",
        None,
    )


def test_staff_add_a_prompt_version_and_it_becomes_active(agent: Agent, staff: APIClient) -> None:
    response = staff.post(f"{AGENTS}desk/prompt-versions/", {"text": "Be thorough."})
    assert response.status_code == 201
    assert (response.json()["number"], response.json()["is_active"]) == (2, True)
    assert agent.active_prompt is not None
    assert agent.active_prompt.text == "Be thorough."
    assert agent.prompt_versions.get(number=1).text == "Be brief."
    assert staff.get(f"{AGENTS}desk/").json()["prompt_version"] == 2


def test_sending_the_active_text_again_adds_no_version(agent: Agent, staff: APIClient) -> None:
    response = staff.post(f"{AGENTS}desk/prompt-versions/", {"text": "Be brief."})
    assert (response.status_code, response.json()["number"]) == (200, 1)
    assert agent.prompt_versions.count() == 1


def test_a_prompt_version_without_text_is_refused(agent: Agent, staff: APIClient) -> None:
    response = staff.post(f"{AGENTS}desk/prompt-versions/", {})
    assert (response.status_code, response.json()["error"]["fields"]) == (
        400,
        {"text": ["This field is required."]},
    )
    assert agent.prompt_versions.count() == 1


def test_prompt_versions_cannot_be_changed_or_deleted(agent: Agent, staff: APIClient) -> None:
    url = f"{AGENTS}desk/prompt-versions/1/"
    for response in (staff.patch(url, {"text": "Edited"}), staff.delete(url)):
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
    assert agent.prompt_versions.get().text == "Be brief."


def test_an_unknown_prompt_version_is_a_404(agent: Agent, plain: APIClient) -> None:
    response = plain.get(f"{AGENTS}desk/prompt-versions/7/")
    assert (response.status_code, response.json()["error"]["message"]) == (
        404,
        "Agent 'desk' has no prompt version 7.",
    )
    assert plain.get(f"{AGENTS}nobody/prompt-versions/").status_code == 404


# --- error bodies shared by the whole API ------------------------------------------------------


def test_a_method_an_endpoint_lacks_is_a_405_in_the_error_shape(
    agent: Agent, staff: APIClient
) -> None:
    response = staff.delete(f"{AGENTS}desk/")
    assert (response.status_code, response.json()) == (
        405,
        {"error": {"code": "method_not_allowed", "message": 'Method "DELETE" not allowed.'}},
    )
    assert Agent.objects.filter(slug="desk").exists()


def test_a_body_that_is_not_json_is_a_415_in_the_error_shape(staff: APIClient) -> None:
    response = staff.post(AGENTS, {"name": "X", "slug": "x"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not Agent.objects.exists()


def test_malformed_json_is_a_400_in_the_error_shape(staff: APIClient) -> None:
    response = staff.generic("POST", AGENTS, '{"name": ', content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "parse_error")
    assert not Agent.objects.exists()


@pytest.fixture
def low_rates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # SimpleRateThrottle copies the rates from the settings when the class is defined, so
    # overriding the settings would not reach it: patch the class attribute itself.
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "anon": "2/minute", "user": "3/minute"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()  # the request history of earlier tests
    yield
    cache.clear()


def test_a_user_over_the_rate_gets_a_429_with_when_to_retry(
    low_rates: None, agent: Agent, plain: APIClient
) -> None:
    assert [plain.get(AGENTS).status_code for _ in range(3)] == [200, 200, 200]
    response = plain.get(AGENTS)
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "code": "throttled",
            "message": "Request was throttled. Expected available in 60 seconds.",
            "retry_after_seconds": 60,
        }
    }
    assert response["Retry-After"] == "60"


def test_anonymous_clients_over_the_rate_get_a_429_too(low_rates: None) -> None:
    # Permissions are checked before throttles, so anonymous clients meet their rate where
    # they are let in: the schema.
    client = APIClient(HTTP_ACCEPT="application/json")
    assert [client.get("/api/schema/").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/schema/")
    assert (response.status_code, response.json()["error"]["retry_after_seconds"]) == (429, 60)


# --- tokens ------------------------------------------------------------------------------------


def _api_token(*args: str) -> str:
    out = io.StringIO()
    call_command("api_token", *args, stdout=out)
    return out.getvalue().strip()


def test_the_api_token_command_gives_staff_a_token_that_works(agent: Agent, make_user) -> None:
    user = make_user(staff=True)
    key = _api_token(user.username)
    assert key == Token.objects.get(user=user).key
    assert _api_token(user.username) == key  # the same token until rotated
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(AGENTS).status_code == 200


def test_rotating_a_token_refuses_the_old_one(agent: Agent, make_user) -> None:
    user = make_user(staff=True)
    old = _api_token(user.username)
    new = _api_token(user.username, "--rotate")
    assert new != old
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get(AGENTS).status_code == 401


def test_the_api_token_command_refuses_unknown_and_inactive_users(make_user) -> None:
    with pytest.raises(CommandError, match="There is no user 'ghost'"):
        _api_token("ghost")
    gone = make_user()
    gone.is_active = False
    gone.save()
    with pytest.raises(CommandError, match="is inactive"):
        _api_token(gone.username)
    assert not Token.objects.exists()


def test_a_plain_user_gets_a_token_that_reads_but_changes_nothing(agent: Agent, make_user) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {_api_token(make_user().username)}")
    assert client.get(AGENTS).status_code == 200
    assert client.post(AGENTS, {"name": "X", "slug": "x"}).status_code == 403


def test_a_signed_in_user_mints_a_signed_link_that_the_sockets_accept(
    make_agent, plain: APIClient
) -> None:
    make_agent(slug="private", is_public=False)
    response = plain.post("/api/agents/private/link/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sig", "expires_in", "page", "voice_socket", "chat_socket"}
    assert signed_link_valid("private", body["sig"], max_age=body["expires_in"])
    assert body["voice_socket"] == f"/agents/private/conversation?sig={quote(body['sig'])}"
    assert body["chat_socket"] == f"/agents/private/chat?sig={quote(body['sig'])}"
    assert APIClient().post("/api/agents/private/link/").status_code == 401
    assert plain.post("/api/agents/nobody/link/").status_code == 404


def test_responses_are_json(agent: Agent, plain: APIClient) -> None:
    response = plain.get(AGENTS)
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["count"] == 1
