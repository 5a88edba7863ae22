"""The documents HTTP API: staff upload, list, read and delete knowledge documents.

``POST /api/documents/`` takes multipart form data: ``file``, optional ``title`` and
``agents`` (agent slugs, the field repeated). Each method needs staff with the matching
``knowledge`` model permission (view, add, delete), or a superuser.

The service's refusals keep their codes: ``duplicate`` (409, naming the original in
``error.document``), ``too_large`` (413), ``unsupported`` (400); an unknown agent slug is
``unknown_agent`` (400).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from knowledge.models import Document, Status, VectorStoreFile
from knowledge.services import DuplicateDocument, document_create, document_delete
from voiceapp.api import error_body
from voiceapp.api_permissions import READ_METHODS, MethodPermissions, for_methods

TAG = "documents"


class DocumentPermissions(MethodPermissions):
    staff = True
    perms = {
        **for_methods(READ_METHODS, "knowledge.view_document"),
        "POST": ("knowledge.add_document",),
        "DELETE": ("knowledge.delete_document",),
    }


class OpenAICopyOutput(serializers.Serializer[Any]):
    agent = serializers.SlugField(
        allow_null=True, help_text="The agent whose vector store holds it (null: detached)."
    )
    status = serializers.ChoiceField(choices=Status.choices)
    message = serializers.CharField(allow_blank=True)


class DocumentOutput(serializers.ModelSerializer[Document]):
    agents = serializers.SerializerMethodField(help_text="Slugs of the agents that use it.")
    openai = serializers.SerializerMethodField(
        help_text="Its copies in the OpenAI vector stores of OpenAI agents."
    )

    class Meta:
        model = Document
        fields = (
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
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.SlugField()))
    def get_agents(self, document: Document) -> list[str]:
        return sorted(agent.slug for agent in document.agents.all())

    @extend_schema_field(OpenAICopyOutput(many=True))
    def get_openai(self, document: Document) -> list[dict[str, Any]]:
        copies = [
            {
                "agent": copy.store.agent.slug if copy.store.agent else None,
                "status": copy.status,
                "message": copy.status_message,
            }
            for copy in document.openai_files.all()
        ]
        return sorted(copies, key=lambda copy: copy["agent"] or "")


class DocumentUploadInput(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="PDF, DOCX, text, Markdown or HTML (by content).")
    title = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        default="",
        help_text="Empty: made from the file name.",
    )
    agents = serializers.ListField(
        child=serializers.SlugField(max_length=60),
        required=False,
        default=list,
        help_text="Slugs of the agents that answer from it (repeat the field).",
    )


def _documents() -> QuerySet[Document]:
    copies = VectorStoreFile.objects.select_related("store__agent")
    return Document.objects.prefetch_related(
        "agents", Prefetch("openai_files", queryset=copies)
    ).order_by("title", "pk")


def _document_or_404(pk: int) -> Document:
    document = _documents().filter(pk=pk).first()
    if document is None:
        raise NotFound(f"There is no document {pk}.")
    return document


def _refusal(exc: DjangoValidationError) -> Response:
    """The service's refusal as an error body that keeps its code."""
    if isinstance(exc, DuplicateDocument):
        return Response(
            error_body("duplicate", exc.messages[0], document=exc.existing.pk),
            status=status.HTTP_409_CONFLICT,
        )
    if hasattr(exc, "error_dict"):  # a field of the row was invalid: name it
        raise ValidationError(serializers.as_serializer_error(exc)) from exc
    code = exc.code or "invalid"
    refused = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if code == "too_large" else 400
    return Response(error_body(code, exc.messages[0]), status=refused)


_NOT_FOUND = OpenApiResponse(description="No document with that id.")


class DocumentListCreateApi(generics.ListAPIView[Document]):
    permission_classes = [IsAuthenticated, DocumentPermissions]
    parser_classes = [MultiPartParser]
    serializer_class = DocumentOutput

    def get_queryset(self) -> QuerySet[Document]:
        return _documents()

    @extend_schema(
        tags=[TAG],
        operation_id="documents_list",
        summary="List documents by title",
        responses=DocumentOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="documents_create",
        summary="Upload a document; it is indexed in the background",
        request=DocumentUploadInput,
        responses={
            201: DocumentOutput,
            400: OpenApiResponse(description="Invalid, unsupported, or an unknown agent."),
            409: OpenApiResponse(description="The same content is already uploaded."),
            413: OpenApiResponse(description="Larger than KNOWLEDGE_MAX_DOCUMENT_MB."),
        },
    )
    def post(self, request: Request) -> Response:
        upload = DocumentUploadInput(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        slugs: list[str] = data["agents"]
        agents = list(Agent.objects.filter(slug__in=slugs))
        unknown = sorted(set(slugs) - {agent.slug for agent in agents})
        if unknown:
            return Response(
                error_body("unknown_agent", f"no agent {', '.join(unknown)}"),
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            document = document_create(file=data["file"], title=data["title"], agents=agents)
        except DjangoValidationError as exc:
            return _refusal(exc)
        return Response(
            DocumentOutput(_document_or_404(document.pk)).data, status=status.HTTP_201_CREATED
        )


class DocumentDetailApi(APIView):
    permission_classes = [IsAuthenticated, DocumentPermissions]

    @extend_schema(
        tags=[TAG],
        operation_id="documents_retrieve",
        summary="Read a document and its indexing and sync status",
        responses={200: DocumentOutput, 404: _NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(DocumentOutput(_document_or_404(pk)).data)

    @extend_schema(
        tags=[TAG],
        operation_id="documents_destroy",
        summary="Delete a document, its chunks and its file; its agents resync",
        responses={204: None, 404: _NOT_FOUND},
    )
    def delete(self, request: Request, pk: int) -> Response:
        document_delete(document=_document_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
