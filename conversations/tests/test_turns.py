"""TurnDetector driven by synthetic probabilities: exact event times and exact audio.

Every window is 512 samples (32 ms at 16 kHz) filled with its own index, so the audio of an
event shows exactly which windows it holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from conversations.realtime.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnDiscarded,
    TurnEnded,
    TurnEvent,
    TurnSettings,
    TurnState,
)

W = 512
MS = 32
SPEECH, QUIET = 0.9, 0.05

# Small numbers keep the sequences readable: start after 3 voiced windows, end after 5
# silent ones, 3 windows of pre-roll, utterances of at least 3 windows.
SMALL = TurnSettings(
    threshold=0.5, min_speech_ms=96, end_silence_ms=160, pre_roll_ms=96, min_utterance_ms=96
)


def window(i: int) -> np.ndarray:
    return np.full(W, i, dtype=np.float32)


def windows(*indices: int) -> np.ndarray:
    return np.concatenate([window(i) for i in indices])


def run(detector: TurnDetector, probs: list[float], first: int = 0) -> list[tuple[int, TurnEvent]]:
    """Feed windows first, first+1, ... with the given probabilities; (window index, event)."""
    out: list[tuple[int, TurnEvent]] = []
    for k, p in enumerate(probs):
        i = first + k
        out.extend((i, event) for event in detector.process(i * MS, p, window(i)))
    return out


def summary(events: list[tuple[int, TurnEvent]]) -> list[tuple[int, str, int]]:
    return [(i, type(e).__name__, e.t) for i, e in events]


def test_a_start_needs_min_speech_and_is_dated_at_the_onset():
    detector = TurnDetector(SMALL)
    # 0-4 quiet, 5-6 a 64 ms blip, 7-9 quiet, 10-12 voiced: the start is declared at window
    # 12, when 96 ms of voice have accumulated, and dated at window 10's start.
    events = run(detector, [QUIET] * 5 + [SPEECH] * 2 + [QUIET] * 3 + [SPEECH] * 3)
    assert summary(events) == [(12, "SpeechStarted", 320)]
    assert detector.state is TurnState.SPEAKING


def test_a_blip_shorter_than_min_speech_starts_nothing():
    detector = TurnDetector(SMALL)
    events = run(detector, [QUIET, SPEECH, SPEECH, QUIET, QUIET, SPEECH, QUIET])
    assert events == []
    assert detector.state is TurnState.SILENCE


def test_starting_speech_continues_above_the_hysteresis_threshold():
    detector = TurnDetector(SMALL)
    # 0.4 is below the start threshold (0.5) but above the end threshold (0.35).
    events = run(detector, [SPEECH, 0.4, 0.4])
    assert summary(events) == [(2, "SpeechStarted", 0)]


def test_a_turn_ends_after_end_silence_with_pre_roll_and_the_first_silent_window():
    detector = TurnDetector(SMALL)
    probs = [QUIET] * 10 + [SPEECH] * 10 + [QUIET] * 5  # voice in windows 10-19
    events = run(detector, probs)
    # Paused at the end of window 19 (640 ms); 160 ms of silence end it at 800 ms, which is
    # the end of window 24, and not one window earlier.
    assert summary(events) == [
        (12, "SpeechStarted", 320),
        (20, "SpeechPaused", 640),
        (24, "TurnEnded", 800),
    ]
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded)
    assert ended.last_voiced_ms == 640
    # 96 ms of pre-roll (windows 7-9), the voice (10-19) and the first silent window (20).
    np.testing.assert_array_equal(ended.audio, windows(*range(7, 21)))
    assert detector.state is TurnState.SILENCE


def test_turn_ended_audio_is_the_audio_of_the_last_pause():
    detector = TurnDetector(SMALL)
    events = run(detector, [SPEECH] * 4 + [QUIET] * 5)
    paused, ended = events[1][1], events[2][1]
    assert isinstance(paused, SpeechPaused)
    assert isinstance(ended, TurnEnded)
    # The same object: a speculative transcript of the pause's audio is the turn's transcript.
    assert ended.audio is paused.audio


def test_default_pre_roll_is_300_ms_of_samples_before_the_onset():
    detector = TurnDetector(TurnSettings(min_speech_ms=96, end_silence_ms=160))
    events = run(detector, [QUIET] * 12 + [SPEECH] * 8 + [QUIET] * 5)
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded)
    history = windows(*range(12))
    assert ended.audio.size == 4800 + 9 * W  # 300 ms at 16 kHz, voice (12-19), window 20
    np.testing.assert_array_equal(ended.audio[:4800], history[-4800:])
    np.testing.assert_array_equal(ended.audio[4800:], windows(*range(12, 21)))


def test_a_blip_before_the_start_stays_in_the_pre_roll():
    detector = TurnDetector(
        TurnSettings(min_speech_ms=96, end_silence_ms=160, pre_roll_ms=160, min_utterance_ms=96)
    )
    events = run(detector, [QUIET, QUIET, QUIET, SPEECH, QUIET, QUIET, SPEECH, SPEECH, SPEECH])
    events += run(detector, [QUIET] * 5, first=9)
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded)
    np.testing.assert_array_equal(ended.audio, windows(1, 2, 3, 4, 5, 6, 7, 8, 9))


def test_pause_then_resume_keeps_one_utterance_with_the_gap():
    detector = TurnDetector(SMALL)
    probs = [SPEECH] * 5 + [QUIET] * 3 + [SPEECH] * 4 + [QUIET] * 5
    events = run(detector, probs)
    assert summary(events) == [
        (2, "SpeechStarted", 0),
        (5, "SpeechPaused", 160),
        (8, "SpeechResumed", 256),
        (12, "SpeechPaused", 384),
        (16, "TurnEnded", 544),
    ]
    first_pause, ended = events[1][1], events[-1][1]
    assert isinstance(first_pause, SpeechPaused)
    assert isinstance(ended, TurnEnded)
    np.testing.assert_array_equal(first_pause.audio, windows(*range(6)))
    np.testing.assert_array_equal(ended.audio, windows(*range(13)))
    assert ended.last_voiced_ms == 384


def test_a_pause_needs_p_below_the_end_threshold_and_a_resume_needs_the_start_threshold():
    detector = TurnDetector(SMALL)
    # 0.36 keeps the speech going (>= 0.35); 0.3 pauses it; 0.45 does not resume it.
    events = run(detector, [SPEECH] * 3 + [0.36, 0.3, 0.45, 0.45, 0.45, 0.45])
    assert summary(events) == [
        (2, "SpeechStarted", 0),
        (4, "SpeechPaused", 128),
        (8, "TurnEnded", 288),
    ]


def test_an_utterance_shorter_than_min_utterance_is_discarded():
    detector = TurnDetector(
        TurnSettings(min_speech_ms=64, end_silence_ms=96, pre_roll_ms=0, min_utterance_ms=200)
    )
    events = run(detector, [SPEECH] * 4 + [QUIET] * 3)
    assert summary(events) == [
        (1, "SpeechStarted", 0),
        (4, "SpeechPaused", 128),
        (6, "TurnDiscarded", 224),
    ]
    discarded = events[-1][1]
    assert discarded == TurnDiscarded(t=224, last_voiced_ms=128, duration_ms=128)
    assert not any(isinstance(e, TurnEnded) for _, e in events)


def test_speech_right_after_a_turn_ends_starts_a_new_utterance():
    # The caller is transcribing the first utterance meanwhile; the detector does not wait.
    detector = TurnDetector(SMALL)
    first = run(detector, [SPEECH] * 5 + [QUIET] * 5)
    second = run(detector, [SPEECH] * 4 + [QUIET] * 5, first=10)
    assert summary(first) == [
        (2, "SpeechStarted", 0),
        (5, "SpeechPaused", 160),
        (9, "TurnEnded", 320),
    ]
    assert summary(second) == [
        (12, "SpeechStarted", 320),
        (14, "SpeechPaused", 448),
        (18, "TurnEnded", 608),
    ]
    first_turn, second_turn = first[-1][1], second[-1][1]
    assert isinstance(first_turn, TurnEnded)
    assert isinstance(second_turn, TurnEnded)
    # The second has its own audio, with the silence that ended the first as pre-roll.
    np.testing.assert_array_equal(second_turn.audio, windows(*range(7, 15)))
    # And the first turn's audio is untouched by what came after.
    np.testing.assert_array_equal(first_turn.audio, windows(*range(6)))


def test_a_turn_is_cut_at_max_utterance_and_the_speech_goes_on_without_overlap():
    settings = TurnSettings(
        min_speech_ms=96,
        end_silence_ms=160,
        pre_roll_ms=96,
        min_utterance_ms=96,
        max_utterance_ms=320,
    )
    detector = TurnDetector(settings)
    events = run(detector, [SPEECH] * 14 + [QUIET] * 5)
    assert summary(events) == [
        (2, "SpeechStarted", 0),
        (9, "TurnEnded", 320),
        (12, "SpeechStarted", 320),
        (14, "SpeechPaused", 448),
        (18, "TurnEnded", 608),
    ]
    cut, rest = events[1][1], events[-1][1]
    assert isinstance(cut, TurnEnded)
    assert isinstance(rest, TurnEnded)
    assert cut.last_voiced_ms == 320
    np.testing.assert_array_equal(cut.audio, windows(*range(10)))
    np.testing.assert_array_equal(rest.audio, windows(*range(10, 15)))


def test_end_silence_shorter_than_a_window_ends_the_turn_at_the_first_silent_window():
    detector = TurnDetector(TurnSettings(min_speech_ms=32, end_silence_ms=0, min_utterance_ms=0))
    events = run(detector, [SPEECH, SPEECH, QUIET])
    assert summary(events) == [
        (0, "SpeechStarted", 0),
        (2, "SpeechPaused", 64),
        (2, "TurnEnded", 96),
    ]


def test_time_going_backwards_is_refused():
    detector = TurnDetector(SMALL)
    detector.process(64, QUIET, window(0))
    with pytest.raises(ValueError, match="before the last one's end"):
        detector.process(32, QUIET, window(1))


def test_reset_forgets_a_turn_in_progress():
    detector = TurnDetector(SMALL)
    run(detector, [SPEECH] * 5)
    detector.reset()
    assert detector.state is TurnState.SILENCE
    assert run(detector, [QUIET] * 10) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"threshold": 0.1}, "threshold must be in"),
        ({"end_silence_ms": -1}, "end_silence_ms must not be negative"),
        ({"max_utterance_ms": 200}, "max_utterance_ms must exceed"),
    ],
)
def test_invalid_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        TurnSettings(**fields)


def test_events_are_plain_values():
    assert SpeechStarted(t=5) == SpeechStarted(t=5)
    assert SpeechResumed(t=7) != SpeechResumed(t=8)
