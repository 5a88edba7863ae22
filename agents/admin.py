"""Staff manage agents here; prompts are edited as new immutable versions."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST, require_safe

from agents.forms import AgentForm, unused_settings
from agents.models import Agent, LLMProvider, PromptVersion
from agents.services import (
    STORE_FIELDS,
    agent_make_default,
    prompt_version_activate,
    prompt_version_create,
)
from agents.speech.base import SpeechError
from agents.speech.catalog import piper_voices
from agents.speech.piper import sample_wav
from knowledge.selectors import agents_with_knowledge_status, knowledge_summary, sync_summary
from knowledge.services import conversations_mark_for_reset, vector_store_request_sync

# Changing these moves an agent's OpenAI vector store (or removes it).


VOICE_SAMPLE_TEXT = "Hello! This is how I sound. How can I help you today?"

_WORDS = re.compile(r"\w+|[^\w\s]|\s+")


def word_diff(old: str, new: str) -> SafeString:
    """``new`` against ``old``, word by word: removed words in <del>, added in <ins>."""
    before, after = _WORDS.findall(old), _WORDS.findall(new)
    parts: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("{}", "".join(before[a1:a2])))
            continue
        if a2 > a1:
            parts.append(("<del>{}</del>", "".join(before[a1:a2])))
        if b2 > b1:
            parts.append(("<ins>{}</ins>", "".join(after[b1:b2])))
    return format_html_join("", "{}", ((format_html(f, t),) for f, t in parts))


class PromptVersionInline(admin.TabularInline[PromptVersion, Agent]):
    model = PromptVersion
    extra = 0
    can_delete = False
    fields = ("number", "is_active", "changes", "created_at", "created_by", "make_active")
    readonly_fields = fields
    ordering = ("-number",)
    verbose_name = "prompt version"
    verbose_name_plural = "Prompt versions (saving a changed prompt adds a version)"

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False

    @admin.display(description="text (changes from the version before)")
    def changes(self, version: PromptVersion) -> SafeString:
        earlier = (
            PromptVersion.objects.filter(agent_id=version.agent_id, number__lt=version.number)
            .order_by("-number")
            .values_list("text", flat=True)
            .first()
        )
        if earlier is None:
            return format_html('<div class="prompt-text">{}</div>', version.text or "(empty)")
        if earlier == version.text:
            return format_html('<div class="prompt-text">{}</div>', version.text or "(empty)")
        return format_html(
            '<div class="prompt-text prompt-diff">{}</div>', word_diff(earlier, version.text)
        )

    @admin.display(description="")
    def make_active(self, version: PromptVersion) -> SafeString | str:
        if version.is_active:
            return "in use"
        # A submit button of the agent's own form, sent to its own URL: no nested form.
        url = reverse("admin:agents_promptversion_activate", args=[version.agent_id, version.pk])
        return format_html(
            '<button type="submit" class="button" formaction="{}" formnovalidate>'
            "Make this version active again</button>",
            url,
        )


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    form = AgentForm

    class Media:
        css = {"all": ("css/agent-admin.css",)}
        js = ("js/agent-form.js",)

    # Few, short columns: the list fits a laptop screen beside the admin's sidebars.
    list_display = ("agent", "status", "language_model", "knowledge", "openai_sync")
    list_display_links = ("agent",)
    list_filter = ("is_active", "is_public", "llm_provider", "stt_provider", "tts_provider")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("links", "default_flag", "created_at", "updated_at")
    inlines = [PromptVersionInline]
    actions = ["make_default", "reset_conversations", "sync_knowledge"]
    fieldsets = (
        (None, {"fields": ("links",)}),
        (
            "Agent",
            {"fields": ("name", "slug", "is_active", "default_flag", "is_public", "greeting")},
        ),
        ("Prompt", {"fields": ("system_prompt",)}),
        (
            "Language model",
            {
                "fields": (
                    "llm_provider",
                    "llm_model",
                    "llm_temperature",
                    "llm_max_tokens",
                    "llm_base_url",
                    "llm_api_key_env",
                    "eliza_script",
                )
            },
        ),
        ("Speech", {"fields": ("stt_provider", "stt_model", "tts_provider", "tts_voice")}),
        (
            "Turn-taking",
            {"fields": ("vad_threshold", "end_of_turn_silence_ms", "min_speech_ms", "barge_in")},
        ),
        ("Access and knowledge", {"fields": ("clm_token", "reset_policy")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Agent | None = None,
    ) -> HttpResponse:
        if obj is not None and request.method == "GET" and (warning := unused_settings(obj)):
            self.message_user(request, warning, messages.WARNING)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_change(self, request: HttpRequest, obj: Agent) -> HttpResponse:
        if warning := unused_settings(obj):
            self.message_user(request, warning, messages.WARNING)
        return super().response_change(request, obj)

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        if not change and not Agent.objects.filter(is_default=True).exists():
            obj.is_default = True
        super().save_model(request, obj, form, change)
        user = request.user if request.user.is_authenticated else None
        prompt_version_create(
            agent=obj, text=form.cleaned_data.get("system_prompt", ""), created_by=user
        )
        uses_openai = obj.llm_provider == LLMProvider.OPENAI
        if (change and STORE_FIELDS & set(form.changed_data)) or (not change and uses_openai):
            vector_store_request_sync(agent_ids=[obj.pk])

    def get_fieldsets(self, request: HttpRequest, obj: Agent | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # A new agent has no page, conversations or default flag yet.
        return fieldsets[1:] if obj is None else fieldsets

    @admin.display(description="Open")
    def links(self, obj: Agent) -> SafeString:
        conversations = reverse("admin:conversations_conversation_changelist")
        dashboard = reverse("admin:conversations_conversation_dashboard")
        return format_html(
            '<a class="button" href="{}" target="_blank" rel="noopener">Talk to this agent ↗</a>'
            ' <a href="{}?agent__id__exact={}">Its conversations</a>'
            ' · <a href="{}?agent={}">Its dashboard</a>',
            reverse("agent-chat", args=[obj.slug]),
            conversations,
            obj.pk,
            dashboard,
            obj.slug,
        )

    @admin.display(description="default agent")
    def default_flag(self, obj: Agent) -> SafeString:
        if obj.is_default:
            return format_html(
                "<strong>{}</strong>: it answers /conversation, /chat, /llm and the chatbot-server"
                " endpoints. To change that, make another agent the default.",
                "Yes",
            )
        return format_html(
            "No. To make it the default, tick it in the <a href='{}'>agent list</a> and choose"
            " “Make the selected agent the default”.",
            reverse("admin:agents_agent_changelist"),
        )

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:agent_id>/prompt-versions/<int:version_id>/activate/",
                self.admin_site.admin_view(require_POST(self.activate_version_view)),
                name="agents_promptversion_activate",
            ),
            path(
                "voice-sample/",
                self.admin_site.admin_view(require_safe(self.voice_sample_view)),
                name="agents_agent_voice_sample",
            ),
        ]
        return own + super().get_urls()

    def voice_sample_view(self, request: HttpRequest) -> HttpResponse:
        """A Piper voice this machine has, saying a sentence (WAV): hear it before choosing."""
        if not (self.has_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        voice = request.GET.get("voice", "")
        # Only voices the editor offers: never a file named by the request.
        known = {c.value for c in piper_voices(settings.SPEECH_MODELS_DIR)}
        if voice not in known:
            return HttpResponseBadRequest(
                "Samples are made with the Piper voices on this machine only; this is not one.",
                content_type="text/plain; charset=utf-8",
            )
        try:
            audio = sample_wav(voice, VOICE_SAMPLE_TEXT)
        except SpeechError as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
        response = HttpResponse(audio, content_type="audio/wav")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def activate_version_view(
        self, request: HttpRequest, agent_id: int, version_id: int
    ) -> HttpResponse:
        agent = get_object_or_404(Agent, pk=agent_id)
        if not self.has_change_permission(request, agent):
            raise PermissionDenied
        version = get_object_or_404(PromptVersion, pk=version_id, agent=agent)
        prompt_version_activate(version=version)
        self.message_user(
            request,
            f"Prompt version {version.number} is active again; new conversations use it.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:agents_agent_change", args=[agent.pk]))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return agents_with_knowledge_status(super().get_queryset(request))

    @admin.display(description="agent", ordering="name")
    def agent(self, obj: Agent) -> SafeString:
        return format_html('{}<br><span class="agent-slug">/agents/{}/</span>', obj.name, obj.slug)

    @admin.display(description="status")
    def status(self, obj: Agent) -> str:
        words = ["default" if obj.is_default else "", "active" if obj.is_active else "inactive"]
        words.append("public" if obj.is_public else "sign-in")
        return " · ".join(w for w in words if w)

    @admin.display(description="language model", ordering="llm_provider")
    def language_model(self, obj: Agent) -> str:
        if obj.llm_provider == LLMProvider.ELIZA:
            return "ELIZA"
        return f"{obj.get_llm_provider_display()}: {obj.llm_model}"

    @admin.display(description="documents")
    def knowledge(self, obj: Agent) -> str:
        return knowledge_summary(obj)

    @admin.display(description="OpenAI sync")
    def openai_sync(self, obj: Agent) -> str:
        return sync_summary(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        # The default agent serves the default endpoints; move the flag before deleting it.
        if obj is not None and obj.is_default:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        # Bulk delete could remove the default agent; delete from the change page instead.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Make the selected agent the default", permissions=["change"])
    def make_default(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one agent.", messages.ERROR)
            return
        agent = agent_make_default(agent=queryset.get())
        self.message_user(request, f"{agent.name} is now the default agent.", messages.SUCCESS)

    @admin.action(
        description="Reset their provider conversations (next turn starts afresh)",
        permissions=["change"],
    )
    def reset_conversations(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        count = conversations_mark_for_reset(agent_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            f"{count} open conversations will start a fresh provider conversation.",
            messages.SUCCESS,
        )

    @admin.action(description="Sync their knowledge to OpenAI now", permissions=["change"])
    def sync_knowledge(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        queued = vector_store_request_sync(agent_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request, f"{len(queued)} OpenAI vector stores queued for sync.", messages.SUCCESS
        )
