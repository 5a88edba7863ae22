"""Conversation review for staff and the Operators group.

The conversation page is a read-only record drawn as a transcript (what was generated and
what was heard, emotions, knowledge used, the audio, each reply's latency waterfall) with
a label form per turn. The extra views (audio, labelling, the per-agent dashboard) live
under the conversation admin's URLs, so the admin's login and permissions guard them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from agents.models import Agent
from conversations.exports import CSV_HEADER, conversation_as_dict, csv_rows, csv_text
from conversations.models import Channel, Conversation, Turn, TurnLabel
from conversations.review import (
    LABEL_CHOICES,
    RangeNotSatisfiable,
    TurnLabelForm,
    byte_range,
    dashboard_charts,
    transcript,
)
from conversations.selectors import agent_review_dashboard, turn_list_for_review
from conversations.services import turn_label

LABEL_PERMISSION = "conversations.label_turn"
LISTEN_PERMISSION = "conversations.view_turn"


class InterruptedFilter(admin.SimpleListFilter):
    title = "interrupted"
    parameter_name = "interrupted"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("yes", "With an interrupted turn"), ("no", "Without interruptions")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        interrupted = Exists(Turn.objects.filter(conversation=OuterRef("pk"), interrupted=True))
        if self.value() == "yes":
            return queryset.filter(interrupted)
        if self.value() == "no":
            return queryset.exclude(interrupted)
        return queryset


class LabelFilter(admin.SimpleListFilter):
    """Conversations with at least one turn labelled so (or with any label, or none)."""

    title = "turn label"
    parameter_name = "label"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [
            *((value, str(name)) for value, name in TurnLabel.choices),
            ("any", "Any label"),
            ("none", "No label yet"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        value = self.value()
        labelled = Turn.objects.filter(conversation=OuterRef("pk")).exclude(label="")
        if value in TurnLabel.values:
            return queryset.filter(Exists(labelled.filter(label=value)))
        if value == "any":
            return queryset.filter(Exists(labelled))
        if value == "none":
            return queryset.exclude(Exists(labelled))
        return queryset


# --- exports -------------------------------------------------------------------------------


def _download(content: str, content_type: str, extension: str, what: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{what}-{stamp}.{extension}"'
    return response


def _json_text(documents: list[dict[str, Any]]) -> str:
    return json.dumps({"conversations": documents}, ensure_ascii=False, indent=2)


def _for_export(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    # The list's order, newest first; the pk settles conversations started together.
    return conversations.select_related("agent", "prompt_version").order_by("-started_at", "pk")


def _selected_turns(turns: QuerySet[Turn]) -> tuple[QuerySet[Conversation], set[tuple[str, int]]]:
    keys = {(str(c), i) for c, i in turns.values_list("conversation_id", "index")}
    conversations = Conversation.objects.filter(pk__in=turns.values("conversation_id"))
    return _for_export(conversations), keys


def _turn_csv_text(conversations: Iterable[Conversation], keys: set[tuple[str, int]]) -> str:
    """``exports.csv_rows`` restricted to the selected turns: the same columns and cells."""
    conversation_col, index_col = CSV_HEADER.index("conversation"), CSV_HEADER.index("index")
    rows = csv_rows(conversations)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(next(rows))
    writer.writerows(row for row in rows if (row[conversation_col], int(row[index_col])) in keys)
    return buffer.getvalue()


# --- conversations -------------------------------------------------------------------------


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = (
        "started_at",
        "agent",
        "channel",
        "status",
        "duration",
        "end_reason",
        "external_id",
        "user",
    )
    list_filter = (
        "agent",
        "channel",
        "status",
        "end_reason",
        ("started_at", admin.DateFieldListFilter),
        InterruptedFilter,
        LabelFilter,
    )
    search_fields = ("turns__text", "turns__heard_text", "external_id", "id")
    search_help_text = (
        "Words said or heard in a turn, an external session id, or a conversation id."
    )
    date_hierarchy = "started_at"
    list_select_related = ("agent", "user")
    actions = ("export_csv", "export_json")
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
        "end_reason",
        "duration",
        "provider_conversation_id",
        "reset_requested",
        "engine_state",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("agent", "prompt_version"),
                    ("channel", "status"),
                    ("started_at", "ended_at"),
                    ("duration", "end_reason"),
                    ("user", "external_id"),
                    "id",
                )
            },
        ),
        (
            "Provider and engine state",
            {
                "classes": ("collapse",),
                "fields": (
                    "agent_snapshot",
                    "provider_conversation_id",
                    "reset_requested",
                    "engine_state",
                ),
            },
        ),
    )

    class Media:
        css = {"all": ("css/review.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Conversations are a record of what happened: they are created by talking.
        return False

    # The admin links a read-only relation to its change page whoever looks; operators
    # may not open agents, prompt versions or users, so they get the name as text.
    _RELATED = {
        "agent": "agents.view_agent",
        "prompt_version": "agents.view_promptversion",
        "user": "auth.view_user",
    }

    def _as_text(self, request: HttpRequest, name: str) -> str:
        permission = self._RELATED.get(name)
        if permission is None or request.user.has_perm(permission):
            return name
        return f"{name}_text"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [self._as_text(request, name) for name in super().get_readonly_fields(request, obj)]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        def swap(fields: Any) -> Any:
            if isinstance(fields, str):
                return self._as_text(request, fields)
            return tuple(swap(field) for field in fields)

        return [
            (title, {**options, "fields": swap(options["fields"])})
            for title, options in super().get_fieldsets(request, obj)
        ]

    @admin.display(description="duration")
    def duration(self, obj: Conversation) -> str:
        """How long it lasted, start to end (while active: so far is not shown)."""
        if obj.ended_at is None:
            return "-"
        seconds = max(0, round((obj.ended_at - obj.started_at).total_seconds()))
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

    @admin.display(description="agent")
    def agent_text(self, obj: Conversation) -> str:
        return str(obj.agent)

    @admin.display(description="prompt version")
    def prompt_version_text(self, obj: Conversation) -> str:
        return str(obj.prompt_version)

    @admin.display(description="user")
    def user_text(self, obj: Conversation) -> str:
        return str(obj.user) if obj.user is not None else "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # The page's title and the prompt version's name both show the agent's slug.
        return (
            super().get_queryset(request).select_related("agent", "prompt_version__agent", "user")
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        results, _ = super().get_search_results(request, queryset, search_term)
        # Searching across turns joins many rows per conversation: collapse them.
        return results.distinct(), False

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversation | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(
                turns=transcript(
                    list(turn_list_for_review(conversation=obj)),
                    end_of_turn_ms=_end_of_turn_ms(obj),
                ),
                can_label=request.user.has_perm(LABEL_PERMISSION),
                can_listen=request.user.has_perm(LISTEN_PERMISSION),
                label_choices=LABEL_CHOICES,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions ---------------------------------------------------------------------------

    @admin.action(description="Export as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        return _download(csv_text(_for_export(queryset)), "text/csv", "csv", "conversations")

    @admin.action(description="Export as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        documents = [conversation_as_dict(c) for c in _for_export(queryset)]
        return _download(_json_text(documents), "application/json", "json", "conversations")

    # --- views of their own ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path(
                "dashboard/",
                wrap(require_safe(self.dashboard_view)),
                name="conversations_conversation_dashboard",
            ),
            path(
                "turns/<int:turn_id>/audio/",
                wrap(require_safe(self.turn_audio_view)),
                name="conversations_turn_audio",
            ),
            path(
                "turns/<int:turn_id>/label/",
                wrap(require_POST(self.turn_label_view)),
                name="conversations_turn_label",
            ),
        ]
        # Before the defaults: "<path:object_id>/" would take "dashboard/" as an id.
        return own + super().get_urls()

    def turn_audio_view(self, request: HttpRequest, turn_id: int) -> HttpResponse:
        """A turn's recording, to operators only (never a public media URL), in byte
        ranges as media elements ask for them."""
        if not request.user.has_perm(LISTEN_PERMISSION):
            raise PermissionDenied
        turn = get_object_or_404(Turn.objects.only("pk", "index", "audio"), pk=turn_id)
        if not turn.audio:
            raise Http404("This turn has no recording.")
        try:
            size = turn.audio.size
            wanted = byte_range(request.headers.get("Range", ""), size)
        except FileNotFoundError as exc:
            raise Http404("The recording is missing from storage.") from exc
        except RangeNotSatisfiable:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end = wanted if wanted is not None else (0, size - 1)
        # Turn recordings are seconds long (a few MB at most): read the range whole
        # rather than stream it, which ASGI would do with a sync iterator.
        with turn.audio.open("rb") as audio:
            audio.seek(start)
            data = audio.read(end - start + 1) if size else b""
        response = HttpResponse(
            data, content_type="audio/wav", status=200 if wanted is None else 206
        )
        response["Accept-Ranges"] = "bytes"
        response["Content-Disposition"] = f'inline; filename="turn-{turn.index}.wav"'
        if wanted is not None:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response

    def turn_label_view(self, request: HttpRequest, turn_id: int) -> HttpResponse:
        """An operator's label and note for a turn, posted from the conversation page."""
        if not request.user.has_perm(LABEL_PERMISSION):
            raise PermissionDenied
        turn = get_object_or_404(Turn.objects.select_related("conversation"), pk=turn_id)
        back = reverse("admin:conversations_conversation_change", args=[turn.conversation_id])
        back = f"{back}#turn-{turn.index}"
        form = TurnLabelForm(request.POST)
        if not form.is_valid():
            problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
            messages.error(request, f"Turn #{turn.index} was not labelled: {problems}")
            return HttpResponseRedirect(back)
        user = request.user if isinstance(request.user, User) else None
        turn_label(
            turn=turn, label=form.cleaned_data["label"], note=form.cleaned_data["note"], user=user
        )
        shown = turn.get_label_display() if turn.label else "no label"
        messages.success(request, f"Turn #{turn.index} labelled: {shown}.")
        return HttpResponseRedirect(back)

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """One agent's last 30 days: conversations, latency per day, interruptions, labels."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        agents = list(Agent.objects.order_by("name").only("pk", "slug", "name", "is_default"))
        slug = request.GET.get("agent", "")
        if slug:
            agent = next((a for a in agents if a.slug == slug), None)
            if agent is None:
                raise Http404(f"No agent {slug!r}.")
        else:
            agent = next((a for a in agents if a.is_default), agents[0] if agents else None)
        dashboard = agent_review_dashboard(agent=agent) if agent is not None else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Dashboard: {agent.name}" if agent is not None else "Dashboard",
            "agents": agents,
            "agent": agent,
            "dashboard": dashboard,
            "charts": dashboard_charts(dashboard) if dashboard is not None else None,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/conversations/conversation/dashboard.html", context)


# --- turns ---------------------------------------------------------------------------------

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
    "label",
    "review_note",
    "reviewed_by",
    "reviewed_at",
)


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin[Turn]):
    list_display = (
        "conversation",
        "index",
        "role",
        "text",
        "interrupted",
        "voice_to_voice_ms",
        "label",
    )
    list_filter = ("label", "role", "interrupted", "status", "conversation__agent")
    search_fields = ("text", "heard_text")
    list_select_related = ("conversation__agent",)
    readonly_fields = (*TURN_FIELDS, "conversation")
    fields = ("conversation", *TURN_FIELDS)
    actions = ("export_csv", "export_json")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Export as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Turn]) -> HttpResponse:
        conversations, keys = _selected_turns(queryset)
        return _download(_turn_csv_text(conversations, keys), "text/csv", "csv", "turns")

    @admin.action(description="Export as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Turn]) -> HttpResponse:
        """The conversations of the selected turns, in the export's shape, with only the
        selected turns in each."""
        conversations, keys = _selected_turns(queryset)
        documents = []
        for conversation in conversations:
            document = conversation_as_dict(conversation)
            document["turns"] = [
                t for t in document["turns"] if (document["conversation"], t["index"]) in keys
            ]
            documents.append(document)
        return _download(_json_text(documents), "application/json", "json", "turns")


def _end_of_turn_ms(conversation: Conversation) -> int | None:
    """The end-of-turn silence a voice conversation ran with (from its agent snapshot)."""
    if conversation.channel != Channel.WEB_VOICE:
        return None
    value = (conversation.agent_snapshot or {}).get("end_of_turn_silence_ms")
    return value if isinstance(value, int) else None
