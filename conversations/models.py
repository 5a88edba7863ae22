"""Conversations and their turns: the record operators review."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.models import Agent, PromptVersion


class Channel(models.TextChoices):
    WEB_VOICE = "web_voice", "Web voice"
    WEB_TEXT = "web_text", "Web text"
    HUME_CLM = "hume_clm", "Hume custom LLM"
    HTTP_API = "http_api", "HTTP API"


# One person's conversation on an agent's web page: typed and spoken turns alike. A call
# started on the page continues the conversation the text chat began, and the reverse.
WEB_CHANNELS = (Channel.WEB_TEXT, Channel.WEB_VOICE)


class ConversationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"


class EndReason(models.TextChoices):
    CALLER_HUNG_UP = "caller_hung_up", "Caller hung up"
    AGENT_ENDED = "agent_ended", "Agent ended"
    TIMED_OUT = "timed_out", "Timed out"
    SERVER_RESTART = "server_restart", "Server restart"
    MEMORY_CLEARED = "memory_cleared", "Memory cleared"


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="conversations")
    prompt_version = models.ForeignKey(
        PromptVersion,
        on_delete=models.PROTECT,
        related_name="conversations",
        help_text="The prompt this conversation ran with.",
    )
    agent_snapshot = models.JSONField(
        default=dict,
        blank=True,
        help_text="The agent's model, voice and turn-taking settings when it started.",
    )
    channel = models.CharField(
        max_length=16,
        choices=Channel.choices,
        help_text="Where it started; on the web page, text and voice turns share it.",
    )
    external_id = models.CharField(
        "external session id",
        max_length=255,
        blank=True,
        help_text="Hume custom_session_id or chatbot-server address.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    status = models.CharField(
        max_length=16, choices=ConversationStatus.choices, default=ConversationStatus.ACTIVE
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=16,
        choices=EndReason.choices,
        blank=True,
        help_text="Why it ended (empty while active). Resuming reopens it.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    provider_conversation_id = models.CharField(
        "provider conversation id",
        max_length=255,
        blank=True,
        help_text="The OpenAI conversation this one continues, when the agent uses OpenAI.",
    )
    reset_requested = models.BooleanField(
        default=False, help_text="The next turn starts a fresh provider conversation."
    )
    engine_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="Engine memory (e.g. ELIZA's counters) so any process can continue.",
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One active conversation per external session id; an ended one leaves the id
            # free for the next (a chatbot address after /clearCache/).
            models.UniqueConstraint(
                fields=["agent", "channel", "external_id"],
                condition=~Q(external_id="") & Q(status="active"),
                name="conversations_unique_active_external_id",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="conversations_ended_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "-started_at"], name="conv_agent_started_idx"),
            models.Index(fields=["channel", "-started_at"], name="conv_channel_started_idx"),
            models.Index(fields=["status"], name="conv_status_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.agent.slug} · {self.get_channel_display()} · {self.started_at:%Y-%m-%d %H:%M}"
        )


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"


class TurnStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class TurnLabel(models.TextChoices):
    """What an operator concluded about a turn on review."""

    GOOD = "good", "Good"
    FALSE_BARGE_IN = "false_barge_in", "False barge-in"
    CUT_OFF_EARLY = "cut_off_early", "Cut off too early"
    WRONG_ANSWER = "wrong_answer", "Wrong answer"


class Turn(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    channel = models.CharField(
        max_length=16,
        choices=Channel.choices,
        blank=True,
        help_text="Where this turn came in: typed or spoken, on the same page.",
    )
    text = models.TextField("text generated", blank=True)
    heard_text = models.TextField(
        "text heard",
        blank=True,
        help_text="What the listener actually heard before a barge-in; equals the text otherwise.",
    )
    interrupted = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=TurnStatus.choices, default=TurnStatus.COMPLETE
    )
    error = models.TextField(blank=True)
    audio = models.FileField(upload_to="turn-audio/%Y/%m/%d/", blank=True)
    prosody = models.JSONField(
        "emotion scores", default=dict, blank=True, help_text="Emotion name → score."
    )
    speech_time = models.JSONField(
        null=True, blank=True, help_text="When it was spoken in the call: {begin, end} in ms."
    )
    vad_end_at = models.DateTimeField("end of speech", null=True, blank=True)
    stt_ms = models.PositiveIntegerField("STT ms", null=True, blank=True)
    llm_first_token_ms = models.PositiveIntegerField("LLM first token ms", null=True, blank=True)
    tts_first_audio_ms = models.PositiveIntegerField("TTS first audio ms", null=True, blank=True)
    voice_to_voice_ms = models.PositiveIntegerField("voice-to-voice ms", null=True, blank=True)
    knowledge_refs = models.JSONField(
        "knowledge used", default=list, blank=True, help_text="Chunks retrieved for this turn."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Review: set by operators afterwards; everything above is the record and stays as is.
    label = models.CharField(max_length=32, choices=TurnLabel.choices, blank=True)
    review_note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "index"]
        permissions = [("label_turn", "Can label turns and write review notes")]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "index"], name="turns_unique_index"),
            models.CheckConstraint(
                condition=Q(interrupted=False) | Q(role="assistant"),
                name="turns_only_assistant_interrupted",
            ),
        ]
        indexes = [
            models.Index(fields=["interrupted"], name="turn_interrupted_idx"),
            models.Index(fields=["created_at"], name="turn_created_idx"),
            models.Index(fields=["label"], name="turn_label_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.index} {self.role}"
