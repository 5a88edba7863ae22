"""Conversation review for staff and the Operators group."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from conversations.models import Conversation, Turn


class InterruptedFilter(admin.SimpleListFilter):
    title = "interrupted"
    parameter_name = "interrupted"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("yes", "With an interrupted turn"), ("no", "Without interruptions")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        if self.value() == "yes":
            return queryset.filter(turns__interrupted=True).distinct()
        if self.value() == "no":
            return queryset.exclude(turns__interrupted=True)
        return queryset


TURN_FIELDS = (
    "index",
    "role",
    "text",
    "heard_text",
    "interrupted",
    "status",
    "error",
    "prosody",
    "stt_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "voice_to_voice_ms",
    "knowledge_refs",
    "created_at",
)


class TurnInline(admin.StackedInline[Turn, Conversation]):
    model = Turn
    extra = 0
    can_delete = False
    ordering = ("index",)
    fields = TURN_FIELDS
    readonly_fields = TURN_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    # Django passes the parent conversation here; the stubs type it as the inline's model.
    def has_change_permission(  # type: ignore[override]
        self, request: HttpRequest, obj: Conversation | None = None
    ) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("started_at", "agent", "channel", "status", "external_id", "user")
    list_filter = (
        "agent",
        "channel",
        "status",
        ("started_at", admin.DateFieldListFilter),
        InterruptedFilter,
    )
    search_fields = ("turns__text", "turns__heard_text", "external_id")
    date_hierarchy = "started_at"
    list_select_related = ("agent", "user")
    inlines = [TurnInline]
    readonly_fields = (
        "id",
        "agent",
        "prompt_version",
        "agent_snapshot",
        "channel",
        "external_id",
        "user",
        "status",
        "started_at",
        "ended_at",
        "provider_conversation_id",
        "reset_requested",
        "engine_state",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Conversations are a record of what happened: they are created by talking.
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        results, _ = super().get_search_results(request, queryset, search_term)
        # Searching across turns joins many rows per conversation: collapse them.
        return results.distinct(), False


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin[Turn]):
    list_display = ("conversation", "index", "role", "text", "interrupted", "voice_to_voice_ms")
    list_filter = ("role", "interrupted", "status", "conversation__agent")
    search_fields = ("text", "heard_text")
    list_select_related = ("conversation__agent",)
    readonly_fields = (*TURN_FIELDS, "conversation")
    fields = ("conversation", *TURN_FIELDS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
