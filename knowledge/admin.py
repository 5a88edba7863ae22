"""Staff upload documents here and follow their indexing and OpenAI sync."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_safe

from agents.models import Agent
from knowledge.models import Chunk, Document, Status, VectorStore, VectorStoreFile
from knowledge.services import (
    DuplicateDocument,
    Upload,
    document_delete,
    document_inspect_upload,
    document_request_index,
    document_save,
    vector_store_request_sync,
)


class ChunkInline(admin.TabularInline[Chunk, Document]):
    model = Chunk
    extra = 0
    can_delete = False
    fields = ("index", "page", "section", "word_count", "text")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False


class DocumentForm(forms.ModelForm[Document]):
    """The upload is a separate field, checked by content before anything is stored."""

    upload = forms.FileField(
        label="File",
        required=False,
        help_text="PDF, DOCX, TXT, Markdown or HTML. Leave empty to keep the current file.",
    )

    class Meta:
        model = Document
        fields = ("title", "agents")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False
        self.fields["title"].help_text = "Empty: taken from the file name."
        if self.instance.pk is None:
            self.fields["upload"].required = True
            self.fields["upload"].help_text = "PDF, DOCX, TXT, Markdown or HTML."
        self.checked_upload: Upload | None = None

    def clean_upload(self) -> Any:
        file = self.cleaned_data.get("upload")
        if file:
            upload = document_inspect_upload(file=file)
            duplicate = (
                Document.objects.filter(sha256=upload.sha256).exclude(pk=self.instance.pk).first()
            )
            if duplicate is not None:
                raise DuplicateDocument(duplicate)
            self.checked_upload = upload
        return file


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin[Document]):
    form = DocumentForm
    list_display = (
        "title",
        "kind",
        "status",
        "status_message",
        "chunk_count",
        "openai_sync",
        "size",
        "updated_at",
    )
    list_filter = ("status", "kind", "agents")
    search_fields = ("title", "original_name", "sha256")
    filter_horizontal = ("agents",)
    readonly_fields = (
        "stored_file",
        "original_name",
        "kind",
        "content_type",
        "size",
        "sha256",
        "status",
        "status_message",
        "indexed_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("title", "upload", "agents")}),
        ("Indexing", {"fields": ("status", "status_message", "indexed_at")}),
        (
            "File",
            {"fields": ("stored_file", "original_name", "kind", "content_type", "size", "sha256")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    inlines = [ChunkInline]
    actions = ["index_again", "sync_to_openai"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        synced = {
            f"synced_{status.value}": Count(
                "openai_files", filter=Q(openai_files__status=status), distinct=True
            )
            for status in Status
        }
        return (
            super()
            .get_queryset(request)
            .annotate(chunk_total=Count("chunks", distinct=True), **synced)
        )

    @admin.display(description="chunks", ordering="chunk_total")
    def chunk_count(self, obj: Document) -> int:
        return int(getattr(obj, "chunk_total", 0))

    @admin.display(description="OpenAI sync")
    def openai_sync(self, obj: Document) -> str:
        """Per vector store holding it: how many are done, pending, running, failed."""
        counts = [(status, int(getattr(obj, f"synced_{status.value}", 0))) for status in Status]
        parts = [f"{n} {status.label.lower()}" for status, n in counts if n]
        return ", ".join(parts) or "—"

    @admin.display(description="stored file")
    def stored_file(self, obj: Document) -> str:
        if not obj.file:
            return "—"
        url = reverse("admin:knowledge_document_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.original_name or obj.file.name)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:document_id>/file/",
                self.admin_site.admin_view(require_safe(self.file_view)),
                name="knowledge_document_file",
            )
        ]
        # Before the defaults: "<path:object_id>/" would take the file's path.
        return own + super().get_urls()

    def file_view(self, request: HttpRequest, document_id: int) -> FileResponse:
        """The uploaded file, to those who may view documents (media is never served as
        files). Always a download: an HTML document must not run as a page of this site."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        document = get_object_or_404(Document, pk=document_id)
        if not document.file:
            raise Http404("This document has no stored file.")
        try:
            handle = document.file.open("rb")
        except FileNotFoundError as exc:
            raise Http404("The file is missing from storage.") from exc
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=document.original_name or document.file.name.rsplit("/", 1)[-1],
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        document_save(
            document=obj, upload=form.checked_upload, agents=list(form.cleaned_data["agents"])
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The agents were set by document_save (which also queues the syncs they need);
        # only the inlines are left, and the chunks inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_delete(document=document)

    @admin.action(description="Index the selected documents again", permissions=["change"])
    def index_again(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = document_request_index(document_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} documents queued for indexing.", messages.SUCCESS)

    @admin.action(description="Sync their agents to OpenAI now", permissions=["change"])
    def sync_to_openai(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        agent_ids = Agent.objects.filter(documents__in=queryset).values_list("pk", flat=True)
        queued = vector_store_request_sync(agent_ids=agent_ids)
        self.message_user(
            request, f"{len(queued)} OpenAI vector stores queued for sync.", messages.SUCCESS
        )


class VectorStoreFileInline(admin.TabularInline[VectorStoreFile, VectorStore]):
    model = VectorStoreFile
    extra = 0
    can_delete = False
    fields = ("document", "openai_file_id", "status", "status_message", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: VectorStore | None = None) -> bool:
        return False


@admin.register(VectorStore)
class VectorStoreAdmin(admin.ModelAdmin[VectorStore]):
    list_display = ("__str__", "openai_id", "status", "status_message", "synced_at")
    list_filter = ("status",)
    list_select_related = ("agent",)
    readonly_fields = (
        "agent",
        "openai_id",
        "key",
        "base_url",
        "api_key_env",
        "status",
        "status_message",
        "requested_at",
        "synced_at",
        "lease_until",
    )
    fields = readonly_fields
    inlines = [VectorStoreFileInline]
    actions = ["sync_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the sync when an agent on OpenAI has documents

    def has_delete_permission(self, request: HttpRequest, obj: VectorStore | None = None) -> bool:
        return False  # removed by the sync, at OpenAI first, when no agent needs it

    @admin.action(description="Sync with OpenAI now", permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[VectorStore]) -> None:
        agent_ids = [pk for pk in queryset.values_list("agent_id", flat=True) if pk is not None]
        queued = vector_store_request_sync(agent_ids=agent_ids)
        self.message_user(request, f"{len(queued)} vector stores queued for sync.")
