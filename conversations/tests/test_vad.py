"""SileroVAD on the real bundled model, with real (Piper) speech."""

from __future__ import annotations

import numpy as np
import pytest

from agents.speech.audio import resample
from agents.speech.piper import PiperTTS
from conversations.realtime.turns import SpeechStarted, TurnDetector, TurnEnded, TurnSettings
from conversations.realtime.vad import WINDOW_MS, WINDOW_SAMPLES, SileroVAD, shared_session

SENTENCE = "Please book a table for two people at seven tonight."


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The sentence spoken by the bundled Piper voice, at 16 kHz."""
    voice = PiperTTS().load_voice()
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(SENTENCE)])
    return resample(audio, voice.config.sample_rate, 16_000)


@pytest.fixture(scope="module")
def stream(speech: np.ndarray) -> np.ndarray:
    """0.5 s of silence, the sentence, 1 s of silence, cut to whole windows."""
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000, np.float32)])
    return audio[: audio.size // WINDOW_SAMPLES * WINDOW_SAMPLES]


def probabilities(vad: SileroVAD, audio: np.ndarray, chunk: int) -> np.ndarray:
    scores: list[float] = []
    for start in range(0, audio.size, chunk):
        scores.extend(w.probability for w in vad.feed(audio[start : start + chunk]))
    return np.array(scores, dtype=np.float32)


def test_silence_scores_low():
    scores = probabilities(SileroVAD(), np.zeros(16000, np.float32), 1600)
    assert scores.size == 31  # 16000 samples hold 31 whole windows
    assert scores.max() < 0.1


def test_quiet_noise_scores_low():
    noise = np.random.default_rng(0).normal(0, 0.003, 16000).astype(np.float32)
    assert probabilities(SileroVAD(), noise, 1600).max() < 0.2


def test_piper_speech_scores_high(speech: np.ndarray):
    scores = probabilities(SileroVAD(), speech, 1600)
    assert scores.max() > 0.95
    assert np.mean(scores >= 0.5) > 0.8


@pytest.mark.parametrize("chunk", [480, 1600, 4000], ids=["30ms", "100ms", "250ms"])
def test_chunk_size_does_not_change_the_scores(stream: np.ndarray, chunk: int):
    from faster_whisper.vad import get_vad_model

    # faster-whisper's own offline pass over the whole array is the reference.
    reference = np.asarray(get_vad_model()(stream), dtype=np.float32).reshape(-1)
    whole = probabilities(SileroVAD(), stream, stream.size)
    chunked = probabilities(SileroVAD(), stream, chunk)
    assert reference.size == whole.size == chunked.size == stream.size // WINDOW_SAMPLES
    np.testing.assert_allclose(whole, reference, rtol=0, atol=1e-6)
    np.testing.assert_allclose(chunked, reference, rtol=0, atol=1e-6)


def test_windows_carry_their_stream_time_and_samples(stream: np.ndarray):
    vad = SileroVAD()
    first = vad.feed(stream[:1000])  # one window, 488 samples left over
    second = vad.feed(stream[1000:1020])  # 508 pending: completes nothing
    third = vad.feed(stream[1020:1600])  # 1088 pending: two windows, 64 samples left
    assert [w.start_ms for w in first] == [0]
    assert second == []
    assert [(w.start_ms, w.end_ms) for w in third] == [(32, 64), (64, 96)]
    np.testing.assert_array_equal(third[0].samples, stream[512:1024])
    np.testing.assert_array_equal(third[1].samples, stream[1024:1536])
    assert vad.pending_samples == 64
    assert vad.stream_ms == 96


def test_two_streams_interleaved_do_not_affect_each_other(stream: np.ndarray):
    noise = np.random.default_rng(1).normal(0, 0.01, stream.size).astype(np.float32)
    alone_a = probabilities(SileroVAD(), stream, 480)
    alone_b = probabilities(SileroVAD(), noise, 480)
    a, b = SileroVAD(), SileroVAD()
    mixed_a: list[float] = []
    mixed_b: list[float] = []
    for start in range(0, stream.size, 480):
        mixed_a.extend(w.probability for w in a.feed(stream[start : start + 480]))
        mixed_b.extend(w.probability for w in b.feed(noise[start : start + 480]))
    np.testing.assert_array_equal(np.array(mixed_a, np.float32), alone_a)
    np.testing.assert_array_equal(np.array(mixed_b, np.float32), alone_b)


def test_reset_starts_a_fresh_stream(stream: np.ndarray):
    vad = SileroVAD()
    once = probabilities(vad, stream, 1600)
    vad.reset()
    assert vad.stream_ms == 0
    np.testing.assert_array_equal(probabilities(vad, stream, 1600), once)


def test_the_onnx_session_is_shared_by_all_streams():
    assert SileroVAD()._session is SileroVAD()._session is shared_session()


def test_integer_samples_are_refused():
    with pytest.raises(TypeError, match="expected 1-D float audio"):
        SileroVAD().feed(np.zeros(512, np.int16))


def test_vad_and_turn_detector_find_one_turn_in_real_speech(stream: np.ndarray, speech: np.ndarray):
    vad = SileroVAD()
    turns = TurnDetector(TurnSettings(end_silence_ms=500))
    events = []
    for start in range(0, stream.size, 480):  # 30 ms browser frames
        for w in vad.feed(stream[start : start + 480]):
            events.extend(turns.process(w.start_ms, w.probability, w.samples))
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(starts) == 1
    assert len(ends) == 1
    speech_end_ms = 500 + speech.size // 16
    # Piper's audio has a little silence at both ends; the VAD finds the voice inside it.
    assert 500 <= starts[0].t <= 700
    assert speech_end_ms - 300 <= ends[0].last_voiced_ms <= speech_end_ms
    assert ends[0].t - ends[0].last_voiced_ms in range(500, 500 + WINDOW_MS)
