"""The agent editor's form: only the settings the chosen model uses, speech choices that
exist, and every model constraint as a form error."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from agents.models import Agent, LLMProvider, STTProvider, TTSProvider
from agents.speech.catalog import Choice, stt_models, voices

# Which language-model settings each provider reads; the editor shows only those.
LLM_SETTINGS: dict[str, tuple[str, ...]] = {
    "eliza_script": (LLMProvider.ELIZA,),
    "llm_model": (LLMProvider.OPENAI, LLMProvider.OPENAI_COMPATIBLE),
    "llm_temperature": (LLMProvider.OPENAI, LLMProvider.OPENAI_COMPATIBLE),
    "llm_max_tokens": (LLMProvider.OPENAI, LLMProvider.OPENAI_COMPATIBLE),
    "llm_base_url": (LLMProvider.OPENAI_COMPATIBLE,),
    "llm_api_key_env": (LLMProvider.OPENAI, LLMProvider.OPENAI_COMPATIBLE),
}
# Kept and versioned whatever the model, but only language models read it.
PROMPT_READERS = (LLMProvider.OPENAI, LLMProvider.OPENAI_COMPATIBLE)


def unused_settings(agent: Agent) -> str | None:
    """What staff set up that this agent will not use, said as a warning; None if nothing."""
    if agent.llm_provider in PROMPT_READERS:
        return None
    unused = []
    active = agent.active_prompt
    if active is not None and active.text.strip():
        unused.append("its system prompt")
    documents = agent.documents.count()
    if documents:
        unused.append(f"its {documents} knowledge document{'s' if documents != 1 else ''}")
    if not unused:
        return None
    return (
        f"{agent.name} uses ELIZA, which answers from its script alone: "
        f"{' and '.join(unused)} {'are' if len(unused) > 1 or documents > 1 else 'is'} not used."
        " Choose an OpenAI or OpenAI-compatible model to use them."
    )


class SuggestedText(forms.TextInput):
    """A text box with suggestions per provider, one <datalist> each; the box uses the list
    of the provider chosen in ``provider_field`` (the editor's script switches it)."""

    def __init__(
        self,
        provider_field: str,
        suggestions: dict[str, list[Choice]],
        *,
        sample_url: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs)
        self.provider_field = provider_field
        self.suggestions = suggestions
        self.sample_url = sample_url

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        attrs = {**(attrs or {})}
        base = attrs.get("id", f"id_{name}")
        attrs["data-provider-field"] = self.provider_field
        attrs["data-list-prefix"] = f"{base}-"
        box = super().render(name, value, attrs, renderer)
        lists = format_html_join(
            "",
            '<datalist id="{}">{}</datalist>',
            (
                (
                    f"{base}-{provider}",
                    format_html_join(
                        "",
                        '<option value="{}">{}</option>',
                        ((c.value, c.label) for c in choices if c.value),
                    ),
                )
                for provider, choices in self.suggestions.items()
            ),
        )
        bundled = format_html_join(
            "",
            '<span class="speech-default" data-provider="{}" hidden>Empty: {}.</span>',
            (
                (provider, choices[0].label)
                for provider, choices in self.suggestions.items()
                if choices and not choices[0].value
            ),
        )
        hear = ""
        if self.sample_url:
            hear = format_html(
                '<button type="button" class="button hear-voice" data-url="{}"'
                ' aria-describedby="{}_helptext">Hear it</button>'
                '<audio class="voice-sample" preload="none"></audio>',
                self.sample_url,
                base,
            )
        return format_html("{}{}{}{}", box, hear, bundled, lists)


class AgentForm(forms.ModelForm[Agent]):
    llm_base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="e.g. http://127.0.0.1:11434/v1 for Ollama.",
    )
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        required=False,
        help_text="Saving a changed prompt stores it as a new version; old versions are kept."
        " Read by OpenAI and OpenAI-compatible models; ELIZA answers from its script.",
    )

    class Meta:
        model = Agent
        # The default flag moves only through the "make default" action (one default).
        exclude = ("is_default",)  # noqa: DJ006 - every other field is editable
        help_texts = {
            "llm_provider": "The editor shows only the settings the chosen model uses.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            active = self.instance.active_prompt
            self.fields["system_prompt"].initial = active.text if active else ""
        for name, providers in LLM_SETTINGS.items():
            self.fields[name].widget.attrs["data-applies-to"] = " ".join(providers)
        self.fields["system_prompt"].widget.attrs["data-applies-to"] = " ".join(PROMPT_READERS)
        self.fields["system_prompt"].widget.attrs["data-keep-shown"] = "true"
        # Settings a model does not read are not required of it: a blank one keeps its value.
        for name in ("llm_temperature", "llm_max_tokens"):
            self.fields[name].required = False
        directory = settings.SPEECH_MODELS_DIR
        tts = TTSProvider.values
        stt = STTProvider.values
        self.fields["tts_voice"].widget = SuggestedText(
            "tts_provider",
            {str(p): voices(str(p), directory) for p in tts},
            sample_url=reverse("admin:agents_agent_voice_sample"),
        )
        self.fields["tts_voice"].help_text = (
            "A voice this machine has (suggested as you type), or the provider's voice name."
            " Piper voices can be heard before saving."
        )
        self.fields["stt_model"].widget = SuggestedText(
            "stt_provider", {str(p): stt_models(str(p), directory) for p in stt}
        )
        self.fields[
            "stt_model"
        ].help_text = (
            "A model this machine has (suggested as you type), or the provider's model name."
        )

    def _keep(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        if value is None:
            value = getattr(self.instance, name)
        return value

    def clean_llm_temperature(self) -> Any:
        return self._keep("llm_temperature")

    def clean_llm_max_tokens(self) -> Any:
        return self._keep("llm_max_tokens")

    def validate_unique(self) -> None:
        super().validate_unique()  # the last step of the form's model validation
        # Django checks only the constraints on the fields a form edits. This one leaves
        # out the default flag, so "the default agent must be active" was never checked
        # here and reached the database as an IntegrityError (a bare 500). Every constraint
        # is checked now, except those on fields that already have an error.
        try:
            self.instance.validate_constraints(exclude=set(self.errors))
        except ValidationError as exc:
            self.add_error(None, exc)
