"""What an agent can be given as its speech-to-text model and its voice, per provider.

For the embedded providers, what exists on this machine: the bundled model and voice,
and any others placed in the speech-models directory (a Piper voice is a ``.onnx`` file
with its ``.onnx.json`` beside it; a faster-whisper model is a CTranslate2 directory with
a ``model.bin``). For the cloud providers, their documented built-in names. The agent
editor offers these as suggestions; any other value the provider accepts still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Choice:
    value: str  # what the agent stores ("" means the provider's default)
    label: str


# Built-in names, from each provider's documentation (the first is the default).
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
    "verse",
)  # fmt: skip
POLLY_VOICES = (
    "Joanna", "Matthew", "Ivy", "Kendra", "Kimberly", "Salli", "Joey", "Justin", "Ruth",
    "Stephen", "Amy", "Brian", "Emma", "Olivia",
)  # fmt: skip
OPENAI_STT_MODELS = ("gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1")


def _files(directory: Path | None, pattern: str) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(directory.rglob(pattern))


def piper_voices(directory: Path | None) -> list[Choice]:
    """The bundled voice (the empty value), then each complete voice under ``directory``."""
    from agents.speech.piper import bundled_voice_paths

    bundled = bundled_voice_paths()[0]
    choices = [Choice("", f"bundled: {bundled.stem}")]
    for model in _files(directory, "*.onnx"):
        if model.with_name(model.name + ".json").is_file():
            choices.append(Choice(str(model), model.stem))
    return choices


def whisper_models(directory: Path | None) -> list[Choice]:
    """The bundled tiny.en (the empty value), then each CTranslate2 model under ``directory``."""
    choices = [Choice("", "bundled: tiny.en")]
    for weights in _files(directory, "model.bin"):
        choices.append(Choice(str(weights.parent), weights.parent.name))
    return choices


def voices(provider: str, directory: Path | None) -> list[Choice]:
    """The voices to offer for a text-to-speech provider."""
    if provider == "piper":
        return piper_voices(directory)
    if provider == "openai":
        return [Choice(name, name) for name in OPENAI_VOICES]
    if provider == "aws_polly":
        return [Choice(name, name) for name in POLLY_VOICES]
    return []  # ElevenLabs voices are ids from the account's own library


def stt_models(provider: str, directory: Path | None) -> list[Choice]:
    """The models to offer for a speech-to-text provider."""
    if provider == "faster_whisper":
        return whisper_models(directory)
    if provider == "openai":
        return [Choice(name, name) for name in OPENAI_STT_MODELS]
    return []  # AWS Transcribe picks its model by language
