"""Streaming voice-activity detection with the Silero model that faster-whisper ships.

The ONNX model (``faster_whisper/assets/silero_vad_v6.onnx``) scores 512-sample windows of
16 kHz audio (32 ms), each preceded by the previous window's last 64 samples as context, and
carries an LSTM state (``h``, ``c``) from one window to the next. faster-whisper only runs it
over a whole file; here the same state is carried across calls, so audio can be fed as it
arrives, in chunks of any size, and the probabilities are bit-identical to one pass over the
whole array (asserted in conversations/tests/test_vad.py).

One window costs ~0.1 ms, about 0.3% of a core per real-time stream. The voice socket
still feeds it off the event loop, on one thread of its own shared by every session
(``vad_pool`` in ``conversations.consumers.voice``), so that many sessions' windows never
add up to a stall of the loop, and never wait behind speech-to-text jobs. The onnxruntime
session is shared by the whole process; the per-stream state lives in each
:class:`SileroVAD` and is never shared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agents.speech.base import FloatAudio

if TYPE_CHECKING:
    import onnxruntime


SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 512
WINDOW_MS = WINDOW_SAMPLES * 1000 // SAMPLE_RATE  # 32
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)

_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def silero_model_path() -> Path:
    """The Silero VAD v6 ONNX file inside the installed faster-whisper package."""
    import faster_whisper

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


def shared_session() -> onnxruntime.InferenceSession:
    """The process's onnxruntime session for the VAD, created on first use.

    One intra-op thread: a 32 ms window is far too small to gain from more, and the cores
    are needed for STT and TTS. ``InferenceSession.run`` is thread-safe, so every stream in
    the process can share it.
    """
    global _session
    with _session_lock:
        if _session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only; the model logs harmless warnings
            _session = onnxruntime.InferenceSession(
                str(silero_model_path()),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        return _session


@dataclass(frozen=True, slots=True)
class VADWindow:
    """One scored 32 ms window of the stream."""

    start_ms: int  # stream time of the window's first sample
    probability: float  # speech probability in [0, 1]
    samples: FloatAudio  # the window's 512 samples (kept for pre-roll and the utterance)

    @property
    def end_ms(self) -> int:
        """Stream time just after the window's last sample."""
        return self.start_ms + WINDOW_MS


class SileroVAD:
    """Voice-activity detector for one audio stream: feed audio, get one score per window.

    Not thread-safe and not shareable: make one per session (they are cheap; the model is
    shared). Audio must be float32 mono at 16 kHz.
    """

    def __init__(self, *, session: onnxruntime.InferenceSession | None = None) -> None:
        self._session = session if session is not None else shared_session()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: state, context, buffered samples and the clock."""
        self._h = np.zeros(_STATE_SHAPE, np.float32)
        self._c = np.zeros(_STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._windows_done = 0

    @property
    def pending_samples(self) -> int:
        """Samples received but not yet scored (always fewer than one window)."""
        return int(self._pending.size)

    @property
    def stream_ms(self) -> int:
        """Stream time up to which audio has been scored."""
        return self._windows_done * WINDOW_MS

    def feed(self, pcm: npt.ArrayLike) -> list[VADWindow]:
        """Add audio of any length and score every window it completes, in order."""
        samples = np.asarray(pcm)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise TypeError(
                f"expected 1-D float audio at 16 kHz, got {samples.dtype} of shape {samples.shape}"
            )
        buffered = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        count = buffered.size // WINDOW_SAMPLES
        self._pending = buffered[count * WINDOW_SAMPLES :].copy()
        if count == 0:
            return []
        windows = buffered[: count * WINDOW_SAMPLES].reshape(count, WINDOW_SAMPLES)
        # Each row is [64 samples of context | 512-sample window]; the context of the first
        # row comes from the previous call, so the split between calls leaves no trace.
        contexts = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT_SAMPLES:]])
        batch = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        # All windows of one call go in a single run; the model carries h/c through the
        # batch in order, which gives the same scores as one run per window.
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = windows[-1, -CONTEXT_SAMPLES:].copy()
        first = self._windows_done
        self._windows_done += count
        scores = np.asarray(probs, dtype=np.float32).reshape(-1)
        return [
            VADWindow(
                start_ms=(first + i) * WINDOW_MS,
                probability=float(scores[i]),
                samples=windows[i],  # a view into this call's own buffer; nothing reuses it
            )
            for i in range(count)
        ]
