"""No upload can make the server read its own files: every container trick we can build
against ``/processAudioFile/`` is refused, and nothing is stored or revealed.

FFmpeg has demuxers that open other resources named inside the data (concat lists, HLS
and DASH playlists, SDP sessions, metadata files). A server that lets FFmpeg guess the
format of an upload lets the upload choose one of them. The secret here is a real
recording on the server's disk whose words faster-whisper hears (the control test shows
it), so a leak would show up as its transcript.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.models import Agent
from agents.speech.audio import decode_audio, sniff_container
from agents.speech.base import SpeechError
from conversations.tests.test_chatbot_endpoints import DOCTOR, encoded, post_file, stored
from testing.speech import say, silence

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_WORDS = ("launch", "seven")


@pytest.fixture
def doctor(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent(slug="doctor", eliza_script=DOCTOR)


@pytest.fixture(scope="module")
def secret_wav() -> Iterator[Path]:
    """A recording in the server's working directory, as a stored call would be."""
    path = Path("var") / f"secret-{uuid.uuid4().hex[:8]}.wav"
    path.parent.mkdir(exist_ok=True)
    speech = np.concatenate(
        [silence(0.3), say("The launch code is seven seven nine."), silence(0.3)]
    )
    path.write_bytes(encoded(speech, "wav", "pcm_s16le", 16_000))
    yield path
    path.unlink()


def tricks(secret: Path) -> dict[str, bytes]:
    """Uploads that name ``secret`` (relative, absolute, as a URL) in every form FFmpeg
    would follow if it were asked to guess."""
    relative, absolute = str(secret), str(secret.resolve())
    url = f"file:{absolute}"
    cases: dict[str, bytes] = {}
    for name, target in (("relative", relative), ("absolute", absolute), ("url", url)):
        cases[f"ffconcat-{name}"] = f"ffconcat version 1.0\nfile '{target}'\n".encode()
        cases[f"hls-{name}"] = (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
            f"#EXTINF:5.0,\n{target}\n#EXT-X-ENDLIST\n"
        ).encode()
        cases[f"dash-{name}"] = (
            '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            'mediaPresentationDuration="PT5S"><Period><AdaptationSet mimeType="audio/wav">'
            f'<Representation id="a" bandwidth="256000"><BaseURL>{target}</BaseURL>'
            "</Representation></AdaptationSet></Period></MPD>"
        ).encode()
    cases["sdp-rtp"] = (
        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 0\r\n"
    )
    cases["ffmetadata"] = b";FFMETADATA1\ntitle=x\n"
    # A genuine container signature in front of a playlist: the signature's own demuxer
    # reads it (and finds no audio), never the playlist's.
    cases["wav-header-then-concat"] = b"RIFF\x24\x00\x00\x00WAVEfmt " + cases["ffconcat-relative"]
    cases["id3-then-concat"] = b"ID3\x04\x00\x00\x00\x00\x00\x00" + cases["ffconcat-relative"]
    return cases


def test_the_secret_is_a_real_recording_that_would_be_heard(secret_wav: Path) -> None:
    # The control: were any trick to reach the file, its transcript would show it.
    audio = decode_audio(secret_wav.read_bytes())
    assert len(audio) > 16_000


@pytest.mark.parametrize("trick", sorted(tricks(Path("var/x.wav"))))
def test_decoding_refuses_every_container_trick(secret_wav: Path, trick: str) -> None:
    with pytest.raises(SpeechError) as raised:
        decode_audio(tricks(secret_wav)[trick])
    assert raised.value.kind.value == "bad_audio"


async def test_no_upload_endpoint_reveals_a_server_file(doctor: Agent, secret_wav: Path) -> None:
    recording = secret_wav.read_bytes()  # noqa: ASYNC240 (test set-up, a small local file)
    control = await post_file("/processAudioFile/", recording)
    assert control.status == 200
    assert "launch" in control.headers["x-transcript"].lower()
    before = await stored()

    for name, data in tricks(secret_wav).items():
        for fields in ({}, {"sample_rate": "16000"}):
            reply = await post_file("/processAudioFile/", data, fields=fields)
            seen = (reply.body + str(reply.headers).encode()).decode(errors="replace").lower()
            assert not any(word in seen for word in SECRET_WORDS), (name, fields, reply.status)
            assert reply.status in (400, 422), (name, fields, reply.status, reply.body[:200])
    # Refused uploads store nothing.
    assert await stored() == before


def test_uploads_are_recognised_by_their_own_signature() -> None:
    speech = say("Hello.")
    for container, codec, rate, expected in [
        ("wav", "pcm_s16le", 16_000, "wav"),
        ("mp3", "libmp3lame", 22_050, "mp3"),
        ("ogg", "libopus", 48_000, "ogg"),
        ("webm", "libopus", 48_000, "matroska"),
        ("flac", "flac", 16_000, "flac"),
        ("ipod", "aac", 16_000, "mov"),
        ("adts", "aac", 16_000, "aac"),
        ("aiff", "pcm_s16be", 16_000, "aiff"),
    ]:
        data = encoded(speech, container, codec, rate)
        assert sniff_container(data) == expected, container
        # AAC adds whole 1024-sample frames of priming and padding.
        assert abs(len(decode_audio(data)) - len(speech)) <= 2 * 1024 + 64, container
    assert sniff_container(b"#EXTM3U\n") is None
    assert sniff_container(b"") is None
