"""The security suite: who reaches what, with which credentials, from where, and how much.

Every HTTP route and every socket is in a table with its outcome for each kind of caller,
and the tables are checked against the URL resolver and the socket routing: a route that
nobody has classified fails here. Then: tokens (missing, wrong, someone else's), signed
links, foreign Origins and CSRF, oversized frames and bodies, hostile upload file names,
what is never served, one user's conversations kept from another, security headers, and
the deployment checks. The real-server side (real Origin headers on handshakes, real
oversized bodies, the log of a DEBUG process) is in ``test_security_integration.py``.

Callers (``ROLES``):

- ``anon``: nobody signed in;
- ``user``: signed in, no permission at all;
- ``operator``: the Operators group (staff; read conversations and turns, label turns);
- ``staff``: ``is_staff`` with every permission of agents and knowledge, none of
  conversations;
- ``superuser``.

Outcomes: the HTTP status (``"200"``, ``"401"``…), ``"login"`` / ``"admin-login"`` (a 302
to that sign-in page), ``"302"`` (any other redirect). Sockets: ``"session"`` (chat and
voice: the session frame), ``"answered"`` (custom LLM: a reply), ``"accepted"`` (monitor),
``"close <code>"``, and ``"denied"`` (the handshake is refused; a real server answers 403).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token

from agents import links
from agents.models import Agent, PromptVersion
from conversations.consumers.voice import VoiceConsumer
from conversations.models import Channel, Conversation, Role, Turn
from conversations.routing import websocket_urlpatterns
from conversations.services import conversation_start
from conversations.tests.hume_payloads import payload, sdk_user
from conversations.voice_store import wav_file
from knowledge.models import Document, VectorStore
from knowledge.services import document_create
from testing.fake_openai import FakeOpenAI, tone_pcm
from voiceapp.asgi import application
from voiceapp.tests.test_settings import GOOD_KEY, start

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("anon", "user", "operator", "staff", "superuser")
CLM_TOKEN = "clm-token-of-closed-7f3a9c51"
ALLOWED_ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")
FOREIGN_ORIGIN = (b"origin", b"https://evil.example")
SSE_BODY = {"model": "custom", "messages": [{"role": "user", "content": "Hello."}], "stream": True}


# --- the world every test runs in ----------------------------------------------------------


@dataclass
class World:
    """Three agents (``open``: public, the default, no token; ``closed``: private, with a
    custom-LLM token; ``hidden``: private, no token), a signed-in client per role, and one
    of everything to point at."""

    open: Agent
    closed: Agent
    users: dict[str, User]  # every role but anon
    clients: dict[str, Client]
    tokens: dict[str, str]  # DRF keys, every role but anon
    conversation: Conversation  # the plain user's, with a recorded turn
    turn: Turn
    document: Document
    role_documents: dict[str, Document]  # one each, for DELETE
    store: VectorStore
    media: Path

    def cookie(self, role: str) -> list[tuple[bytes, bytes]]:
        """The session cookie header of ``role``'s client (none for anon)."""
        if role == "anon":
            return []
        return [(b"cookie", f"sessionid={self.clients[role].cookies['sessionid'].value}".encode())]

    def names(self, role: str) -> dict[str, Any]:
        """What the tables' paths are formatted with."""
        return {
            "conversation": self.conversation.pk,
            "turn": self.turn.pk,
            "document": self.document.pk,
            "role_document": self.role_documents[role].pk,
            "agent": self.closed.pk,
            "agent_type": ContentType.objects.get_for_model(Agent).pk,
            "group": Group.objects.get(name="Operators").pk,
            "user": self.users["user"].pk,
            "store": self.store.pk,
            "prompt_version": PromptVersion.objects.get(agent=self.closed, is_active=True).pk,
        }


def _text_file(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/plain")


@pytest.fixture
def world(make_agent, make_user, operator, settings, tmp_path: Path) -> World:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VOICE_LOAD_MODELS_AT_START = False  # /readyz: no models to wait for here
    open_agent = make_agent(slug="open")  # the first agent is the default
    closed = make_agent(slug="closed", is_public=False, clm_token=CLM_TOKEN)
    # Private with no custom-LLM token: unreachable on the custom-LLM routes.
    make_agent(slug="hidden", is_public=False)
    staff = make_user(staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=("agents", "knowledge"))
    )
    users = {
        "user": make_user(),
        "operator": operator,
        "staff": staff,
        "superuser": make_user(superuser=True),
    }
    clients = {"anon": Client()}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    conversation = conversation_start(
        agent=open_agent, channel=Channel.WEB_TEXT, user=users["user"]
    )
    turn = Turn.objects.create(
        conversation=conversation,
        index=0,
        role=Role.USER,
        text="My secret is forty-two.",
        audio=wav_file(tone_pcm(0.2, 16_000), 16_000, "user.wav"),
    )
    return World(
        open=open_agent,
        closed=closed,
        users=users,
        clients=clients,
        tokens={role: Token.objects.create(user=user).key for role, user in users.items()},
        conversation=conversation,
        turn=turn,
        document=document_create(file=_text_file("handbook.txt", "The handbook of the firm.")),
        role_documents={
            role: document_create(file=_text_file(f"{role}.txt", f"Notes kept for {role}."))
            for role in ROLES
        },
        store=VectorStore.objects.create(),
        media=settings.MEDIA_ROOT,
    )


# --- the HTTP matrix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    route: str  # the pattern as the URL resolver spells it
    method: str
    path: str  # formatted with World.names(role)
    expect: tuple[str, str, str, str, str]  # per ROLES
    why: str = ""
    body: Any = None  # JSON, or a function of the role; "multipart" rows send form data
    multipart: bool = False


def each(outcome: str) -> tuple[str, str, str, str, str]:
    return (outcome,) * 5


def api(user: str, operator: str, staff: str, superuser: str) -> tuple[str, str, str, str, str]:
    """An API endpoint: anonymous callers get 401, the rest as given."""
    return ("401", user, operator, staff, superuser)


def signed_in(outcome: str, anon: str) -> tuple[str, str, str, str, str]:
    return (anon, outcome, outcome, outcome, outcome)


def admin(operator: str, staff: str, superuser: str) -> tuple[str, str, str, str, str]:
    """An admin page: anonymous and non-staff callers are sent to the admin's sign-in."""
    return ("admin-login", "admin-login", operator, staff, superuser)


def model_admin(
    app: str,
    model: str,
    obj: str,
    *,
    operator: str,
    staff: str,
    superuser: str,
    can_add: bool = True,
    can_delete: bool = True,
) -> list[Row]:
    """The six admin routes of one model. Per role: ``-`` no permission on the model,
    ``view`` view only, ``all`` every permission; ``can_add`` / ``can_delete`` False where
    the admin refuses that to everyone (records made by the system)."""

    def page(kind: str) -> tuple[str, str, str, str, str]:
        def one(perm: str) -> str:
            if kind == "redirect":
                return "302"  # to the change page, which checks
            if perm == "-":
                return "403"
            if kind == "add":
                return "200" if perm == "all" and can_add else "403"
            if kind == "delete":
                return "200" if perm == "all" and can_delete else "403"
            return "200"

        return admin(one(operator), one(staff), one(superuser))

    base, url = f"admin/{app}/{model}/", f"/admin/{app}/{model}/"
    with_id = f"{url}{{{obj}}}/"
    return [
        Row(base, "GET", url, page("list")),
        Row(f"{base}add/", "GET", f"{url}add/", page("add")),
        Row(f"{base}<path:object_id>/history/", "GET", f"{with_id}history/", page("history")),
        Row(f"{base}<path:object_id>/delete/", "GET", f"{with_id}delete/", page("delete")),
        Row(f"{base}<path:object_id>/change/", "GET", f"{with_id}change/", page("change")),
        Row(f"{base}<path:object_id>/", "GET", with_id, page("redirect")),
    ]


APP_LIST = "admin/^(?P<app_label>auth|authtoken|agents|conversations|knowledge)/$"
REVIEW = "admin/conversations/conversation/"
API_UNKNOWN = "api/^(?P<path>(?:agents|conversations|documents)/.*/)$"


def _new_agent(role: str) -> dict[str, str]:
    return {"slug": f"made-by-{role}", "name": f"Made by {role}", "prompt_text": "Be brief."}


def _upload(role: str) -> dict[str, Any]:
    return {"file": _text_file(f"upload-{role}.txt", f"Uploaded by the {role} role.")}


def _prompt(role: str) -> dict[str, str]:
    return {"prompt": "Hello.", "address": f"matrix-{role}"}


HTTP_MATRIX: list[Row] = [
    # --- pages
    Row("", "GET", "/", each("200"), "the front page is public"),
    Row("agents/<slug:slug>/", "GET", "/agents/open/", each("200"), "a public agent's page"),
    Row(
        "agents/<slug:slug>/",
        "GET",
        "/agents/closed/",
        signed_in("200", anon="login"),
        "a private agent's page needs a signed-in user (or ?sig=, see the signed-link tests)",
    ),
    Row("agents/<slug:slug>/", "GET", "/agents/nobody/", each("404")),
    # --- the admin: staff only, then the model permissions
    Row("admin/", "GET", "/admin/", admin("200", "200", "200")),
    Row(
        "admin/login/",
        "GET",
        "/admin/login/",
        ("200", "200", "302", "302", "302"),
        "the sign-in form; staff already signed in are sent to the index",
    ),
    Row(
        "admin/logout/",
        "GET",
        "/admin/logout/",
        ("302", "302", "405", "405", "405"),
        "sign-out is POST only; callers who are not staff are sent to the index (and on)",
    ),
    Row("admin/password_change/", "GET", "/admin/password_change/", admin("200", "200", "200")),
    Row(
        "admin/password_change/done/",
        "GET",
        "/admin/password_change/done/",
        admin("200", "200", "200"),
    ),
    Row(
        "admin/autocomplete/",
        "GET",
        "/admin/autocomplete/",
        admin("403", "403", "403"),
        "without naming a field it may search, refused",
    ),
    Row("admin/jsi18n/", "GET", "/admin/jsi18n/", admin("200", "200", "200")),
    Row(
        "admin/r/<path:content_type_id>/<path:object_id>/",
        "GET",
        "/admin/r/{agent_type}/{agent}/",
        admin("404", "404", "404"),
        "no model has a public URL to send anyone to",
    ),
    Row(APP_LIST, "GET", "/admin/agents/", admin("404", "200", "200")),
    Row(APP_LIST, "GET", "/admin/conversations/", admin("200", "404", "200")),
    Row("admin/(?P<url>.*)$", "GET", "/admin/nothing/here/", admin("404", "404", "404")),
    *model_admin("auth", "group", "group", operator="-", staff="-", superuser="all"),
    *model_admin("auth", "user", "user", operator="-", staff="-", superuser="all"),
    Row(
        "admin/auth/user/<id>/password/",
        "GET",
        "/admin/auth/user/{user}/password/",
        admin("403", "403", "200"),
        "setting someone's password: change_user only",
    ),
    *model_admin("authtoken", "tokenproxy", "user", operator="-", staff="-", superuser="all"),
    *model_admin("agents", "agent", "agent", operator="-", staff="all", superuser="all"),
    *model_admin(
        "conversations",
        "conversation",
        "conversation",
        operator="view",
        staff="-",
        superuser="all",
        can_add=False,
    ),
    *model_admin(
        "conversations", "turn", "turn", operator="view", staff="-", superuser="all", can_add=False
    ),
    *model_admin("knowledge", "document", "document", operator="-", staff="all", superuser="all"),
    *model_admin(
        "knowledge",
        "vectorstore",
        "store",
        operator="-",
        staff="all",
        superuser="all",
        can_add=False,
        can_delete=False,
    ),
    Row(
        "admin/agents/agent/<int:agent_id>/prompt-versions/<int:version_id>/activate/",
        "POST",
        "/admin/agents/agent/{agent}/prompt-versions/{prompt_version}/activate/",
        admin("403", "302", "302"),
        "needs change_agent; the active version is made active again, back to the agent",
        body={},
        multipart=True,
    ),
    Row(
        "admin/agents/agent/voice-sample/",
        "GET",
        "/admin/agents/agent/voice-sample/?voice=/etc/passwd",
        admin("403", "400", "400"),
        "needs change_agent; only the Piper voices the editor offers are ever loaded",
    ),
    Row(
        f"{REVIEW}dashboard/",
        "GET",
        f"/{REVIEW}dashboard/",
        admin("200", "403", "200"),
        "needs view_conversation",
    ),
    Row(
        "admin/knowledge/document/<int:document_id>/file/",
        "GET",
        "/admin/knowledge/document/{document}/file/",
        admin("403", "200", "200"),
        "a stored document, to view_document only (never a media URL)",
    ),
    Row(
        f"{REVIEW}turns/<int:turn_id>/audio/",
        "GET",
        f"/{REVIEW}turns/{{turn}}/audio/",
        admin("200", "403", "200"),
        "recordings go to view_turn only (never a media URL)",
    ),
    Row(
        f"{REVIEW}turns/<int:turn_id>/label/",
        "POST",
        f"/{REVIEW}turns/{{turn}}/label/",
        admin("302", "403", "302"),
        "needs label_turn; a label is posted and the page goes back to the conversation",
        body={"label": "good", "note": ""},
        multipart=True,
    ),
    # --- accounts (Django's views)
    Row("accounts/login/", "GET", "/accounts/login/", each("200")),
    Row("accounts/logout/", "GET", "/accounts/logout/", each("405"), "sign-out is POST only"),
    Row(
        "accounts/password_change/",
        "GET",
        "/accounts/password_change/",
        signed_in("200", anon="login"),
    ),
    Row(
        "accounts/password_change/done/",
        "GET",
        "/accounts/password_change/done/",
        signed_in("200", anon="login"),
    ),
    Row(
        "accounts/password_reset/",
        "GET",
        "/accounts/password_reset/",
        each("200"),
        "Django's reset form is public by design",
    ),
    Row("accounts/password_reset/done/", "GET", "/accounts/password_reset/done/", each("200")),
    Row(
        "accounts/reset/<uidb64>/<token>/",
        "GET",
        "/accounts/reset/MQ/not-a-token/",
        each("200"),
        "a wrong link shows 'invalid link' and changes nothing",
    ),
    Row("accounts/reset/done/", "GET", "/accounts/reset/done/", each("200")),
    # --- health and metrics
    Row("healthz", "GET", "/healthz", each("200"), "liveness probes are public"),
    Row("readyz", "GET", "/readyz", each("200"), "readiness probes are public"),
    Row(
        "metrics",
        "GET",
        "/metrics",
        each("200"),
        "from loopback without METRICS_TOKEN (see the metrics tests for the rest)",
    ),
    # --- the HTTP API
    Row("api/schema/", "GET", "/api/schema/", each("200"), "the OpenAPI schema is public"),
    Row("api/docs/", "GET", "/api/docs/", each("200"), "Swagger UI is public"),
    Row("api/agents/", "GET", "/api/agents/", api("200", "200", "200", "200")),
    Row("api/agents/", "POST", "/api/agents/", api("403", "403", "201", "201"), body=_new_agent),
    Row("api/agents/<slug:slug>/", "GET", "/api/agents/closed/", api("200", "200", "200", "200")),
    Row(
        "api/agents/<slug:slug>/",
        "PATCH",
        "/api/agents/closed/",
        api("403", "403", "200", "200"),
        body={"greeting": "Hello."},
    ),
    Row(
        "api/agents/<slug:slug>/",
        "DELETE",
        "/api/agents/closed/",
        api("405", "405", "405", "405"),
        "agents are deactivated, never deleted",
    ),
    Row(
        "api/agents/<slug:slug>/link/",
        "POST",
        "/api/agents/closed/link/",
        api("200", "200", "200", "200"),
        "a signed link to a private agent, for any signed-in user",
    ),
    Row(
        "api/agents/<slug:slug>/make-default/",
        "POST",
        "/api/agents/open/make-default/",
        api("403", "403", "200", "200"),
    ),
    Row(
        "api/agents/<slug:slug>/prompt-versions/",
        "GET",
        "/api/agents/closed/prompt-versions/",
        api("200", "200", "200", "200"),
    ),
    Row(
        "api/agents/<slug:slug>/prompt-versions/",
        "POST",
        "/api/agents/closed/prompt-versions/",
        api("403", "403", "201", "201"),
        body=lambda role: {"text": f"Prompt written by {role}."},
    ),
    Row(
        "api/agents/<slug:slug>/prompt-versions/<int:number>/",
        "GET",
        "/api/agents/closed/prompt-versions/1/",
        api("200", "200", "200", "200"),
    ),
    Row("api/conversations/", "GET", "/api/conversations/", api("403", "200", "403", "200")),
    Row(
        "api/conversations/<uuid:conversation_id>/",
        "GET",
        "/api/conversations/{conversation}/",
        api("403", "200", "403", "200"),
        "one user never reads another's conversation: plain users read none",
    ),
    Row(
        "api/conversations/<uuid:conversation_id>/export.json",
        "GET",
        "/api/conversations/{conversation}/export.json",
        api("403", "200", "403", "200"),
    ),
    Row(
        "api/conversations/<uuid:conversation_id>/export.csv",
        "GET",
        "/api/conversations/{conversation}/export.csv",
        api("403", "200", "403", "200"),
    ),
    Row(
        "api/conversations/<uuid:conversation_id>/turns/<int:index>/",
        "GET",
        "/api/conversations/{conversation}/turns/0/",
        api("403", "200", "403", "200"),
    ),
    Row(
        "api/conversations/<uuid:conversation_id>/turns/<int:index>/",
        "PATCH",
        "/api/conversations/{conversation}/turns/0/",
        api("403", "200", "403", "200"),
        "labelling needs label_turn",
        body={"label": "good"},
    ),
    Row("api/documents/", "GET", "/api/documents/", api("403", "403", "200", "200")),
    Row(
        "api/documents/",
        "POST",
        "/api/documents/",
        api("403", "403", "201", "201"),
        body=_upload,
        multipart=True,
    ),
    Row(
        "api/documents/<int:pk>/",
        "GET",
        "/api/documents/{document}/",
        api("403", "403", "200", "200"),
    ),
    Row(
        "api/documents/<int:pk>/",
        "DELETE",
        "/api/documents/{role_document}/",
        api("403", "403", "204", "204"),
    ),
    Row(API_UNKNOWN, "GET", "/api/agents/open/nothing/", each("404"), "no endpoint, for anyone"),
    # --- the chatbot-server endpoints: public agents are open to anyone. An unknown
    # ?format= is refused (400) only after the caller was admitted, and runs no speech.
    Row("^processText/?$", "POST", "/processText/?format=ogg", each("400"), "public agent"),
    Row(
        "^processText/?$",
        "POST",
        "/processText/?agent=closed&format=ogg",
        signed_in("400", anon="401"),
        "a private agent needs a user or a token",
    ),
    Row("^processText/?$", "GET", "/processText/", each("405")),
    Row("^processAudioFile/?$", "POST", "/processAudioFile/?format=ogg", each("400")),
    Row(
        "^processAudioFile/?$",
        "POST",
        "/processAudioFile/?agent=closed&format=ogg",
        signed_in("400", anon="401"),
    ),
    Row("^queryAssistant/?$", "POST", "/queryAssistant/", each("200"), body=_prompt),
    Row(
        "^queryAssistant/?$",
        "POST",
        "/queryAssistant/?agent=closed",
        signed_in("200", anon="401"),
        body=_prompt,
    ),
    Row("^clearCache/?$", "POST", "/clearCache/", each("200")),
    Row("^clearCache/?$", "POST", "/clearCache/?agent=closed", signed_in("200", anon="401")),
    # --- Hume's SSE custom LLM: the agent's token admits, not the caller's session
    Row(
        "llm/chat/completions",
        "POST",
        "/llm/chat/completions",
        each("200"),
        "server to server from Hume; the default agent has no token",
        body=SSE_BODY,
    ),
    Row("llm/chat/completions", "GET", "/llm/chat/completions", each("405")),
    Row(
        "llm/<slug:slug>/chat/completions",
        "POST",
        "/llm/closed/chat/completions",
        each("401"),
        "no token: refused whoever is signed in",
        body=SSE_BODY,
    ),
    Row(
        "llm/<slug:slug>/chat/completions",
        "POST",
        "/llm/hidden/chat/completions",
        each("401"),
        "private and without a token: never answered here",
        body=SSE_BODY,
    ),
]


def http_routes() -> set[str]:
    def walk(patterns: list[Any], prefix: str) -> list[str]:
        routes = []
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                routes += walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                assert isinstance(pattern, URLPattern)
                routes.append(prefix + str(pattern.pattern))
        return routes

    return set(walk(get_resolver().url_patterns, ""))


def outcome(response: HttpResponseBase) -> str:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/admin/login/"):
            return "admin-login"
        if location.startswith("/accounts/login/"):
            return "login"
    return str(response.status_code)


def send(client: Client, row: Row, world: World, role: str) -> HttpResponseBase:
    path = row.path.format(**world.names(role))
    body = row.body(role) if callable(row.body) else row.body
    if row.multipart:
        return client.post(path, body or {})
    if body is None:
        return client.generic(row.method, path)
    return client.generic(row.method, path, json.dumps(body), content_type="application/json")


def test_the_http_table_names_every_route_once_classified() -> None:
    assert {row.route for row in HTTP_MATRIX} == http_routes()
    assert all(row.method in {"GET", "POST", "PATCH", "DELETE"} for row in HTTP_MATRIX)


def test_every_http_route_answers_each_caller_as_the_table_says(world: World) -> None:
    got: dict[str, str] = {}
    want: dict[str, str] = {}
    for row in HTTP_MATRIX:
        path = row.path.format(**world.names("anon"))
        # The row tests the route it names (the resolver drops an inner regex's "^").
        assert resolve(urlsplit(path).path).route.lstrip("^") == row.route.replace("^", ""), path
        for role, expected in zip(ROLES, row.expect, strict=True):
            key = f"{row.method} {path} as {role}"
            got[key] = outcome(send(world.clients[role], row, world, role))
            want[key] = expected
    assert got == want


# --- the WebSocket matrix ------------------------------------------------------------------


@dataclass(frozen=True)
class WsRow:
    route: str
    path: str
    kind: str  # clm, voice, chat, monitor: what is sent and read
    expect: tuple[str, str, str, str, str]
    why: str = ""


WS_MATRIX: list[WsRow] = [
    WsRow("llm", "/llm", "clm", each("answered"), "Hume, server to server; no token on the agent"),
    WsRow(
        "llm/<slug:slug>",
        "/llm/closed",
        "clm",
        each("close 4401"),
        "the agent's token is needed; a session does not replace it",
    ),
    WsRow(
        "llm/<slug:slug>",
        "/llm/hidden",
        "clm",
        each("close 4401"),
        "private and without a token: never answered here",
    ),
    WsRow("llm/<slug:slug>", "/llm/nobody", "clm", each("close 4404")),
    WsRow("conversation", "/conversation", "voice", each("session"), "the public default agent"),
    WsRow("conversation/websocket", "/conversation/websocket", "voice", each("session")),
    WsRow(
        "agents/<slug:slug>/conversation",
        "/agents/closed/conversation",
        "voice",
        signed_in("session", anon="close 4401"),
        "a private agent: checked at 'open'",
    ),
    WsRow(
        "agents/<slug:slug>/conversation",
        "/agents/nobody/conversation",
        "voice",
        each("close 4404"),
    ),
    WsRow("chat", "/chat", "chat", each("session"), "the public default agent"),
    WsRow(
        "agents/<slug:slug>/chat",
        "/agents/closed/chat",
        "chat",
        signed_in("session", anon="close 4401"),
    ),
    WsRow("agents/<slug:slug>/chat", "/agents/nobody/chat", "chat", each("close 4404")),
    WsRow(
        "ws/monitor",
        "/ws/monitor",
        "monitor",
        ("close 4403", "close 4403", "accepted", "close 4403", "accepted"),
        "the live feed of every turn: view_conversation only",
    ),
]


class FakeVoiceSession:
    """Stands in for the voice pipeline: the matrix is about who gets a session, not
    about speech (the real pipeline is conversations/tests/test_voice_socket.py)."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def voice_sessions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Voice sessions the socket built: (agent slug, the resumed conversation or None)."""
    built: list[tuple[str, Any]] = []

    async def build(
        self: VoiceConsumer, agent: Agent, output_rate: int, resumed: Any, **options: Any
    ) -> Any:
        built.append((agent.slug, resumed))
        self.live_id = resumed[0].conversation_id if resumed is not None else "new"
        return FakeVoiceSession()

    monkeypatch.setattr(VoiceConsumer, "_build_session", build)
    return built


def _frame(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("bytes") is not None:
        frame: dict[str, Any] = msgpack.unpackb(message["bytes"], raw=False)
        return frame
    loaded: dict[str, Any] = json.loads(message["text"])
    return loaded


async def ws_session(
    path: str, headers: list[tuple[bytes, bytes]], kind: str, *, first: Any = None
) -> tuple[str, list[dict[str, Any]]]:
    """Open a socket, send what ``kind`` starts with, and report how it went, with the
    frames received up to that point. The Host is this site's unless ``headers`` name one
    (a browser always sends one)."""
    if not any(name == b"host" for name, _ in headers):
        headers = [(b"host", b"127.0.0.1"), *headers]
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect(timeout=10)
    if not connected:
        return "denied", []
    frames: list[dict[str, Any]] = []
    try:
        if kind == "clm":
            await socket.send_to(text_data=first or payload([sdk_user("Hello there.")], "s-1"))
        elif kind == "voice":
            await socket.send_to(bytes_data=msgpack.packb(first or {"type": "open"}))
        elif kind == "monitor":
            # A probe, not a pause: an admitted monitor answers it (the socket is read-only);
            # a refused one has closed before any answer could come.
            await socket.send_to(text_data="{}")
        while True:
            message = await socket.receive_output(timeout=10)
            if message["type"] == "websocket.close":
                return f"close {message.get('code')}", frames
            frames.append(_frame(message))
            if frames[-1]["type"] == "assistant_input":
                return "answered", frames
            if frames[-1]["type"] == "session":
                return "session", frames
            if kind == "monitor" and frames[-1] == {
                "type": "error",
                "message": "this socket is read-only",
            }:
                return "accepted", frames
    finally:
        await socket.disconnect()


def test_the_socket_table_names_every_socket_route() -> None:
    assert {row.route for row in WS_MATRIX} == {str(p.pattern) for p in websocket_urlpatterns}


async def test_every_socket_answers_each_caller_as_the_table_says(world: World, voice_sessions):
    got: dict[str, str] = {}
    want: dict[str, str] = {}
    for row in WS_MATRIX:
        for role, expected in zip(ROLES, row.expect, strict=True):
            headers = world.cookie(role)
            if row.kind != "clm":
                headers.append(ALLOWED_ORIGIN)  # browsers send one; see the Origin tests
            key = f"{row.path} as {role}"
            got[key], _ = await ws_session(row.path, headers, row.kind)
            want[key] = expected
    assert got == want


# --- tokens -----------------------------------------------------------------------------------


def _documents_with(authorization: str | None) -> tuple[int, str]:
    """GET /api/documents/ (staff only) with this Authorization header: status, error code."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = Client().get("/api/documents/", headers=headers)
    code = response.json()["error"]["code"] if response.status_code >= 400 else ""
    return response.status_code, code


def test_drf_tokens_missing_wrong_foreign_and_inactive(world: World) -> None:
    inactive = world.users["superuser"]
    inactive_key = world.tokens["superuser"]
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    cases = {
        "missing": None,
        "wrong": "Token 0123456789abcdef0123456789abcdef01234567",
        "another scheme": f"Bearer {world.tokens['staff']}",
        "a plain user's": f"Token {world.tokens['user']}",
        "an inactive superuser's": f"Token {inactive_key}",
        "staff's": f"Token {world.tokens['staff']}",
    }
    assert {name: _documents_with(header) for name, header in cases.items()} == {
        "missing": (401, "not_authenticated"),
        "wrong": (401, "authentication_failed"),
        "another scheme": (401, "not_authenticated"),
        "a plain user's": (403, "permission_denied"),
        "an inactive superuser's": (401, "authentication_failed"),
        "staff's": (200, ""),
    }


def test_chatbot_endpoints_take_a_token_for_private_agents(world: World) -> None:
    User.objects.filter(pk=world.users["superuser"].pk).update(is_active=False)
    cases = {
        "missing": None,
        "wrong": "Token 0123456789abcdef0123456789abcdef01234567",
        "an inactive user's": f"Token {world.tokens['superuser']}",
        "a plain user's": f"Token {world.tokens['user']}",
    }
    got: dict[str, tuple[int, str]] = {}
    for name, header in cases.items():
        headers = {"Authorization": header} if header else {}
        response = Client().post(
            "/queryAssistant/?agent=closed",
            {"prompt": "Hello.", "address": f"token-{len(got)}"},
            content_type="application/json",
            headers=headers,
        )
        got[name] = (response.status_code, response.json().get("error", {}).get("code", ""))
    assert got == {
        "missing": (401, "not_authenticated"),
        "wrong": (401, "authentication_failed"),
        "an inactive user's": (401, "authentication_failed"),
        "a plain user's": (200, ""),
    }


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("", [], "close 4401"),
        ("?token=wrong", [], "close 4401"),
        (f"?token={CLM_TOKEN}x", [], "close 4401"),
        (f"?token={CLM_TOKEN}", [], "answered"),
        ("", [(b"authorization", f"Bearer {CLM_TOKEN}".encode())], "answered"),
        ("", [(b"authorization", b"Bearer wrong")], "close 4401"),
        ("", [(b"authorization", CLM_TOKEN.encode())], "close 4401"),  # not a Bearer
    ],
    ids=["missing", "wrong", "longer", "query", "bearer", "wrong-bearer", "bare-header"],
)
async def test_the_custom_llm_socket_takes_the_agents_token(
    world: World, query: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    result, frames = await ws_session(f"/llm/closed{query}", headers, "clm")
    assert result == expected
    if expected != "answered":
        assert frames == [
            {"type": "error", "code": "unauthorized", "message": "missing or wrong token"}
        ]
        assert await sync_to_async(Conversation.objects.filter(agent=world.closed).count)() == 0


@pytest.mark.parametrize(
    ("query", "authorization", "expected"),
    [
        ("", None, 401),
        ("", "Bearer wrong", 401),
        ("", f"Bearer {CLM_TOKEN[:-1]}", 401),
        ("?token=wrong", None, 401),
        ("", f"Token {CLM_TOKEN}", 401),
        ("", f"Bearer {CLM_TOKEN}", 200),
        (f"?token={CLM_TOKEN}", None, 200),
    ],
    ids=["missing", "wrong", "shorter", "wrong-query", "not-bearer", "bearer", "query"],
)
def test_the_sse_endpoint_takes_the_agents_token(
    world: World, query: str, authorization: str | None, expected: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = world.clients["superuser"].post(
        f"/llm/closed/chat/completions{query}",
        json.dumps(SSE_BODY),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == expected
    if expected == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        assert not Conversation.objects.filter(agent=world.closed).exists()


class _SignedLongAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 2 * 86_400)


def _links(world: World) -> dict[str, str]:
    return {
        "valid": links.signed_link_token("closed"),
        "wrong": links.signed_link_token("closed")[:-2] + "xx",
        "expired": _SignedLongAgo(salt=links.LINK_SALT).sign("closed"),
        "another agent's": links.signed_link_token("open"),
        "missing": "",
    }


def test_signed_links_open_a_private_agents_page_only_when_valid(world: World) -> None:
    got = {
        name: outcome(Client().get(f"/agents/closed/?sig={sig}"))
        for name, sig in _links(world).items()
    }
    assert got == {
        "valid": "200",
        "wrong": "login",
        "expired": "login",
        "another agent's": "login",
        "missing": "login",
    }


async def test_signed_links_open_a_private_agents_sockets_only_when_valid(
    world: World, voice_sessions
) -> None:
    links = await sync_to_async(_links)(world)
    got = {}
    for name, sig in links.items():
        chat, _ = await ws_session(f"/agents/closed/chat?sig={sig}", [ALLOWED_ORIGIN], "chat")
        voice, _ = await ws_session(
            f"/agents/closed/conversation?sig={sig}", [ALLOWED_ORIGIN], "voice"
        )
        got[name] = (chat, voice)
    refused = ("close 4401", "close 4401")
    assert got == {
        "valid": ("session", "session"),
        "wrong": refused,
        "expired": refused,
        "another agent's": refused,
        "missing": refused,
    }


def test_metrics_with_a_token_need_exactly_that_bearer(world: World, settings) -> None:
    settings.METRICS_TOKEN = "metrics-token-5e1d"
    cases = {
        "missing": {},
        "wrong": {"Authorization": "Bearer metrics-token-5e1e"},
        "not bearer": {"Authorization": "metrics-token-5e1d"},
        "right": {"Authorization": "Bearer metrics-token-5e1d"},
    }
    got = {name: Client().get("/metrics", headers=h).status_code for name, h in cases.items()}
    assert got == {"missing": 401, "wrong": 401, "not bearer": 401, "right": 200}


def test_metrics_without_a_token_answer_private_addresses_only(world: World) -> None:
    got = {
        address: Client(REMOTE_ADDR=address).get("/metrics").status_code
        for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "8.8.8.8", "203.0.113.7")
    }
    assert got == {
        "127.0.0.1": 200,
        "10.1.2.3": 200,
        "192.168.0.9": 200,
        "8.8.8.8": 403,
        "203.0.113.7": 403,
    }


# --- foreign Origins and CSRF ---------------------------------------------------------------

BROWSER_SOCKETS = [
    ("/conversation", "voice"),
    ("/conversation/websocket", "voice"),
    ("/agents/open/conversation", "voice"),
    ("/chat", "chat"),
    ("/agents/open/chat", "chat"),
    ("/ws/monitor", "monitor"),
]


async def test_browser_sockets_admit_this_site_and_allowed_origins_only(
    world: World, voice_sessions, settings
) -> None:
    settings.ALLOWED_ORIGINS = ["https://app.example.org:8443"]
    cookie = world.cookie("superuser")  # even the most trusted session
    site = [(b"host", b"voice.example.org:8000")]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "voice.example.org"]
    cases = {
        "this site": [(b"origin", b"http://voice.example.org:8000")],
        "an allowed origin": [(b"origin", b"https://app.example.org:8443")],
        "another port": [(b"origin", b"http://voice.example.org:8001")],
        "another scheme": [(b"origin", b"https://voice.example.org:8000")],
        "the allowed host, another port": [(b"origin", b"https://app.example.org")],
        "another site": [FOREIGN_ORIGIN],
        "a sandboxed page": [(b"origin", b"null")],
    }
    got = {}
    for path, kind in BROWSER_SOCKETS:
        for case, origin in cases.items():
            got[(path, case)] = (await ws_session(path, [*site, *cookie, *origin], kind))[0]
    admitted = {"this site", "an allowed origin"}
    assert got == {
        (path, case): ("accepted" if kind == "monitor" else "session")
        if case in admitted
        else "denied"
        for path, kind in BROWSER_SOCKETS
        for case in cases
    }


async def test_a_socket_without_an_origin_is_a_program_anonymous_unless_it_has_a_token(
    world: World, voice_sessions
) -> None:
    # Browsers always send an Origin: without one there is no cross-site risk, but a
    # session cookie (a browser's) does not count either.
    cookie = world.cookie("superuser")
    staff_token = [(b"authorization", f"Token {world.tokens['staff']}".encode())]
    bad_token = [(b"authorization", b"Token not-a-real-token")]
    assert (await ws_session("/conversation", cookie, "voice"))[0] == "session"
    assert (await ws_session("/agents/closed/conversation", cookie, "voice"))[0] == "close 4401"
    assert (await ws_session("/agents/closed/chat", cookie, "chat"))[0] == "close 4401"
    assert (await ws_session("/ws/monitor", cookie, "monitor"))[0] == "close 4403"
    assert (await ws_session("/agents/closed/conversation", staff_token, "voice"))[0] == "session"
    assert (await ws_session("/agents/closed/chat", staff_token, "chat"))[0] == "session"
    assert (await ws_session("/agents/closed/chat", bad_token, "chat"))[0] == "close 4401"
    sig = links.signed_link_token("closed")
    assert (await ws_session(f"/agents/closed/chat?sig={sig}", [], "chat"))[0] == "session"


async def test_the_custom_llm_socket_ignores_origin_and_needs_its_token(world: World) -> None:
    """Hume's servers send no browser Origin; the token is what admits (README)."""
    evil = [FOREIGN_ORIGIN]
    assert (await ws_session("/llm", evil, "clm"))[0] == "answered"
    assert (await ws_session("/llm/closed", evil, "clm"))[0] == "close 4401"
    assert (await ws_session(f"/llm/closed?token={CLM_TOKEN}", evil, "clm"))[0] == "answered"


def _csrf_client(world: World, role: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users[role])
    return client


UNSAFE_API_CALLS: list[tuple[str, str, Any]] = [
    ("POST", "/api/agents/", _new_agent("csrf")),
    ("PATCH", "/api/agents/closed/", {"greeting": "Changed."}),
    ("POST", "/api/agents/open/make-default/", None),
    ("POST", "/api/agents/closed/prompt-versions/", {"text": "Changed."}),
    ("PATCH", "/api/conversations/{conversation}/turns/0/", {"label": "good"}),
    ("DELETE", "/api/documents/{document}/", None),
]


def test_session_writes_from_a_foreign_origin_without_csrf_are_refused(world: World) -> None:
    client = _csrf_client(world, "superuser")
    names = world.names("superuser")
    got = {}
    for method, path, body in UNSAFE_API_CALLS:
        response = client.generic(
            method,
            path.format(**names),
            json.dumps(body) if body is not None else "",
            content_type="application/json",
            headers={"Origin": "https://evil.example"},
        )
        got[f"{method} {path}"] = (response.status_code, response.json()["error"]["code"])
    assert got == {f"{m} {p}": (403, "permission_denied") for m, p, _ in UNSAFE_API_CALLS}
    assert not Agent.objects.filter(slug="made-by-csrf").exists()
    assert Agent.objects.get(slug="closed").greeting == ""
    assert Document.objects.filter(pk=world.document.pk).exists()


def test_a_csrf_token_does_not_help_a_foreign_origin(world: World) -> None:
    client = _csrf_client(world, "superuser")
    client.get("/accounts/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    base = {"X-CSRFToken": token}
    same = client.post(
        "/api/agents/",
        _new_agent("same-site"),
        content_type="application/json",
        headers={**base, "Origin": "http://testserver"},
    )
    foreign = client.post(
        "/api/agents/",
        _new_agent("foreign"),
        content_type="application/json",
        headers={**base, "Origin": "https://evil.example"},
    )
    assert (same.status_code, foreign.status_code) == (201, 403)
    assert "Origin checking failed" in foreign.json()["error"]["message"]


def test_token_authenticated_writes_need_no_csrf(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/agents/",
        _new_agent("program"),
        content_type="application/json",
        headers={"Authorization": f"Token {world.tokens['staff']}", "Origin": "https://x.example"},
    )
    assert response.status_code == 201


def test_django_forms_refuse_posts_without_csrf(world: World) -> None:
    anonymous = Client(enforce_csrf_checks=True)
    operator = _csrf_client(world, "operator")
    got = {
        "sign-in": anonymous.post(
            "/accounts/login/", {"username": "user1", "password": "pw-12345-xyz"}
        ).status_code,
        "admin sign-in": anonymous.post("/admin/login/", {"username": "x"}).status_code,
        "sign-out": operator.post("/accounts/logout/").status_code,
        "label a turn": operator.post(
            f"/{REVIEW}turns/{world.turn.pk}/label/", {"label": "good", "note": ""}
        ).status_code,
    }
    assert got == {"sign-in": 403, "admin sign-in": 403, "sign-out": 403, "label a turn": 403}
    world.turn.refresh_from_db()
    assert world.turn.label == ""


def test_a_foreign_pages_post_does_not_talk_as_the_signed_in_visitor(world: World) -> None:
    """The chatbot endpoints take no CSRF token (programs call them), so a session only
    counts when the request does not come from another site's page: there, the visitor
    is anonymous, which a private agent refuses and a public one answers as anonymous."""
    client = world.clients["user"]
    foreign = {"Origin": "https://evil.example"}
    private = client.post(
        "/queryAssistant/?agent=closed",
        {"prompt": "Hello.", "address": "from-evil"},
        content_type="application/json",
        headers=foreign,
    )
    public = client.post(
        "/queryAssistant/",
        {"prompt": "Hello.", "address": "from-evil"},
        content_type="application/json",
        headers=foreign,
    )
    same_site = client.post(
        "/queryAssistant/?agent=closed",
        {"prompt": "Hello.", "address": "from-home"},
        content_type="application/json",
        headers={"Origin": "http://testserver"},
    )
    assert (private.status_code, private.json()["error"]["code"]) == (401, "not_authenticated")
    assert (public.status_code, same_site.status_code) == (200, 200)
    owners = dict(
        Conversation.objects.filter(channel=Channel.HTTP_API).values_list("external_id", "user")
    )
    assert owners == {"from-evil": None, "from-home": world.users["user"].pk}


# --- oversize -----------------------------------------------------------------------------------


async def asgi_post(path: str, body: bytes, *, declared: int | None = None) -> tuple[int, Any, int]:
    """POST through the project's ASGI application as a server would: the status, the JSON
    body, and how many times the application had asked for the request body when its
    answer went out (a refusal then drains what the client still sends, which is not
    counted)."""
    pulls = 0
    answered_after: int | None = None
    sent: list[dict[str, Any]] = []
    length = len(body) if declared is None else declared

    async def receive() -> dict[str, Any]:
        nonlocal pulls
        pulls += 1
        if pulls == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal answered_after
        sent.append(message)
        if message["type"] == "http.response.body" and answered_after is None:
            answered_after = pulls

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
        "client": ("127.0.0.1", 50_000),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(application(scope, receive, send), timeout=30)
    body_out = b"".join(m.get("body", b"") for m in sent[1:])
    return (
        sent[0]["status"],
        json.loads(body_out),
        pulls if answered_after is None else answered_after,
    )


@pytest.mark.parametrize(
    "path",
    ["/api/documents/", "/processAudioFile/", "/llm/chat/completions", "/api/agents/", "/"],
)
async def test_a_body_declared_over_the_limit_is_refused_unread(world: World, path: str) -> None:
    limit = django_settings.HTTP_MAX_BODY_BYTES
    status, body, pulls = await asgi_post(path, b"{}", declared=limit + 1)
    assert (status, body) == (
        413,
        {
            "error": {
                "code": "too_large",
                "message": f"the request body has {limit + 1} bytes; the limit is {limit}",
            }
        },
    )
    assert pulls == 0


def _stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_document_over_the_limit_is_413_and_stores_nothing(world: World, settings) -> None:
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 1024 * 1024
    before = (Document.objects.count(), _stored_files(world.media))
    response = world.clients["staff"].post(
        "/api/documents/", {"file": _text_file("big.txt", "word " * 250_000)}
    )
    assert (response.status_code, response.json()["error"]) == (
        413,
        {"code": "too_large", "message": "big.txt is 1.2 MB; the limit is 1 MB."},
    )
    assert (Document.objects.count(), _stored_files(world.media)) == before


@pytest.mark.parametrize("size", [2048, 200_000], ids=["after-parsing", "from-content-length"])
def test_audio_over_the_limit_is_413_and_stores_nothing(world: World, settings, size: int) -> None:
    settings.CHATBOT_MAX_AUDIO_BYTES = 1024
    before = (Conversation.objects.count(), _stored_files(world.media))
    upload = SimpleUploadedFile("big.wav", b"\0" * size, content_type="audio/wav")
    response = Client().post("/processAudioFile/", {"file": upload})
    assert (response.status_code, response.json()["error"]) == (
        413,
        {"code": "too_large", "message": "the upload is larger than 1024 bytes"},
    )
    assert (Conversation.objects.count(), _stored_files(world.media)) == before


@pytest.mark.parametrize("size", [3000, 20_000], ids=["over-the-frame-limit", "over-django-limit"])
def test_an_sse_body_over_the_limit_is_413_payload_too_large(
    world: World, settings, size: int
) -> None:
    settings.CLM_MAX_FRAME_BYTES = 2048
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048 + 4096  # as in settings: the limit + slack
    body = {**SSE_BODY, "padding": "x" * size}
    response = Client().post(
        "/llm/chat/completions", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Conversation.objects.filter(channel=Channel.HUME_CLM).exists()


async def test_a_custom_llm_frame_over_the_limit_is_refused_and_the_socket_carries_on(
    world: World, settings
) -> None:
    settings.CLM_MAX_FRAME_BYTES = 2048
    socket = WebsocketCommunicator(application, "/llm")
    assert (await socket.connect())[0]
    big = payload([sdk_user("x" * 3000)], "s-big")
    await socket.send_to(text_data=big)
    error = json.loads(await socket.receive_from(timeout=10))
    size = len(big.encode())
    assert error == {
        "type": "error",
        "code": "payload_too_large",
        "message": f"the frame has {size} bytes; the limit is 2048",
    }
    await socket.send_to(text_data=payload([sdk_user("Hello.")], "s-big"))
    assert json.loads(await socket.receive_from(timeout=10))["type"] == "assistant_input"
    await socket.disconnect()


async def test_an_audio_frame_over_the_limit_is_refused_and_the_socket_carries_on(
    world: World,
) -> None:
    limit = django_settings.VOICE_MAX_FRAME_BYTES
    socket = WebsocketCommunicator(application, "/conversation", headers=[HOST, ALLOWED_ORIGIN])
    assert (await socket.connect())[0]
    frame = msgpack.packb({"type": "audio", "audio": b"\0" * limit})
    await socket.send_to(bytes_data=frame)
    error = msgpack.unpackb(await socket.receive_from(timeout=10))
    assert error == {
        "type": "error",
        "code": "frame_too_large",
        "message": f"the frame has {len(frame)} bytes; the limit is {limit}",
    }
    await socket.send_to(bytes_data=msgpack.packb({"type": "audio", "audio": b"\0" * 4}))
    assert msgpack.unpackb(await socket.receive_from(timeout=10))["code"] == "not_open"
    await socket.disconnect()


async def test_a_chat_message_over_the_limit_is_refused(world: World) -> None:
    socket = WebsocketCommunicator(application, "/chat", headers=[HOST, ALLOWED_ORIGIN])
    assert (await socket.connect())[0]
    assert json.loads(await socket.receive_from(timeout=10))["type"] == "session"
    await socket.send_to(text_data=json.dumps({"type": "message", "text": "x" * 4001}))
    assert json.loads(await socket.receive_from(timeout=10)) == {
        "type": "error",
        "code": "message_too_long",
        "message": "messages are limited to 4000 characters",
    }
    await socket.disconnect()


# --- hostile upload file names ---------------------------------------------------------------

BOUNDARY = "security-suite-boundary"


def multipart_file(disposition: bytes, content: bytes, content_type: bytes) -> bytes:
    """A multipart body whose file part has exactly this Content-Disposition tail, as a
    hostile client would write it (Django's test client would clean the name first)."""
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; '
        + disposition
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\n\r\n"
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


HOSTILE_NAMES: list[tuple[bytes, str]] = [
    # (the Content-Disposition's file name, the document's name afterwards or the refusal)
    (b'filename="../../etc/passwd"', "unsupported"),  # no extension: a clear 400
    (b'filename="../../etc/passwd.txt"', "passwd.txt"),
    (b'filename="../../../tmp/evil.txt"', "evil.txt"),
    (b'filename="..\\..\\boot.ini"', "unsupported"),
    (b'filename="..\\..\\notes.txt"', "notes.txt"),
    (b'filename="/abs/path.txt"', "path.txt"),
    (b'filename="C:\\Windows\\win.md"', "win.md"),
    (b'filename="evil\x00.txt"', "evil.txt"),
    (b'filename="' + b"a" * 300 + b'.txt"', "a" * 251 + ".txt"),  # cut to 255, stored as 100
    (b"filename*=UTF-8''..%2F..%2F..%2Ftmp%2Fencoded.txt", "encoded.txt"),
    (b'filename="%2e%2e%2fpercent.txt"', "%2e%2e%2fpercent.txt"),
]


def test_document_names_cannot_escape_media_root(world: World, settings, tmp_path: Path) -> None:
    # Two levels below tmp_path: a name that climbed out would land inside tmp_path.
    media = tmp_path / "deep" / "er" / "media"
    settings.MEDIA_ROOT = media
    outside_before = {p for p in _stored_files(tmp_path) if media not in p.parents}
    got = {}
    for index, (disposition, _) in enumerate(HOSTILE_NAMES):
        body = multipart_file(disposition, f"Hostile name {index}.".encode(), b"text/plain")
        response = world.clients["staff"].post(
            "/api/documents/", body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
        )
        if response.status_code == 400:
            got[disposition] = response.json()["error"]["code"]
            continue
        assert response.status_code == 201, response.content
        document = Document.objects.get(pk=response.json()["id"])
        stored = Path(document.file.path).resolve()
        assert stored.parent.parent.parent == (media / "documents").resolve(), stored
        assert re.fullmatch(r"[-\w.]+", stored.name), stored.name
        got[disposition] = document.original_name
    assert got == {disposition: name for disposition, name in HOSTILE_NAMES}
    outside_after = {p for p in _stored_files(tmp_path) if media not in p.parents}
    assert outside_after == outside_before


@pytest.mark.parametrize(
    "disposition", [b'filename=".."', b'filename="../"', b'filename="\x00"'], ids=str
)
def test_document_names_with_nothing_left_are_refused(world: World, disposition: bytes) -> None:
    before = (Document.objects.count(), _stored_files(world.media))
    body = multipart_file(disposition, b"Nothing to name this.", b"text/plain")
    response = world.clients["staff"].post(
        "/api/documents/", body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")
    assert response.json()["error"]["fields"] == {"file": ["No file was submitted."]}
    assert (Document.objects.count(), _stored_files(world.media)) == before


@pytest.fixture
def fake_speech(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-security-suite")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


async def test_audio_upload_names_never_reach_storage(
    world: World, settings, tmp_path: Path, fake_speech: FakeOpenAI
) -> None:
    """The upload's name is not used: a stored recording is ``user*.wav`` under MEDIA_ROOT."""
    media = tmp_path / "deep" / "er" / "media"
    settings.MEDIA_ROOT = media
    settings.VOICE_STORE_AUDIO = True
    await sync_to_async(Agent.objects.filter(slug="open").update)(
        stt_provider="openai", tts_provider="openai"
    )
    wav = wav_file(tone_pcm(0.5, 16_000), 16_000, "x.wav").read()
    outside_before = {p for p in _stored_files(tmp_path) if media not in p.parents}
    for disposition, _ in HOSTILE_NAMES[:6]:
        response: Any = await AsyncClient().post(
            "/processAudioFile/?format=pcm",
            multipart_file(disposition, wav, b"audio/wav"),
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
        )
        assert response.status_code == 200
        assert [chunk async for chunk in response.streaming_content]
    stored = await sync_to_async(
        lambda: [
            Path(t.audio.path) for t in Turn.objects.exclude(audio="").exclude(pk=world.turn.pk)
        ]
    )()
    assert len(stored) == 12  # each request: the user's recording and the reply
    for path in stored:
        assert path.resolve().is_relative_to((media / "turn-audio").resolve())
        assert re.fullmatch(r"(user|reply)(_\w+)?\.wav", path.name), path.name
    outside_after = {p for p in _stored_files(tmp_path) if media not in p.parents}
    assert outside_after == outside_before


# --- never served without authorisation ---------------------------------------------------------


def test_media_files_are_never_served_to_anyone(world: World) -> None:
    document_path = world.document.file.name
    audio_path = world.turn.audio.name
    assert (world.media / document_path).is_file()  # there to be served, and still 404
    assert (world.media / audio_path).is_file()
    paths = [
        f"/media/{document_path}",
        f"/media/{audio_path}",
        "/media/",
        "/media/documents/",
        f"/static/../media/{document_path}",
        "/static/%2e%2e/voiceapp/settings.py",
        "/static/../../voiceapp/settings.py",
    ]
    got = {(p, role): world.clients[role].get(p).status_code for p in paths for role in ROLES}
    assert got == {key: 404 for key in got}


def test_turn_audio_goes_only_to_those_who_may_hear_it(world: World) -> None:
    url = f"/{REVIEW}turns/{world.turn.pk}/audio/"
    recording = world.turn.audio.open("rb").read()
    responses = {role: world.clients[role].get(url) for role in ROLES}
    assert {role: outcome(r) for role, r in responses.items()} == {
        "anon": "admin-login",
        "user": "admin-login",
        "operator": "200",
        "staff": "403",
        "superuser": "200",
    }
    assert responses["operator"].content == recording
    assert responses["operator"]["Content-Type"] == "audio/wav"
    assert all(
        recording[:44] not in r.content
        for role, r in responses.items()
        if role in ("anon", "user", "staff")
    )


def test_the_documents_api_never_hands_out_the_file(world: World) -> None:
    listing = world.clients["superuser"].get("/api/documents/")
    detail = world.clients["superuser"].get(f"/api/documents/{world.document.pk}/")
    assert set(detail.json()) == {
        "id",
        "title",
        "original_name",
        "kind",
        "size",
        "sha256",
        "agents",
        "status",
        "status_message",
        "indexed_at",
        "openai",
    }
    for response in (listing, detail):
        assert b"The handbook of the firm." not in response.content
        assert world.document.file.name.encode() not in response.content


def test_agent_secrets_are_never_in_api_responses(world: World) -> None:
    for role in ("user", "staff", "superuser"):
        for path in ("/api/agents/", "/api/agents/closed/"):
            response = world.clients[role].get(path)
            assert response.status_code == 200
            assert CLM_TOKEN.encode() not in response.content
    user_view = world.clients["user"].get("/api/agents/closed/").json()
    staff_view = world.clients["staff"].get("/api/agents/closed/").json()
    assert {"llm_base_url", "llm_api_key_env", "eliza_script", "has_clm_token"} & set(
        user_view
    ) == set()
    assert staff_view["has_clm_token"] is True


async def test_a_chat_is_not_resumed_by_another_user(world: World) -> None:
    owner = world.cookie("user")
    first, frames = await ws_session("/agents/closed/chat", [*owner, ALLOWED_ORIGIN], "chat")
    mine = frames[-1]["conversation"]
    others = await sync_to_async(_other_user_cookie)(world)
    got = {}
    for name, headers in {
        "another user": [*others, ALLOWED_ORIGIN],
        "anonymous with a signed link": [ALLOWED_ORIGIN],
        "the owner": [*owner, ALLOWED_ORIGIN],
    }.items():
        sig = links.signed_link_token("closed")
        path = f"/agents/closed/chat?conversation={mine}&sig={sig}"
        result, frames = await ws_session(path, headers, "chat")
        session = frames[-1]
        got[name] = (result, session["conversation"] == mine, session["resumed"])
    assert first == "session"
    assert got == {
        "another user": ("session", False, False),
        "anonymous with a signed link": ("session", False, False),
        "the owner": ("session", True, True),
    }


def _other_user_cookie(world: World) -> list[tuple[bytes, bytes]]:
    other = User.objects.create_user(username="someone-else", password="pw-12345-xyz")
    client = Client()
    client.force_login(other)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def test_a_voice_call_does_not_resume_another_users_conversation(
    world: World, voice_sessions
) -> None:
    mine = str(world.conversation.pk)  # the plain user's
    await sync_to_async(Conversation.objects.filter(pk=mine).update)(channel=Channel.WEB_VOICE)
    others = await sync_to_async(_other_user_cookie)(world)
    opening = {"type": "open", "conversation": mine}
    for headers in (others, world.cookie("user")):
        await ws_session("/conversation", [*headers, ALLOWED_ORIGIN], "voice", first=opening)
    assert [(slug, resumed is not None) for slug, resumed in voice_sessions] == [
        ("open", False),
        ("open", True),
    ]
    assert voice_sessions[1][1][0].conversation_id == mine


def test_an_address_of_one_user_is_not_continued_by_another(world: World) -> None:
    def ask(role: str) -> Any:
        return world.clients[role].post(
            "/queryAssistant/?agent=closed",
            {"prompt": "My password is swordfish.", "address": "shared-address"},
            content_type="application/json",
        )

    first = ask("user")
    second = ask("operator")
    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]["code"]) == (403, "forbidden")
    assert Turn.objects.filter(conversation__external_id="shared-address").count() == 2


# --- headers, cookies, sign-in -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "path"),
    [("anon", "/"), ("anon", "/admin/login/"), ("user", "/api/agents/"), ("anon", "/healthz")],
)
def test_responses_carry_the_security_headers(world: World, role: str, path: str) -> None:
    response = world.clients[role].get(path)
    assert response.status_code == 200
    assert {
        name: response.get(name)
        for name in (
            "X-Content-Type-Options",
            "X-Frame-Options",
            "Referrer-Policy",
            "Cross-Origin-Opener-Policy",
        )
    } == {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def test_signing_in_sets_an_httponly_session_cookie_and_never_leaves_the_site(
    world: World,
) -> None:
    username = world.users["user"].username
    response = Client().post(
        "/accounts/login/?next=https://evil.example/",
        {"username": username, "password": "pw-12345-xyz", "next": "https://evil.example/"},
    )
    assert (response.status_code, response["Location"]) == (302, "/")
    cookie = response.cookies["sessionid"]
    assert (cookie["httponly"], cookie["samesite"]) == (True, "Lax")


# --- deployment ------------------------------------------------------------------------------
# The clean `check --deploy` of the production settings is test_settings.py's
# test_production_configuration_passes_deploy_checks (its warnings cover secure cookies,
# HSTS, the HTTPS redirect, DEBUG, the host list, nosniff and frame denial); here, that the
# check has teeth: without HTTPS=true the same settings fail it.

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": GOOD_KEY,
    "HTTPS": "true",
    "ALLOWED_HOSTS": "voice.example.org",
    "DATABASE_URL": "postgres://app:pw@127.0.0.1:5432/voiceapp",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_the_deploy_check_fails_without_https() -> None:
    result = start({**PRODUCTION, "HTTPS": "false"}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    found = set(re.findall(r"\(security\.(W\d+)\)", result.stderr + result.stdout))
    assert found == {"W004", "W008", "W012", "W016"}
