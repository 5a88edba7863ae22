"""The conversations HTTP API: operators list, read, export and label conversations.

Reading needs ``conversations.view_conversation`` (the Operators group has it; so does every
superuser); labelling a turn also needs ``conversations.label_turn``. A conversation reads
exactly as it exports (``conversations.exports``), so a program and the review page see
the same document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.exports import conversation_as_dict, csv_text, turn_as_dict
from conversations.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Role,
    Turn,
    TurnLabel,
    TurnStatus,
)
from conversations.selectors import (
    ConversationFilters,
    conversation_get,
    conversation_list,
    turn_get,
)
from conversations.services import turn_label
from voiceapp.api_permissions import READ_METHODS, MethodPermissions, for_methods

TAG = "conversations"
VIEW = "conversations.view_conversation"
LABEL = "conversations.label_turn"


class ConversationPermissions(MethodPermissions):
    perms = for_methods(READ_METHODS, VIEW)


class TurnPermissions(MethodPermissions):
    perms = {**for_methods(READ_METHODS, VIEW), "PATCH": (VIEW, LABEL)}


# --- serializers: the query, the review, and (for the schema) the export's shape -------------


class ConversationFilterInput(serializers.Serializer[Any]):
    agent = serializers.SlugField(required=False, help_text="Only this agent's (its slug).")
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    started_after = serializers.DateTimeField(
        required=False, help_text="Started at or after this moment (ISO 8601)."
    )
    started_before = serializers.DateTimeField(
        required=False, help_text="Started before this moment (ISO 8601)."
    )
    interrupted = serializers.BooleanField(
        required=False, help_text="true: with an interrupted turn; false: without one."
    )
    # A field named like Field.label: REST framework's metaclass moves declared fields off
    # the class, so it never replaces the attribute; mypy cannot know that.
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=TurnLabel.choices, required=False, help_text="With a turn labelled so."
    )
    search = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Text in what was said or heard, or in the external session id.",
    )

    def filters(self) -> ConversationFilters:
        data = self.validated_data
        return ConversationFilters(
            agent_slug=data.get("agent"),
            channel=data.get("channel"),
            status=data.get("status"),
            started_after=data.get("started_after"),
            started_before=data.get("started_before"),
            interrupted=data.get("interrupted"),
            label=data.get("label"),
            search=data.get("search", ""),
        )


class TurnReviewInput(serializers.Serializer[Any]):
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=TurnLabel.choices,
        allow_blank=True,
        required=False,
        help_text='The operator\'s conclusion; "" clears it. Unchanged when left out.',
    )
    review_note = serializers.CharField(
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        max_length=10_000,
        help_text="Unchanged when left out.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send a label, a review_note or both.")
        return attrs


class TurnOutput(serializers.Serializer[Any]):
    """One turn as ``conversations.exports.turn_as_dict`` writes it."""

    index = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Role.choices)
    text = serializers.CharField(
        allow_blank=True, help_text="What the agent generated (or the user said)."
    )
    heard_text = serializers.CharField(
        allow_blank=True, help_text="What the listener heard before a barge-in."
    )
    interrupted = serializers.BooleanField()
    status = serializers.ChoiceField(choices=TurnStatus.choices)
    error = serializers.CharField(allow_blank=True)
    prosody = serializers.DictField(
        child=serializers.FloatField(), help_text="Emotion name → score."
    )
    speech_time = serializers.DictField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="When it was spoken in the call: {begin, end} in ms.",
    )
    vad_end_at = serializers.DateTimeField(allow_null=True)
    stt_ms = serializers.IntegerField(allow_null=True)
    llm_first_token_ms = serializers.IntegerField(allow_null=True)
    tts_first_audio_ms = serializers.IntegerField(allow_null=True)
    voice_to_voice_ms = serializers.IntegerField(allow_null=True)
    knowledge_refs = serializers.ListField(
        child=serializers.DictField(), help_text="The knowledge chunks retrieved for it."
    )
    has_audio = serializers.BooleanField()
    label = serializers.ChoiceField(choices=TurnLabel.choices, allow_blank=True)  # type: ignore[assignment]
    review_note = serializers.CharField(allow_blank=True)
    reviewed_by = serializers.CharField(allow_null=True, help_text="Username.")
    reviewed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class ConversationSummaryOutput(serializers.Serializer[Any]):
    conversation = serializers.UUIDField(source="pk")
    agent = serializers.SlugField(source="agent.slug")
    channel = serializers.ChoiceField(choices=Channel.choices)
    external_id = serializers.CharField(
        allow_blank=True, help_text="Hume session id or chatbot client."
    )
    status = serializers.ChoiceField(choices=ConversationStatus.choices)
    prompt_version = serializers.IntegerField(source="prompt_version.number")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    turn_count = serializers.IntegerField()


class ConversationOutput(serializers.Serializer[Any]):
    """A conversation as ``conversations.exports.conversation_as_dict`` writes it."""

    conversation = serializers.UUIDField()
    agent = serializers.SlugField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    external_id = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ConversationStatus.choices)
    prompt_version = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    turns = TurnOutput(many=True)


def _conversation_or_404(conversation_id: UUID) -> Conversation:
    conversation = conversation_get(conversation_id=str(conversation_id))
    if conversation is None:
        raise NotFound(f"There is no conversation {conversation_id}.")
    return conversation


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


# --- views -----------------------------------------------------------------------------------

_NOT_FOUND = OpenApiResponse(description="No conversation with that id.")


class ConversationListApi(generics.ListAPIView[Conversation]):
    permission_classes = [IsAuthenticated, ConversationPermissions]
    serializer_class = ConversationSummaryOutput

    def get_queryset(self) -> QuerySet[Conversation]:
        query = ConversationFilterInput(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return conversation_list(filters=query.filters())

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_list",
        summary="List conversations, newest first",
        parameters=[ConversationFilterInput],
        responses=ConversationSummaryOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ConversationDetailApi(APIView):
    permission_classes = [IsAuthenticated, ConversationPermissions]

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_retrieve",
        summary="Read a conversation with all its turns",
        responses={200: ConversationOutput, 404: _NOT_FOUND},
    )
    def get(self, request: Request, conversation_id: UUID) -> Response:
        return Response(conversation_as_dict(_conversation_or_404(conversation_id)))


class ConversationExportJsonApi(APIView):
    permission_classes = [IsAuthenticated, ConversationPermissions]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_export_json",
        summary="Download a conversation as a JSON file",
        responses={200: ConversationOutput, 404: _NOT_FOUND},
    )
    def get(self, request: Request, conversation_id: UUID) -> Response:
        conversation = _conversation_or_404(conversation_id)
        return Response(
            conversation_as_dict(conversation),
            headers=_attachment(f"conversation-{conversation.pk}.json"),
        )


class _ErrorsAsJson(BaseContentNegotiation):
    """The CSV download answers CSV whatever the Accept header says; its errors are JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ConversationExportCsvApi(APIView):
    permission_classes = [IsAuthenticated, ConversationPermissions]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _ErrorsAsJson

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_export_csv",
        summary="Download a conversation as CSV: a header row, then one row per turn",
        responses={
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR),
            404: _NOT_FOUND,
        },
    )
    def get(self, request: Request, conversation_id: UUID) -> HttpResponse:
        conversation = _conversation_or_404(conversation_id)
        return HttpResponse(
            csv_text([conversation]),
            content_type="text/csv; charset=utf-8",
            headers=_attachment(f"conversation-{conversation.pk}.csv"),
        )


class TurnDetailApi(APIView):
    permission_classes = [IsAuthenticated, TurnPermissions]
    parser_classes = [JSONParser]

    def _turn(self, conversation_id: UUID, index: int) -> Turn:
        turn = turn_get(conversation_id=str(conversation_id), index=index)
        if turn is None:
            raise NotFound(f"Conversation {conversation_id} has no turn {index}.")
        return turn

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_turns_retrieve",
        summary="Read one turn",
        responses={200: TurnOutput, 404: OpenApiResponse(description="No such turn.")},
    )
    def get(self, request: Request, conversation_id: UUID, index: int) -> Response:
        return Response(turn_as_dict(self._turn(conversation_id, index)))

    @extend_schema(
        tags=[TAG],
        operation_id="conversations_turns_review",
        summary="Label a turn and write a review note (needs conversations.label_turn)",
        request=TurnReviewInput,
        responses={200: TurnOutput, 404: OpenApiResponse(description="No such turn.")},
    )
    def patch(self, request: Request, conversation_id: UUID, index: int) -> Response:
        turn = self._turn(conversation_id, index)
        review = TurnReviewInput(data=request.data)
        review.is_valid(raise_exception=True)
        turn = turn_label(
            turn=turn,
            label=review.validated_data.get("label", turn.label),
            note=review.validated_data.get("review_note", turn.review_note),
            user=request.user if isinstance(request.user, User) else None,
        )
        return Response(turn_as_dict(turn))
