"""Real speech for tests: the bundled Piper voice says things, faster-whisper hears them."""

from __future__ import annotations

import asyncio
import difflib
import functools
import re

import numpy as np
from num2words import num2words

from agents.speech.audio import pcm16_bytes_to_float, resample
from agents.speech.base import FloatAudio
from agents.speech.faster_whisper import FasterWhisperSTT
from agents.speech.piper import PiperTTS


@functools.cache
def _tts() -> PiperTTS:
    return PiperTTS(sample_rate=16_000)


@functools.cache
def _stt() -> FasterWhisperSTT:
    return FasterWhisperSTT()


@functools.cache
def _speech(text: str) -> FloatAudio:
    async def synthesize() -> bytes:
        return b"".join([chunk.pcm async for chunk in _tts().synthesize(text)])

    # Piper normalises to full scale; a little headroom keeps the float samples in range.
    return pcm16_bytes_to_float(asyncio.run(synthesize())) * np.float32(0.8)


def say(text: str) -> FloatAudio:
    """``text`` spoken by the bundled Piper voice, as 16 kHz float32 mono (cached)."""
    return _speech(text).copy()


def silence(seconds: float) -> FloatAudio:
    return np.zeros(int(16_000 * seconds), np.float32)


def chunks(audio: FloatAudio, ms: int = 100) -> list[FloatAudio]:
    """Real-time-sized pieces of ``audio``, as a browser microphone sends them."""
    step = 16 * ms
    return [audio[i : i + step] for i in range(0, len(audio), step)]


async def hear(pcm16: bytes, sample_rate: int) -> str:
    """What faster-whisper hears in s16le audio at ``sample_rate``, normalised."""
    audio = resample(pcm16_bytes_to_float(pcm16), sample_rate, 16_000)
    return normalise((await _stt().transcribe(audio)).text)


def normalise(text: str) -> str:
    """Lower case, digits as words, no punctuation: for comparing what was said."""
    text = re.sub(r"\d+", lambda m: f" {num2words(int(m.group()))} ", text.lower())
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).replace("'", "").split())


def same_words(heard: str, expected: str, *, slack: int = 1) -> bool:
    """Whether ``heard`` is ``expected`` (both normalised) give or take ``slack`` words.

    Piper's voice varies slightly from run to run and tiny.en sometimes hears an extra
    "it" or drops a short word; one word in a sentence is what that noise amounts to.
    """
    a, b = normalise(heard).split(), normalise(expected).split()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return max(len(a), len(b)) - matched <= slack
