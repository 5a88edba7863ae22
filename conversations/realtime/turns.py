"""Turn-taking: from per-window speech probabilities to utterances and turn boundaries.

:class:`TurnDetector` is a pure state machine. It has no clock and no asyncio: the caller
feeds it one scored window at a time with the window's stream time, and gets back the events
that window caused. That keeps every timing rule testable with synthetic probabilities.

Events, and what a realtime pipeline does with them::

    SpeechStarted(t)              the user started talking at t (barge-in: stop playback)
    SpeechPaused(t, audio)        voice stopped at t: start a *speculative* transcription
                                  of ``audio`` now rather than after the end-of-turn silence
    SpeechResumed(t)              voice came back before the turn ended: drop that result
    TurnEnded(t, audio, ...)      the turn is over; ``audio`` is the very array of the last
                                  SpeechPaused, so a speculative transcript of it stands
    TurnDiscarded(t, ...)         it was too short to be an utterance (a cough, a click)

After a turn ends the detector is immediately ready for the next one: speech that arrives
while the previous utterance is still being transcribed starts a new utterance; nothing is
dropped (the Echo reference server loses it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from agents.speech.base import FloatAudio

#: Speech ends (hysteresis) this far below the start threshold, as in Silero's own iterator.
HYSTERESIS = 0.15


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """Timing rules of turn detection; all durations in milliseconds of stream time."""

    threshold: float = 0.5  # a window with p >= threshold is speech and can start a turn
    # Voiced audio needed before a start is declared: the run opens with a window at or above
    # threshold and continues while windows stay at or above end_threshold.
    min_speech_ms: int = 250
    end_silence_ms: int = 500  # silence after the last voiced window that ends the turn
    pre_roll_ms: int = 300  # audio kept from before the start, so the first syllable survives
    min_utterance_ms: int = 250  # shorter utterances (start to last voice) are discarded
    max_utterance_ms: int = 30_000  # a turn is cut here even without a pause (Whisper's window)
    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        if not HYSTERESIS < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in ({HYSTERESIS}, 1], not {self.threshold}")
        for name in ("min_speech_ms", "end_silence_ms", "pre_roll_ms", "min_utterance_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_utterance_ms <= max(self.min_speech_ms, self.min_utterance_ms):
            raise ValueError("max_utterance_ms must exceed min_speech_ms and min_utterance_ms")
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")

    @property
    def end_threshold(self) -> float:
        """While speaking, a window below this counts as silence."""
        return self.threshold - HYSTERESIS


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user started talking (after min_speech_ms of voice): the barge-in signal."""

    t: int  # onset: start of the first window of the voiced run that became speech


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """Voice stopped: the moment to start a speculative transcription of ``audio``."""

    t: int  # end of the last voiced window
    audio: FloatAudio  # pre-roll + the utterance so far, including the first silent window


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Voice came back before the turn ended: a speculative transcript is now stale."""

    t: int  # start of the window in which voice came back


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """End-of-turn silence elapsed (or the turn hit max_utterance_ms): ``audio`` is final."""

    t: int  # end of the window in which the silence reached end_silence_ms (or the cut)
    audio: FloatAudio  # pre-roll + utterance; the same object as the last SpeechPaused.audio
    last_voiced_ms: int  # end of the last voiced window


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    """The voice ended too soon to be an utterance; nothing to transcribe."""

    t: int  # when it was discarded (as for TurnEnded)
    last_voiced_ms: int
    duration_ms: int  # onset to last voice, shorter than min_utterance_ms


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | TurnEnded | TurnDiscarded


class TurnState(StrEnum):
    """Where the detector is; read it for barge-in decisions and metrics."""

    SILENCE = "silence"
    STARTING = "starting"  # voiced, but not yet for min_speech_ms
    SPEAKING = "speaking"
    PAUSED = "paused"  # silent after speech, not yet for end_silence_ms


class TurnDetector:
    """Turns a stream of scored windows into turn events; one detector per audio stream."""

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self._pre_roll_samples = self.settings.pre_roll_ms * self.settings.sample_rate // 1000
        self.reset()

    def reset(self) -> None:
        """Forget everything, as for a new stream."""
        self.state = TurnState.SILENCE
        self._ring: deque[FloatAudio] = deque()  # recent audio outside any utterance
        self._ring_samples = 0
        self._utterance: list[FloatAudio] = []  # pre-roll, then every window since the onset
        self._pause_tail: list[FloatAudio] = []  # silent windows after the first one
        self._paused_audio: FloatAudio | None = None
        self._onset = 0
        self._voiced_ms = 0  # while STARTING
        self._last_voiced = 0
        self._pause_start = 0
        self._clock = -1  # end of the last window seen, to refuse time going backwards

    def process(
        self, timestamp_ms: int, probability: float, samples: FloatAudio
    ) -> list[TurnEvent]:
        """Take one window (its start time, speech probability and samples); return events."""
        if timestamp_ms < self._clock:
            raise ValueError(f"window at {timestamp_ms} ms is before the last one's end")
        end = timestamp_ms + round(samples.size * 1000 / self.settings.sample_rate)
        self._clock = end
        s = self.settings
        if self.state is TurnState.SILENCE:
            if probability >= s.threshold:
                self.state = TurnState.STARTING
                self._onset, self._voiced_ms = timestamp_ms, 0
                self._utterance = []
                return self._starting(timestamp_ms, end, samples)
            self._remember(samples)
            return []
        if self.state is TurnState.STARTING:
            if probability >= s.end_threshold:
                return self._starting(timestamp_ms, end, samples)
            # A blip, not speech: its audio goes back to the pre-roll history.
            self.state = TurnState.SILENCE
            for window in (*self._utterance, samples):
                self._remember(window)
            self._utterance = []
            return []
        if self.state is TurnState.SPEAKING:
            self._utterance.append(samples)
            if probability >= s.end_threshold:
                self._last_voiced = end
                if end - self._onset >= s.max_utterance_ms:
                    return self._end(end, cut=True)
                return []
            self.state = TurnState.PAUSED
            self._pause_start = self._last_voiced
            self._pause_tail = []
            self._paused_audio = np.concatenate(self._utterance)
            events: list[TurnEvent] = [SpeechPaused(t=self._pause_start, audio=self._paused_audio)]
            if end - self._pause_start >= s.end_silence_ms:
                events.append(self._end(end)[0])
            return events
        # PAUSED
        if probability >= s.threshold:
            self.state = TurnState.SPEAKING
            self._utterance.extend(self._pause_tail)
            self._utterance.append(samples)
            self._pause_tail = []
            self._paused_audio = None
            self._last_voiced = end
            return [SpeechResumed(t=timestamp_ms)]
        self._pause_tail.append(samples)
        if end - self._pause_start >= s.end_silence_ms:
            return self._end(end)
        return []

    def _starting(self, start: int, end: int, samples: FloatAudio) -> list[TurnEvent]:
        self._utterance.append(samples)
        self._voiced_ms += end - start
        if self._voiced_ms < self.settings.min_speech_ms:
            return []
        self.state = TurnState.SPEAKING
        self._last_voiced = end
        pre_roll = self._pre_roll()
        self._utterance = [pre_roll, *self._utterance] if pre_roll.size else self._utterance
        self._ring.clear()
        self._ring_samples = 0
        return [SpeechStarted(t=self._onset)]

    def _end(self, t: int, *, cut: bool = False) -> list[TurnEvent]:
        duration = self._last_voiced - self._onset
        event: TurnEvent
        if duration < self.settings.min_utterance_ms:
            event = TurnDiscarded(t=t, last_voiced_ms=self._last_voiced, duration_ms=duration)
        else:
            audio = self._paused_audio
            if cut or audio is None:
                audio = np.concatenate(self._utterance)
            event = TurnEnded(t=t, audio=audio, last_voiced_ms=self._last_voiced)
        self.state = TurnState.SILENCE
        # The silence that ended the turn is the pre-roll of the next one. After a cut there
        # is none: the next words follow directly and must not be heard twice.
        for window in self._pause_tail:
            self._remember(window)
        self._utterance, self._pause_tail, self._paused_audio = [], [], None
        return [event]

    def _remember(self, samples: FloatAudio) -> None:
        if self._pre_roll_samples == 0:
            return
        self._ring.append(samples)
        self._ring_samples += samples.size
        while self._ring and self._ring_samples - self._ring[0].size >= self._pre_roll_samples:
            self._ring_samples -= self._ring.popleft().size

    def _pre_roll(self) -> FloatAudio:
        if not self._ring:
            return np.zeros(0, np.float32)
        history = np.concatenate(self._ring)
        return history[-self._pre_roll_samples :]
