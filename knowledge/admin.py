"""Staff manage knowledge documents here."""

from __future__ import annotations

from django.contrib import admin

from knowledge.models import Chunk, Document


class ChunkInline(admin.TabularInline[Chunk, Document]):
    model = Chunk
    extra = 0
    can_delete = False
    fields = ("index", "page", "section", "text")
    readonly_fields = fields


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin[Document]):
    list_display = ("title", "status", "size", "updated_at")
    list_filter = ("status", "agents")
    search_fields = ("title", "original_name", "sha256")
    filter_horizontal = ("agents",)
    readonly_fields = (
        "sha256",
        "size",
        "content_type",
        "status",
        "status_message",
        "created_at",
        "updated_at",
    )
    inlines = [ChunkInline]
