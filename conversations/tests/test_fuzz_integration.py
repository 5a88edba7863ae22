"""Generated frames against a real server process: every bad frame gets its documented
error, nothing crashes, and the process still serves valid traffic afterwards.

Hypothesis writes the frames; one socket per test carries thousands of them. After each
frame a *probe* whose answer is known exactly is sent, and everything the server says
until that answer arrives must be a documented frame: that is how a frame that gets no
reply (audio, a state report) is told apart from one that was silently lost.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from conversations.tests.hume_payloads import payload, sparse_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    # The WebSocket client masks each frame with the random module; Hypothesis notices.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

CLM_LIMIT = 2048  # the server runs with this frame limit, so a probe can be made too large
VOICE_LIMIT = 4096
# FUZZ_SCALE shrinks a run (scripts/stress.sh repeats the suite many times with 0.05).
_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
EXAMPLES = max(50, int(4000 * _SCALE))  # per socket type
HTTP_EXAMPLES = max(50, int(2000 * _SCALE))  # requests; 10,000 frames and requests in all
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CLM_ERRORS = {"invalid_json", "invalid_payload", "payload_too_large"}
VOICE_ERRORS = {
    "bad_frame",
    "unknown_type",
    "frame_too_large",
    "not_open",
    "already_open",
    "bad_audio",
    "bad_format",
    "bad_state",
    "overloaded",
    "login_required",
    "unknown_agent",
    "inactive_agent",
}
VOICE_TYPES = {"token", "audio", "interrupt", "session", "transcript", "reply", "metrics", "error"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
# Text no column can store: lone surrogates (JSON escapes them) and U+0000, alone or in words.
unstorable = st.builds(
    lambda a, bad, b: a + bad + b,
    st.text(max_size=10),
    st.sampled_from(["\x00"]) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=10),
)
words = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | unstorable
roles = st.sampled_from(["user", "assistant", "system"]) | json_values
message_types = st.sampled_from(["user_message", "assistant_message", "tool_call"]) | json_values
hume_message = st.fixed_dictionaries(
    {
        "type": message_types,
        "message": st.fixed_dictionaries({"role": roles, "content": words | json_values}),
    },
    optional={
        "models": st.fixed_dictionaries(
            {
                "prosody": st.fixed_dictionaries(
                    {"scores": st.dictionaries(st.text(max_size=12), json_values, max_size=3)}
                )
            }
        )
        | json_values,
        "time": st.fixed_dictionaries({"begin": json_values, "end": json_values}),
    },
)
hume_payload = st.fixed_dictionaries(
    {"messages": st.lists(hume_message | json_values, max_size=4) | json_values},
    optional={"custom_session_id": st.text(max_size=20) | json_values, "type": json_values},
)
clm_frames = st.one_of(
    st.text(max_size=300).map(lambda t: ("text", t)),
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    json_values.map(lambda v: ("text", json.dumps(v))),
    hume_payload.map(lambda p: ("text", json.dumps(p))),
    words.map(lambda w: ("text", payload([sparse_user(w)], "fuzz"))),
    st.integers(CLM_LIMIT + 1, CLM_LIMIT * 3).map(lambda n: ("text", "x" * n)),
)


def _pcm(samples: list[float]) -> bytes:
    return np.asarray(samples, dtype="<f4").tobytes()


# What msgpack can carry: integers within 64 bits, and binary as well as text.
pack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.binary(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
voice_messages = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("open")},
        optional={
            "format": st.sampled_from(["pcm_44100", "pcm_16000"]) | pack_values,
            "agent": st.just("fuzz") | pack_values,
            "conversation": st.text(max_size=40) | pack_values,
            "prompt": pack_values,
            "reports_played": st.booleans() | pack_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("audio"),
            "audio": st.lists(st.floats(-1, 1, width=32), max_size=400).map(_pcm)
            | st.binary(max_size=400)
            | pack_values,
        }
    ),
    st.fixed_dictionaries({"type": st.just("state"), "state": st.just("waiting") | pack_values}),
    st.fixed_dictionaries(
        {
            "type": st.just("played"),
            "token": st.from_regex(r"\A[a-z]{8}\Z") | pack_values,
            "ms": st.floats() | st.integers(-(2**63), 2**64 - 1) | pack_values,
        }
    ),
    st.dictionaries(st.text(max_size=10), pack_values, max_size=4),
    pack_values,
)
voice_frames = st.one_of(
    voice_messages.map(lambda m: ("bytes", msgpack.packb(m, use_bin_type=True))),
    st.binary(max_size=500).map(lambda b: ("bytes", b)),
    st.text(max_size=100).map(lambda t: ("text", t)),
    st.integers(VOICE_LIMIT + 1, VOICE_LIMIT * 2).map(lambda n: ("bytes", b"\x00" * n)),
)


def _send(socket: ClientConnection, frame: tuple[str, Any]) -> None:
    kind, data = frame
    socket.send(data if kind == "bytes" else str(data))


@pytest.fixture
def fuzz_server(make_agent, start_server) -> Iterator[Any]:
    make_agent(slug="fuzz", is_public=True)
    server = start_server(
        CLM_MAX_FRAME_BYTES=str(CLM_LIMIT),
        VOICE_MAX_FRAME_BYTES=str(VOICE_LIMIT),
        VOICE_MAX_SESSIONS_PER_CLIENT="1000",
    )
    yield server
    log = server.log()
    assert "Traceback" not in log, log[-4000:]
    assert not re.search(r"\bERROR\b", log), log[-4000:]


class Reconnecting:
    """A socket that is opened again whenever the server closes it (as documented)."""

    def __init__(
        self,
        url: str,
        on_open: Callable[[ClientConnection], None] | None = None,
        origin: str | None = None,
    ):
        self.url = url
        self.origin = origin
        self.on_open = on_open
        self.socket: ClientConnection | None = None
        self.reconnects = 0

    def get(self) -> ClientConnection:
        if self.socket is None:
            # Closed explicitly in drop() or at the end of the test.
            self.socket = connect(
                self.url,
                max_size=None,
                open_timeout=10,
                origin=None if self.origin is None else Origin(self.origin),
            ).__enter__()
            if self.on_open is not None:
                self.on_open(self.socket)
        return self.socket

    def drop(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.socket = None
        self.reconnects += 1


def _clm_until_probe(socket: ClientConnection, probes: int) -> list[dict[str, Any]]:
    """Frames up to and including the ``probes``-th payload_too_large answer."""
    seen: list[dict[str, Any]] = []
    while probes:
        frame = json.loads(socket.recv(timeout=20))
        seen.append(frame)
        if frame["type"] == "error" and frame["code"] == "payload_too_large":
            probes -= 1
    return seen


def test_generated_custom_llm_frames_get_documented_answers(fuzz_server) -> None:
    clm = Reconnecting(f"{fuzz_server.ws_url}/llm/fuzz")
    probe = "p" * (CLM_LIMIT + 10)
    counts: dict[str, int] = {}

    @FUZZ
    @given(frame=clm_frames)
    def check(frame: tuple[str, Any]) -> None:
        socket = clm.get()
        _send(socket, frame)
        socket.send(probe)
        oversize = len(frame[1]) > CLM_LIMIT
        seen = _clm_until_probe(socket, 2 if oversize else 1)
        for answer in seen:
            assert answer["type"] in {"assistant_input", "assistant_end", "error"}, answer
            if answer["type"] == "error":
                assert answer["code"] in CLM_ERRORS, answer
                assert isinstance(answer["message"], str)
                assert answer["message"]
                counts[answer["code"]] = counts.get(answer["code"], 0) + 1
        if frame[0] == "text" and not oversize and _not_json(frame[1]):
            assert {"type": "error", "code": "invalid_json"} in [
                {"type": a["type"], "code": a.get("code")} for a in seen
            ], seen

    check()
    assert clm.reconnects == 0  # no generated frame closes the custom-LLM socket
    assert counts.get("invalid_json", 0) > 0
    assert counts.get("invalid_payload", 0) > 0
    # Still serving: a valid payload is answered in full, on a fresh socket too.
    socket = clm.get()
    _drain_replies(socket)
    for live in (socket, connect(f"{fuzz_server.ws_url}/llm/fuzz").__enter__()):
        live.send(payload([sparse_user("I am sad about my work.")], "after-fuzz"))
        frames = _drain_replies(live, until_end=True)
        assert frames[-1]["type"] == "assistant_end"
        assert any(f["type"] == "assistant_input" and f["text"] for f in frames)
        live.close()


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _drain_replies(socket: ClientConnection, *, until_end: bool = False) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frame = json.loads(socket.recv(timeout=20 if until_end else 0.5))
        except TimeoutError:
            return frames
        frames.append(frame)
        if until_end and frame["type"] == "assistant_end":
            return frames


def _voice_until_probe(socket: ClientConnection, name: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        frame = msgpack.unpackb(socket.recv(timeout=30), raw=False)
        seen.append(frame)
        if frame.get("type") == "error" and f"'{name}'" in frame.get("message", ""):
            return seen


def test_generated_audio_socket_frames_get_documented_answers(fuzz_server) -> None:
    def open_session(socket: ClientConnection) -> None:
        socket.send(msgpack.packb({"type": "open", "format": "pcm_16000"}))

    # The audio socket is for the site's own pages: it must come with their Origin.
    voice = Reconnecting(
        f"{fuzz_server.ws_url}/agents/fuzz/conversation", open_session, fuzz_server.http_url
    )
    counter = iter(range(10**9))
    codes: set[str] = set()

    @FUZZ
    @given(frame=voice_frames)
    def check(frame: tuple[str, Any]) -> None:
        socket = voice.get()
        name = f"probe-{next(counter)}"
        try:
            _send(socket, frame)
            socket.send(msgpack.packb({"type": name}))
            seen = _voice_until_probe(socket, name)
        except ConnectionClosed as closed:
            ended: ConnectionClosed | None = closed
        else:
            ended = None
        if ended is not None:
            # The one documented way a generated frame ends the socket: the client's 'close'.
            assert ended.rcvd is not None
            assert ended.rcvd.code == 1000, ended
            voice.drop()
            return
        for answer in seen:
            assert isinstance(answer, dict), answer
            assert answer.get("type") in VOICE_TYPES, answer
            if answer["type"] == "error":
                assert answer["code"] in VOICE_ERRORS, answer
                codes.add(answer["code"])
        if frame[0] == "text":
            assert "bad_frame" in [a.get("code") for a in seen], seen

    check()
    assert {"bad_frame", "unknown_type", "frame_too_large"} <= codes
    # Still serving: a new session opens and is greeted with speech.
    with connect(
        f"{fuzz_server.ws_url}/agents/fuzz/conversation",
        max_size=None,
        origin=Origin(fuzz_server.http_url),
    ) as socket:
        open_session(socket)
        kinds: list[str] = []
        while "audio" not in kinds:
            kinds.append(msgpack.unpackb(socket.recv(timeout=60), raw=False)["type"])
        assert kinds[0] == "token"


# --- the text chat socket ----------------------------------------------------------------

CHAT_ERRORS = {"bad_frame", "empty_message", "message_too_long"}
chat_messages = st.fixed_dictionaries(
    {"type": st.just("message") | json_values},
    optional={"text": words | json_values, "extra": json_values},
)
chat_frames = st.one_of(
    chat_messages.map(lambda m: json.dumps(m)),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 2000).map(lambda n: "[" * n + "]" * n),  # nesting, up to deep
)
# Longer than any generated text: its answer (message_too_long) marks the end of a step.
CHAT_PROBE = json.dumps({"type": "message", "text": "x" * 5000})


def test_generated_chat_frames_get_documented_answers(fuzz_server) -> None:
    chat = Reconnecting(
        f"{fuzz_server.ws_url}/agents/fuzz/chat",
        lambda socket: json.loads(socket.recv(timeout=20)),  # the session frame
        fuzz_server.http_url,
    )
    codes: set[str] = set()

    @settings(
        max_examples=HTTP_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(frame=chat_frames)
    def check(frame: str) -> None:
        socket = chat.get()
        socket.send(frame)
        socket.send(CHAT_PROBE)
        while True:  # every frame up to the probe's answer is one the README documents
            answer = json.loads(socket.recv(timeout=20))
            assert answer.get("type") in {"delta", "done", "error"}, answer
            if answer["type"] == "error":
                assert answer["code"] in CHAT_ERRORS, answer
                codes.add(answer["code"])
                if answer["code"] == "message_too_long":
                    break

    check()
    assert chat.reconnects == 0  # no generated frame closes the chat socket
    assert {"bad_frame", "empty_message"} <= codes
    # Still serving: a plain message is answered in full.
    socket = chat.get()
    socket.send(json.dumps({"type": "message", "text": "I am sad about my work."}))
    while (answer := json.loads(socket.recv(timeout=20)))["type"] != "done":
        assert answer["type"] == "delta", answer
    assert answer["text"]


# --- HTTP endpoints ----------------------------------------------------------------------

HTTP_TARGETS = [
    "/processText/",
    "/processText",
    "/processAudioFile/",
    "/queryAssistant/",
    "/queryAssistant",
    "/clearCache/",
    "/llm/fuzz/chat/completions",
    "/llm/chat/completions",
    "/api/agents/",
    "/api/conversations/",
    "/api/documents/",
]
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzzboundary",
    "multipart/form-data",
    "",
]
text_values = st.one_of(json_values, st.text(max_size=20), st.just(""), unstorable)
json_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={"text": text_values}),
    st.fixed_dictionaries({}, optional={"prompt": text_values, "address": text_values}),
    st.fixed_dictionaries({"messages": st.lists(json_values, max_size=3) | json_values}),
    json_values,
).map(lambda v: json.dumps(v).encode())


def _multipart(parts: list[tuple[str, str, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--fuzzboundary\r\nContent-Disposition: " + disposition.encode()
        out += b"\r\n\r\n" + data + b"\r\n"
    return out + b"--fuzzboundary--\r\n"


multipart_bodies = st.lists(
    st.tuples(
        st.sampled_from(["file", "sample_rate", "title", "agents", "x"]) | st.text(max_size=8),
        st.sampled_from(["", "a.wav", "../../etc/passwd", "x.mp3"]) | st.text(max_size=12),
        st.binary(max_size=300) | st.sampled_from([b"16000", b"0", b"-5", b"abc", b"99999999"]),
    ).filter(
        lambda p: '"' not in p[0] + p[1] and "\r" not in p[0] + p[1] and "\n" not in p[0] + p[1]
    ),
    max_size=3,
).map(_multipart)
requests = st.tuples(
    st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]),
    st.sampled_from(HTTP_TARGETS),
    st.dictionaries(
        st.sampled_from(["text", "agent", "format", "sample_rate", "custom_session_id", "page"]),
        st.text(max_size=12),
        max_size=2,
    ),
    st.sampled_from(CONTENT_TYPES),
    st.one_of(json_bodies, multipart_bodies, st.binary(max_size=400), st.just(b"")),
)


def test_generated_http_requests_get_documented_answers(fuzz_server) -> None:
    statuses: dict[int, int] = {}

    @settings(
        max_examples=HTTP_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests)
    def check(request: tuple[str, str, dict[str, str], str, bytes]) -> None:
        method, path, query, content_type, body = request
        status, headers, data = _http(fuzz_server.port, method, path, query, content_type, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, data[:500])
        if status >= 400 and headers.get("content-type", "").startswith("application/json"):
            error = json.loads(data)["error"]
            assert isinstance(error["code"], str)
            assert isinstance(error["message"], str)
        elif status >= 400:  # only Django's bare 405 for a method a view does not take
            assert (status, data) == (405, b""), (status, headers, data[:300])

    check()
    assert {400, 401, 405} <= set(statuses)
    # Still serving: a valid request of each kind is answered.
    status, headers, data = _http(
        fuzz_server.port,
        "POST",
        "/queryAssistant/",
        {},
        "application/json",
        json.dumps({"prompt": "I am unhappy.", "address": "after-fuzz"}).encode(),
    )
    assert status == 200
    assert json.loads(data)["content"]
    status, headers, data = _http(
        fuzz_server.port,
        "POST",
        "/processText/",
        {"format": "wav"},
        "application/json",
        json.dumps({"text": "Hello there."}).encode(),
    )
    assert (status, headers["content-type"], data[:4]) == (200, "audio/wav", b"RIFF")


def _http(
    port: int, method: str, path: str, query: dict[str, str], content_type: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()
