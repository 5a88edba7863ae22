"""Agents: who answers, with which prompt, language model, voice and turn-taking."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from agents.keys import key_variable_allowed, refusal


class LLMProvider(models.TextChoices):
    ELIZA = "eliza", "ELIZA (embedded)"
    OPENAI = "openai", "OpenAI (Responses API)"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"


class STTProvider(models.TextChoices):
    FASTER_WHISPER = "faster_whisper", "faster-whisper (embedded)"
    AWS_TRANSCRIBE = "aws_transcribe", "AWS Transcribe"
    OPENAI = "openai", "OpenAI transcription"


class TTSProvider(models.TextChoices):
    PIPER = "piper", "Piper (embedded)"
    AWS_POLLY = "aws_polly", "AWS Polly"
    OPENAI = "openai", "OpenAI speech"
    ELEVENLABS = "elevenlabs", "ElevenLabs"


class ResetPolicy(models.TextChoices):
    """What happens to open provider conversations when an agent's prompt or knowledge changes."""

    NEVER = "never", "Keep open conversations as they are"
    ON_CHANGE = "on_change", "Start a fresh provider conversation on the next turn"


_ENV_VAR_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
env_var_name = RegexValidator(
    r"^[A-Z_][A-Z0-9_]*$",
    "Name of an environment variable (upper case letters, digits and _), not the key itself.",
)


class Agent(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    is_active = models.BooleanField("active", default=True)
    is_default = models.BooleanField(
        "default agent",
        default=False,
        help_text="Serves /llm, /conversation and the chatbot-server endpoints. Exactly one.",
    )
    is_public = models.BooleanField(
        "public",
        default=True,
        help_text="Anyone may talk to a public agent; others need a logged-in user.",
    )
    greeting = models.TextField(
        blank=True,
        help_text="Spoken first on a voice call. Empty: ELIZA agents use their script's greeting.",
    )

    llm_provider = models.CharField(
        "language model", max_length=32, choices=LLMProvider.choices, default=LLMProvider.ELIZA
    )
    llm_model = models.CharField("model name", max_length=100, blank=True)
    llm_temperature = models.FloatField(
        "temperature",
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
    )
    llm_max_tokens = models.PositiveIntegerField(
        "max tokens", default=512, validators=[MinValueValidator(1), MaxValueValidator(32_768)]
    )
    llm_base_url = models.URLField("base URL", blank=True)
    llm_api_key_env = models.CharField(
        "API key variable",
        max_length=64,
        blank=True,
        validators=[env_var_name],
        help_text="The environment variable that holds the key, e.g. OPENAI_API_KEY.",
    )
    eliza_script = models.TextField(
        "ELIZA script",
        blank=True,
        help_text="A script in the 1966 format. Empty: the bundled therapist script.",
    )

    stt_provider = models.CharField(
        "speech-to-text",
        max_length=32,
        choices=STTProvider.choices,
        default=STTProvider.FASTER_WHISPER,
    )
    stt_model = models.CharField("speech-to-text model", max_length=100, blank=True)
    tts_provider = models.CharField(
        "text-to-speech", max_length=32, choices=TTSProvider.choices, default=TTSProvider.PIPER
    )
    tts_voice = models.CharField("voice", max_length=100, blank=True)

    vad_threshold = models.FloatField(
        "VAD threshold",
        default=0.5,
        # The detector ends speech 0.15 below the start threshold (hysteresis).
        validators=[MinValueValidator(0.2), MaxValueValidator(0.95)],
    )
    end_of_turn_silence_ms = models.PositiveIntegerField(
        "end-of-turn silence (ms)",
        default=500,
        validators=[MinValueValidator(100), MaxValueValidator(5000)],
    )
    min_speech_ms = models.PositiveIntegerField(
        "minimum speech (ms)",
        default=250,
        validators=[MinValueValidator(32), MaxValueValidator(5000)],
    )
    barge_in = models.BooleanField("barge-in", default=True)

    clm_token = models.CharField(
        "custom-LLM token",
        max_length=128,
        blank=True,
        help_text="If set, Hume must send it (?token= or Authorization: Bearer).",
    )
    reset_policy = models.CharField(
        max_length=16, choices=ResetPolicy.choices, default=ResetPolicy.ON_CHANGE
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="agents_agent_one_default",
                violation_error_message="Another agent is already the default.",
            ),
            models.CheckConstraint(
                condition=Q(llm_temperature__gte=0) & Q(llm_temperature__lte=2),
                name="agents_agent_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(vad_threshold__gt=0) & Q(vad_threshold__lt=1),
                name="agents_agent_vad_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(is_active=True),
                name="agents_agent_default_is_active",
                violation_error_message="The default agent must be active.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.llm_provider == LLMProvider.OPENAI_COMPATIBLE and not self.llm_base_url:
            errors["llm_base_url"] = "An OpenAI-compatible server needs a base URL."
        if self.llm_provider != LLMProvider.ELIZA and not self.llm_model:
            errors["llm_model"] = "Name the model this provider should run."
        if self.llm_provider == LLMProvider.OPENAI and not self.llm_api_key_env:
            errors["llm_api_key_env"] = "OpenAI needs the name of the variable holding its key."
        name = self.llm_api_key_env
        if name and _ENV_VAR_NAME.fullmatch(name) and not key_variable_allowed(name):
            errors["llm_api_key_env"] = refusal(name)
        if self.eliza_script:
            # Imported here: the engine is only needed when a custom script is saved.
            from agents.eliza import ScriptError, parse_script

            try:
                parse_script(self.eliza_script)
            except ScriptError as exc:
                errors["eliza_script"] = f"The script cannot be used: {exc}"
        if errors:
            raise ValidationError(errors)

    @property
    def active_prompt(self) -> PromptVersion | None:
        return self.prompt_versions.filter(is_active=True).first()


class PromptVersion(models.Model):
    """One immutable version of an agent's system prompt.

    Editing a prompt creates a new version (see ``agents.services.prompt_version_create``);
    a version's text never changes after it is stored, so every conversation can say
    exactly which prompt it ran with.
    """

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="prompt_versions")
    number = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    is_active = models.BooleanField("active", default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agents_prompt_unique_number"),
            models.UniqueConstraint(
                fields=["agent"],
                condition=Q(is_active=True),
                name="agents_prompt_one_active",
                violation_error_message="An agent has exactly one active prompt version.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.slug} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Immutability is an invariant of the row, so it is guarded here rather than
        # trusted to every caller: only the active flag may change after creation.
        if self.pk is not None:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or set(update_fields) - {"is_active"}:
                raise ValueError("A prompt version is immutable; create a new version instead.")
        super().save(*args, **kwargs)
