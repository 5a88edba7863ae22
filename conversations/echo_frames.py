"""The Echo audio socket's client frames: one schema per frame type, checked by type.

A frame that does not match its schema becomes a :class:`FrameError` with the error code
the README documents for that frame and field, never an exception inside a handler. Unknown
keys are ignored (Echo clients may send more than we read); known keys must have exactly
their type (strict: no ``"1"`` for a number, no list for a string).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

#: Output formats a client may ask for in ``open``: PCM s16le mono at these rates.
OUTPUT_FORMATS = {
    "pcm_44100": 44_100,
    "pcm_24000": 24_000,
    "pcm_22050": 22_050,
    "pcm_16000": 16_000,
}
#: The longest playback a ``played`` report may claim (a day, far past any session).
MAX_PLAYED_MS = 86_400_000


class _Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class OpenFrame(_Frame):
    type: Literal["open"]
    prompt: str | None = None  # Echo's; staff own the prompt, so it is ignored
    agent: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    format: Literal["pcm_44100", "pcm_24000", "pcm_22050", "pcm_16000"] = "pcm_44100"
    conversation: Annotated[str, Field(max_length=64)] | None = None
    reports_played: bool = False

    @property
    def output_rate(self) -> int:
        return OUTPUT_FORMATS[self.format]


class AudioFrame(_Frame):
    type: Literal["audio"]
    audio: bytes


class StateFrame(_Frame):
    type: Literal["state"]
    state: Literal["waiting"]


class PlayedFrame(_Frame):
    type: Literal["played"]
    token: Annotated[str, Field(pattern=r"^[a-z]{8}$")]
    ms: Annotated[float, Field(ge=0, le=MAX_PLAYED_MS, allow_inf_nan=False)]


class CloseFrame(_Frame):
    type: Literal["close"]


ClientFrame = Annotated[
    OpenFrame | AudioFrame | StateFrame | PlayedFrame | CloseFrame, Field(discriminator="type")
]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = ("open", "audio", "state", "played", "close")

# The documented error code for a bad value, by frame type and field; anything else is
# ``bad_frame``.
_FIELD_CODES = {
    ("open", "format"): "bad_format",
    ("audio", "audio"): "bad_audio",
    ("state", "state"): "bad_state",
}


class FrameError(Exception):
    """A client frame that does not match its schema: ``code`` and a message for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_client_frame(
    message: Any,
) -> OpenFrame | AudioFrame | StateFrame | PlayedFrame | CloseFrame:
    """Check a decoded msgpack message against its frame type's schema."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("bad_frame", "a message is a map with a string 'type'")
    kind = message["type"]
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown message type {kind[:40]!r}")
    try:
        return _client_frame.validate_python(message)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"][1:2])
        code = _FIELD_CODES.get((kind, field), "bad_frame")
        if code == "bad_format":
            message_text = f"format must be one of: {', '.join(OUTPUT_FORMATS)}"
        else:
            message_text = f"'{kind}' frame: {field or 'frame'}: {first['msg']}"
        raise FrameError(code, message_text) from None
