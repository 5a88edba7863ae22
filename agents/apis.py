"""The agents HTTP API: agents and their immutable prompt versions.

Every signed-in user may list and read agents and prompt versions. Staff with the agents
model permissions (or superusers) create agents, change them (``PATCH``; deactivate with
``{"is_active": false}``), move the default flag and add prompt versions. There is no
delete: conversations keep pointing at their agent, so agents are deactivated instead.

An agent's custom-LLM token (``clm_token``) is write-only: no response ever carries it.
Staff see ``has_clm_token`` and the provider settings (base URL, key variable, script);
other users see neither.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from agents.links import signed_link_token
from agents.models import Agent, LLMProvider, PromptVersion
from agents.selectors import AgentNotFound, agent_get_active
from agents.services import (
    agent_create,
    agent_make_default,
    agent_update,
    prompt_version_create,
)
from knowledge.services import vector_store_request_sync
from voiceapp.api_permissions import MethodPermissions, staff_has_perm

TAG = "agents"

# Settings every signed-in user may read.
PUBLIC_FIELDS = (
    "slug",
    "name",
    "is_active",
    "is_default",
    "is_public",
    "greeting",
    "llm_provider",
    "llm_model",
    "llm_temperature",
    "llm_max_tokens",
    "stt_provider",
    "stt_model",
    "tts_provider",
    "tts_voice",
    "vad_threshold",
    "end_of_turn_silence_ms",
    "min_speech_ms",
    "barge_in",
    "reset_policy",
)
# Settings staff may change (and, but for the token, read back).
EDITABLE_FIELDS = (
    "name",
    "is_active",
    "is_public",
    "greeting",
    "llm_provider",
    "llm_model",
    "llm_temperature",
    "llm_max_tokens",
    "llm_base_url",
    "llm_api_key_env",
    "eliza_script",
    "stt_provider",
    "stt_model",
    "tts_provider",
    "tts_voice",
    "vad_threshold",
    "end_of_turn_silence_ms",
    "min_speech_ms",
    "barge_in",
    "clm_token",
    "reset_policy",
)
# Changing these moves an agent's OpenAI vector store (or removes it), as in the admin.


class AgentPermissions(MethodPermissions):
    staff = True
    perms = {"POST": ("agents.add_agent",), "PATCH": ("agents.change_agent",)}


class AgentChangePermissions(MethodPermissions):
    """Moving the default flag and adding prompt versions change the agent."""

    staff = True
    perms = {"POST": ("agents.change_agent",)}


def sees_agent_config(user: User | AnonymousUser) -> bool:
    """Whether ``user`` may read provider settings (as in the admin: view or change)."""
    return staff_has_perm(user, "agents.view_agent") or staff_has_perm(user, "agents.change_agent")


def _acting_user(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def django_validation_error(exc: DjangoValidationError) -> ValidationError:
    """A model's ``full_clean`` error as a 400 whose ``fields`` name the invalid fields."""
    detail = serializers.as_serializer_error(exc)
    if NON_FIELD_ERRORS in detail:
        detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
    return ValidationError(detail)


def _agents() -> QuerySet[Agent]:
    active = PromptVersion.objects.filter(is_active=True)
    return Agent.objects.prefetch_related(
        Prefetch("prompt_versions", queryset=active, to_attr="active_prompts")
    ).order_by("name")


def _active_prompt(agent: Agent) -> PromptVersion | None:
    prefetched: list[PromptVersion] | None = getattr(agent, "active_prompts", None)
    if prefetched is None:
        return agent.active_prompt
    return prefetched[0] if prefetched else None


def _agent_or_404(slug: str) -> Agent:
    agent = _agents().filter(slug=slug).first()
    if agent is None:
        raise NotFound(f"There is no agent {slug!r}.")
    return agent


def _agent_create(*, created_by: User | None, data: dict[str, Any]) -> Agent:
    with transaction.atomic():
        agent = agent_create(created_by=created_by, **data)
        if agent.llm_provider == LLMProvider.OPENAI:
            vector_store_request_sync(agent_ids=[agent.pk])
    return agent


# --- serializers -----------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.BOOL)
class IsSetField(serializers.Field):  # type: ignore[type-arg]
    """Whether a secret has a value, without the value."""

    def to_representation(self, value: Any) -> bool:
        return bool(value)


class AgentOutput(serializers.ModelSerializer[Agent]):
    prompt_version = serializers.SerializerMethodField(
        help_text="The number of the active prompt version."
    )

    class Meta:
        model = Agent
        fields: tuple[str, ...] = (*PUBLIC_FIELDS, "prompt_version", "created_at", "updated_at")
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.INT)
    def get_prompt_version(self, agent: Agent) -> int | None:
        active = _active_prompt(agent)
        return active.number if active is not None else None


class AgentStaffOutput(AgentOutput):
    """What staff read: the public fields plus these, which other users never receive."""

    # Declared writable with required=False so the schema marks them optional: only staff
    # receive them. This serializer is never used for input.
    llm_base_url = serializers.CharField(required=False, help_text="Staff only.")
    llm_api_key_env = serializers.CharField(required=False, help_text="Staff only.")
    eliza_script = serializers.CharField(required=False, help_text="Staff only.")
    has_clm_token = IsSetField(
        source="clm_token",
        required=False,
        help_text="Staff only: whether Hume must send a token (the token is never shown).",
    )

    class Meta(AgentOutput.Meta):
        fields = (
            *AgentOutput.Meta.fields,
            "llm_base_url",
            "llm_api_key_env",
            "eliza_script",
            "has_clm_token",
        )
        read_only_fields = AgentOutput.Meta.fields


class AgentCreateInput(serializers.ModelSerializer[Agent]):
    """Field types, limits and choices come from the model; it never saves (the service does)."""

    prompt_text = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="The first prompt version."
    )

    class Meta:
        model = Agent
        fields = ("slug", *EDITABLE_FIELDS, "prompt_text")
        extra_kwargs = {"clm_token": {"write_only": True}}


class AgentUpdateInput(serializers.ModelSerializer[Agent]):
    """Any editable setting. The slug names the agent and stays; prompts are versions."""

    class Meta:
        model = Agent
        fields = EDITABLE_FIELDS
        extra_kwargs = {"clm_token": {"write_only": True}}


class PromptVersionOutput(serializers.ModelSerializer[PromptVersion]):
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = PromptVersion
        fields = ("number", "text", "is_active", "created_at", "created_by")
        read_only_fields = fields


class PromptVersionInput(serializers.Serializer[Any]):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)


def _output(agent: Agent, request: Request) -> dict[str, Any]:
    serializer = AgentStaffOutput if sees_agent_config(request.user) else AgentOutput
    return serializer(agent).data


def _validated(
    serializer_class: type[serializers.BaseSerializer[Any]], request: Request, **kwargs: Any
) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- views -----------------------------------------------------------------------------------

_NOT_FOUND = OpenApiResponse(description="No agent with that slug.")
_SLUG = OpenApiParameter(
    "slug",
    str,
    OpenApiParameter.PATH,
    required=True,
    pattern=r"^[-a-zA-Z0-9_]+$",
    description="The agent's slug.",
)


class AgentListCreateApi(generics.ListAPIView[Agent]):
    permission_classes = [IsAuthenticated, AgentPermissions]
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Agent]:
        return _agents()

    def get_serializer_class(self) -> type[AgentOutput]:
        return AgentStaffOutput if sees_agent_config(self.request.user) else AgentOutput

    @extend_schema(
        tags=[TAG],
        operation_id="agents_list",
        summary="List agents",
        responses=AgentStaffOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="agents_create",
        summary="Create an agent with its first prompt version (staff)",
        request=AgentCreateInput,
        responses={201: AgentStaffOutput},
    )
    def post(self, request: Request) -> Response:
        data = _validated(AgentCreateInput, request)
        try:
            agent = _agent_create(created_by=_acting_user(request), data=data)
        except DjangoValidationError as exc:
            raise django_validation_error(exc) from exc
        return Response(_output(_agent_or_404(agent.slug), request), status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    permission_classes = [IsAuthenticated, AgentPermissions]
    parser_classes = [JSONParser]

    @extend_schema(
        tags=[TAG],
        operation_id="agents_retrieve",
        parameters=[_SLUG],
        summary="Read an agent",
        responses={200: AgentStaffOutput, 404: _NOT_FOUND},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(_output(_agent_or_404(slug), request))

    @extend_schema(
        tags=[TAG],
        operation_id="agents_partial_update",
        parameters=[_SLUG],
        summary='Change an agent\'s settings; {"is_active": false} deactivates it (staff)',
        request=AgentUpdateInput,
        responses={200: AgentStaffOutput, 404: _NOT_FOUND},
    )
    def patch(self, request: Request, slug: str) -> Response:
        agent = _agent_or_404(slug)
        data = _validated(AgentUpdateInput, request, instance=agent, partial=True)
        try:
            agent_update(agent=agent, data=data)
        except DjangoValidationError as exc:
            raise django_validation_error(exc) from exc
        return Response(_output(_agent_or_404(slug), request))


class AgentMakeDefaultApi(APIView):
    permission_classes = [IsAuthenticated, AgentChangePermissions]
    parser_classes = [JSONParser]

    @extend_schema(
        tags=[TAG],
        operation_id="agents_make_default",
        parameters=[_SLUG],
        summary="Make this agent the default (and active) one (staff)",
        request=None,
        responses={200: AgentStaffOutput, 404: _NOT_FOUND},
    )
    def post(self, request: Request, slug: str) -> Response:
        agent_make_default(agent=_agent_or_404(slug))
        return Response(_output(_agent_or_404(slug), request))


class SignedLinkOutput(serializers.Serializer[Any]):
    sig = serializers.CharField(help_text="The signed-link token (`?sig=`).")
    expires_in = serializers.IntegerField(help_text="Seconds the token stays valid.")
    page = serializers.CharField(help_text="The agent's page, with the token.")
    voice_socket = serializers.CharField(help_text="The Echo audio socket's path, with it.")
    chat_socket = serializers.CharField(help_text="The text chat socket's path, with it.")


class AgentLinkApi(APIView):
    """A signed link for a program that cannot send this user's credentials itself: a page
    served from another origin (browsers set no headers on a WebSocket) hands ``sig`` to
    the sockets of this agent, which then admit it until it expires."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        tags=[TAG],
        operation_id="agents_link",
        parameters=[_SLUG],
        summary="Mint a signed link to talk to this agent (any signed-in user)",
        request=None,
        responses={200: SignedLinkOutput, 404: _NOT_FOUND},
    )
    def post(self, request: Request, slug: str) -> Response:
        try:
            agent = agent_get_active(slug=slug)
        except AgentNotFound as exc:
            raise NotFound(str(exc)) from exc
        sig = signed_link_token(agent.slug)
        query = f"?sig={quote(sig)}"
        return Response(
            {
                "sig": sig,
                "expires_in": settings.VOICE_LINK_MAX_AGE_SECONDS,
                "page": f"/agents/{agent.slug}/{query}",
                "voice_socket": f"/agents/{agent.slug}/conversation{query}",
                "chat_socket": f"/agents/{agent.slug}/chat{query}",
            }
        )


class PromptVersionListCreateApi(generics.ListAPIView[PromptVersion]):
    permission_classes = [IsAuthenticated, AgentChangePermissions]
    parser_classes = [JSONParser]
    serializer_class = PromptVersionOutput

    def get_queryset(self) -> QuerySet[PromptVersion]:
        agent = _agent_or_404(self.kwargs["slug"])
        return agent.prompt_versions.select_related("created_by").order_by("-number")

    @extend_schema(
        tags=[TAG],
        operation_id="agents_prompt_versions_list",
        parameters=[_SLUG],
        summary="List an agent's prompt versions, newest first",
        responses={200: PromptVersionOutput(many=True), 404: _NOT_FOUND},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="agents_prompt_versions_create",
        parameters=[_SLUG],
        summary="Store a new active prompt version (staff)",
        description="Sending the text that is already active creates nothing: the answer is "
        "200 with the active version instead of 201.",
        request=PromptVersionInput,
        responses={201: PromptVersionOutput, 200: PromptVersionOutput, 404: _NOT_FOUND},
    )
    def post(self, request: Request, slug: str) -> Response:
        agent = _agent_or_404(slug)
        text = _validated(PromptVersionInput, request)["text"]
        before = _active_prompt(agent)
        version = prompt_version_create(agent=agent, text=text, created_by=_acting_user(request))
        created = before is None or version.pk != before.pk
        return Response(
            PromptVersionOutput(version).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PromptVersionDetailApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="agents_prompt_versions_retrieve",
        parameters=[_SLUG],
        summary="Read one prompt version",
        responses={
            200: PromptVersionOutput,
            404: OpenApiResponse(description="No such agent or version."),
        },
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        agent = _agent_or_404(slug)
        version = (
            PromptVersion.objects.select_related("created_by")
            .filter(agent=agent, number=number)
            .first()
        )
        if version is None:
            raise NotFound(f"Agent {slug!r} has no prompt version {number}.")
        return Response(PromptVersionOutput(version).data)
