"""Audio helpers: sample-format conversion, resampling and decoding to what STT expects.

Everything inside the speech layer is float32 mono in [-1, 1]; the wire formats are signed
16-bit little-endian PCM (sockets) and common containers (uploads). STT wants 16 kHz.
"""

from __future__ import annotations

import io
import wave

import av
import av.error
import numpy as np
import numpy.typing as npt
import soxr

from .base import STT_SAMPLE_RATE, FloatAudio, SpeechError, SpeechErrorKind

Int16Audio = npt.NDArray[np.int16]

_INT16_SCALE = 32768.0


def _bad_audio(message: str) -> SpeechError:
    return SpeechError(message, kind=SpeechErrorKind.BAD_AUDIO)


def as_float_audio(x: npt.ArrayLike) -> FloatAudio:
    """Check that ``x`` is mono float audio and return it as float32 (no copy if it already is)."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise _bad_audio(f"expected mono audio (a 1-D array), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        # Integer samples would be silently scaled wrong; make the caller say what they are.
        raise _bad_audio(f"expected float samples in [-1, 1], got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def float_to_pcm16(x: npt.ArrayLike) -> Int16Audio:
    """Float samples in [-1, 1] to int16, clipping anything outside that range.

    Scales by 32767 so that +1.0 maps to 32767 and -1.0 to -32767 (symmetric; no wrap).
    """
    arr = as_float_audio(x)
    out: Int16Audio = np.rint(np.clip(arr, -1.0, 1.0) * 32767.0).astype(np.int16)
    return out


def pcm16_to_float(x: Int16Audio) -> FloatAudio:
    """int16 samples to float32 in [-1, 1) (divides by 32768, the usual convention)."""
    arr = np.asarray(x)
    if arr.dtype != np.int16:
        raise _bad_audio(f"expected int16 samples, got dtype {arr.dtype}")
    return (arr.astype(np.float32) / _INT16_SCALE).reshape(-1)


def pcm16_wav(pcm: bytes, sample_rate: int) -> bytes:
    """Mono s16le samples as a WAV file (the project's one WAV writer)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def float_to_pcm16_bytes(x: npt.ArrayLike) -> bytes:
    """Float samples to s16le bytes (the wire format of :class:`~agents.speech.base.AudioChunk`)."""
    return float_to_pcm16(x).astype("<i2", copy=False).tobytes()


def pcm16_bytes_to_float(data: bytes) -> FloatAudio:
    """s16le bytes to float32 samples."""
    if len(data) % 2:
        raise _bad_audio(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / _INT16_SCALE


def resample(x: npt.ArrayLike, from_rate: int, to_rate: int) -> FloatAudio:
    """Resample float mono audio with soxr (high quality); returns ``x`` as-is if rates match.

    The output has ``round(len(x) * to_rate / from_rate)`` samples.
    """
    arr = as_float_audio(x)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate or arr.size == 0:
        return arr
    out: FloatAudio = soxr.resample(arr, from_rate, to_rate).astype(np.float32, copy=False)
    return out


def decode_pcm16(data: bytes, sample_rate: int, *, to_rate: int = STT_SAMPLE_RATE) -> FloatAudio:
    """Raw s16le mono PCM at ``sample_rate`` to float32 at ``to_rate`` (16 kHz for STT)."""
    return resample(pcm16_bytes_to_float(data), sample_rate, to_rate)


#: Containers accepted from outside, and the FFmpeg demuxer that reads each. Each is a
#: single self-contained file. Nothing here may name another resource: FFmpeg also has
#: demuxers that open files or URLs listed inside the data (concat, HLS and DASH
#: playlists, SDP, image sequences), and letting FFmpeg guess from the content would
#: let an upload pick one of those and make the server read its own files.
UPLOAD_DEMUXERS = ("wav", "mp3", "aac", "ogg", "flac", "matroska", "mov", "aiff")

# Passed to every open: no protocol for anything nested (the upload itself is read from
# memory through PyAV's own I/O), no demuxer but the one chosen, no external references
# in MP4/QuickTime files.
_LOCKED_DOWN = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0"}


def sniff_container(data: bytes) -> str | None:
    """The demuxer for ``data`` from its leading signature, or None when it is none of
    :data:`UPLOAD_DEMUXERS`."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska and WebM
        return "matroska"
    if head[4:8] == b"ftyp":  # ISO media: MP4, M4A, 3GP, QuickTime
        return "mov"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0 and head[1] & 0x06 == 0:
        return "aac"  # ADTS: sync word and layer 0
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"  # an MPEG audio frame header (layer I-III)
    return None


def decode_audio(
    data: bytes, *, to_rate: int = STT_SAMPLE_RATE, max_seconds: float | None = None
) -> FloatAudio:
    """Decode an uploaded recording (WAV, MP3, AAC, OGG, WebM/Matroska, MP4/M4A, FLAC,
    AIFF) to float32 mono at ``to_rate``.

    The container is recognised here from its signature and only its demuxer may run,
    with no protocols for nested resources (see :data:`UPLOAD_DEMUXERS`). Uses the first
    audio stream; channels are averaged. Raises :class:`SpeechError` (kind ``bad_audio``)
    when the bytes are not decodable audio of an accepted kind, and (kind ``too_long``)
    as soon as more than ``max_seconds`` have been decoded: a small, highly compressed
    upload must not expand into gigabytes of samples before anyone looks at its length.
    """
    limit = None if max_seconds is None else int(max_seconds * to_rate)
    decoded = 0
    if not data:
        raise _bad_audio("no audio data")
    demuxer = sniff_container(data)
    if demuxer is None:
        raise _bad_audio(
            "not a recording of an accepted kind (WAV, MP3, AAC, OGG, WebM/Matroska, "
            "MP4/M4A, FLAC, AIFF)"
        )
    options = {**_LOCKED_DOWN, "format_whitelist": demuxer}
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer, options=options) as container:
            if not container.streams.audio:
                raise _bad_audio("the data has no audio stream")
            stream = container.streams.audio[0]
            # Channels are averaged here rather than by FFmpeg's mixdown, which adds 3 dB to
            # identical channels (a mono mic in a stereo file) and can then clip.
            resampler = av.AudioResampler(format="fltp", rate=to_rate)
            pieces: list[FloatAudio] = []
            for frame in container.decode(stream):
                for piece in map(_samples, resampler.resample(frame)):
                    pieces.append(piece)
                    decoded += piece.size
                if limit is not None and decoded > limit:
                    raise SpeechError(
                        f"the audio is longer than {max_seconds:g} s",
                        kind=SpeechErrorKind.TOO_LONG,
                    )
            # Flush the resampler's delay line so the tail of the audio is not lost.
            pieces.extend(_samples(f) for f in resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise _bad_audio(f"cannot decode audio: {exc}") from exc
    if not pieces:
        raise _bad_audio("the audio stream holds no samples")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def _samples(frame: av.AudioFrame) -> FloatAudio:
    # Planar float: one row per channel.
    planes = np.asarray(frame.to_ndarray(), dtype=np.float32)
    mono: FloatAudio = planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0]
    return mono
