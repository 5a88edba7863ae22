"""The HTTP API, mounted under ``api/``: its OpenAPI schema and Swagger UI, then each app's
endpoints (the views live in ``<app>/apis.py``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import apis as agents
from conversations import apis as conversations
from knowledge import apis as knowledge


@extend_schema(exclude=True)
class UnknownApiPath(APIView):
    """A malformed id under an API prefix (``/api/conversations/nope/``): the API's 404 body
    rather than Django's HTML page. Paths without a trailing slash do not match, so
    ``APPEND_SLASH`` still redirects ``/api/agents/x`` to ``/api/agents/x/``."""

    permission_classes: list[type] = []  # a 404 for everyone: the path exists for no one

    def get(self, request: Request, path: str) -> Response:
        raise NotFound(f"There is no API endpoint at /api/{path}.")

    post = put = patch = delete = head = options = get


app_name = "api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    # Agents and their prompt versions.
    path("agents/", agents.AgentListCreateApi.as_view(), name="agent-list"),
    path("agents/<slug:slug>/", agents.AgentDetailApi.as_view(), name="agent-detail"),
    path(
        "agents/<slug:slug>/make-default/",
        agents.AgentMakeDefaultApi.as_view(),
        name="agent-make-default",
    ),
    path("agents/<slug:slug>/link/", agents.AgentLinkApi.as_view(), name="agent-link"),
    path(
        "agents/<slug:slug>/prompt-versions/",
        agents.PromptVersionListCreateApi.as_view(),
        name="prompt-version-list",
    ),
    path(
        "agents/<slug:slug>/prompt-versions/<int:number>/",
        agents.PromptVersionDetailApi.as_view(),
        name="prompt-version-detail",
    ),
    # Conversations, their exports and turn review.
    path("conversations/", conversations.ConversationListApi.as_view(), name="conversation-list"),
    path(
        "conversations/<uuid:conversation_id>/",
        conversations.ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/export.json",
        conversations.ConversationExportJsonApi.as_view(),
        name="conversation-export-json",
    ),
    path(
        "conversations/<uuid:conversation_id>/export.csv",
        conversations.ConversationExportCsvApi.as_view(),
        name="conversation-export-csv",
    ),
    path(
        "conversations/<uuid:conversation_id>/turns/<int:index>/",
        conversations.TurnDetailApi.as_view(),
        name="turn-detail",
    ),
    # Knowledge documents.
    path("documents/", knowledge.DocumentListCreateApi.as_view(), name="document-list"),
    path("documents/<int:pk>/", knowledge.DocumentDetailApi.as_view(), name="document-detail"),
    # Last: anything else under these prefixes that ends in a slash.
    re_path(
        r"^(?P<path>(?:agents|conversations|documents)/.*/)$",
        UnknownApiPath.as_view(),
        name="unknown",
    ),
]
