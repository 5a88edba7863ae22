"""A local fake of ElevenLabs' streaming-input WebSocket, for tests of the real client code.

``FakeElevenLabs`` serves ``/v1/text-to-speech/{voice_id}/stream-input`` with the
``websockets`` server on a free port of 127.0.0.1, in a background thread with its own event
loop, so the provider under test opens a real socket and parses real frames::

    with FakeElevenLabs() as fake:
        os.environ["ELEVENLABS_BASE_URL"] = fake.base_url      # ws://127.0.0.1:PORT
        fake.audio_pcm = tone_pcm16(0.25)                     # what it "says" (16 kHz)
        fake.fail_next("Invalid API key", error="invalid_api_key")
        ...
        fake.sessions[-1].messages                            # every message, parsed

The wire shapes are the documented ones: the client sends ``{"text": " ", "xi_api_key",
"voice_settings"}``, then text, then ``{"text": ""}``; the fake answers ``{"audio": <base64>,
"isFinal": false, ...}`` messages and then ``{"isFinal": true}``, and closes with 1000. A
failure is an error message ``{"message", "error", "code"}`` followed by a close with 1008,
as the official SDK expects (the exact codes the service uses are not documented in full).
Unlike the service, the fake speaks only after ``{"text": ""}``, all at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http
import json
import math
import re
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["DEFAULT_KEY", "FakeElevenLabs", "FakeSession", "tone_pcm16"]

DEFAULT_KEY = "xi-test-key"
_PATH = re.compile(r"^/v1/text-to-speech/(?P<voice_id>[^/]+)/stream-input$")


def tone_pcm16(seconds: float, rate: int = 16_000, hz: float = 440.0) -> bytes:
    """A sine tone as s16le mono PCM."""
    count = round(seconds * rate)
    samples = (round(8000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(count))
    return struct.pack(f"<{count}h", *samples)


@dataclass
class FakeSession:
    """One connection as the fake saw it."""

    voice_id: str
    query: dict[str, str]
    headers: dict[str, str]
    messages: list[Any] = field(default_factory=list)  # every message received, parsed
    audio_messages_sent: int = 0
    final_sent: bool = False
    # The client closed the socket before the fake had sent everything.
    client_left_early: bool = False

    @property
    def text(self) -> str:
        """The text the client asked to be spoken (after the opening ``" "``)."""
        return "".join(m.get("text", "") for m in self.messages[1:] if isinstance(m, dict))


@dataclass
class _Fault:
    kind: Literal["refuse", "error", "stall", "drop"]
    status: int = 0
    message: str = ""
    error: str = ""
    seconds: float = 0.0
    after_chunks: int = 0


class FakeElevenLabs:
    """The fake server; a context manager that starts and stops it.

    ``api_key`` is the only key it accepts; ``audio_pcm`` (16 kHz s16le) is sent in pieces of
    ``chunk_bytes``, ``chunk_delay_s`` apart. State set from the test thread is read by the
    server thread between connections.
    """

    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        self.api_key = api_key
        self.audio_pcm = tone_pcm16(0.25)
        self.chunk_bytes = 3200
        self.chunk_delay_s = 0.0
        self.sessions: list[FakeSession] = []
        self.errors: list[BaseException] = []  # bugs in the fake, for the test to see
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._port = 0

    # --- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to set ``ELEVENLABS_BASE_URL`` to: ``ws://127.0.0.1:PORT``."""
        if not self._port:
            raise RuntimeError("FakeElevenLabs is not running")
        return f"ws://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Serve on a free port; returns once the server accepts connections."""
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="fake-elevenlabs", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or not self._port:
            raise RuntimeError("FakeElevenLabs did not start")

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self._loop = None
        self._port = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget sessions, faults and errors, and restore the default audio (between tests)."""
        with self._lock:
            self.api_key = DEFAULT_KEY
            self.audio_pcm = tone_pcm16(0.25)
            self.chunk_bytes = 3200
            self.chunk_delay_s = 0.0
            self.sessions.clear()
            self.errors.clear()
            self._faults.clear()

    # --- faults --------------------------------------------------------------------

    def refuse_next(self, status: int) -> None:
        """Answer the next handshake with this HTTP status instead of a WebSocket."""
        self._add(_Fault("refuse", status=status))

    def fail_next(self, message: str, *, error: str = "") -> None:
        """Answer the next stream with an error message and a 1008 close, and no audio."""
        self._add(_Fault("error", message=message, error=error))

    def stall_next(self, seconds: float) -> None:
        """Wait ``seconds`` before the next stream's first audio."""
        self._add(_Fault("stall", seconds=seconds))

    def drop_next(self, after_chunks: int) -> None:
        """Close the next stream with 1011 (internal error) after ``after_chunks`` pieces."""
        self._add(_Fault("drop", after_chunks=after_chunks))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, *kinds: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds:
                    self._faults.remove(fault)
                    return fault
        return None

    # --- the server ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server: Server
        async with serve(
            self._handle, "127.0.0.1", 0, process_request=self._check_request
        ) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if _PATH.match(urllib.parse.urlsplit(request.path).path) is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        fault = self._take("refuse")
        if fault is not None:
            return connection.respond(http.HTTPStatus(fault.status), "Refused by the fake\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        url = urllib.parse.urlsplit(connection.request.path)
        match = _PATH.match(url.path)
        assert match is not None  # _check_request refused anything else
        session = FakeSession(
            voice_id=urllib.parse.unquote(match["voice_id"]),
            query=dict(urllib.parse.parse_qsl(url.query)),
            headers={name.lower(): value for name, value in connection.request.headers.raw_items()},
        )
        with self._lock:
            self.sessions.append(session)
        try:
            await self._converse(connection, session)
        except ConnectionClosed:
            session.client_left_early = not session.final_sent
        except Exception as exc:  # a bug in the fake: keep it for the test to see
            self.errors.append(exc)
            await connection.close(1011, "fake failed")

    async def _converse(self, connection: ServerConnection, session: FakeSession) -> None:
        first = await self._receive(connection, session)
        if not isinstance(first, dict) or first.get("text") != " ":
            await self._fail(connection, "The first message must be {'text': ' '}.", "bad_input")
            return
        if first.get("xi_api_key") != self.api_key:
            await self._fail(connection, "Invalid API key", "invalid_api_key")
            return
        fault = self._take("error")
        if fault is not None:
            await self._fail(connection, fault.message, fault.error)
            return
        while True:  # text until the end-of-input message
            message = await self._receive(connection, session)
            if isinstance(message, dict) and message.get("text") == "":
                break
        stall, drop = self._take("stall"), self._take("drop")
        if stall is not None:
            await asyncio.sleep(stall.seconds)
        pcm, size = self.audio_pcm, self.chunk_bytes
        for index, start in enumerate(range(0, len(pcm), size)):
            if drop is not None and index == drop.after_chunks:
                await connection.close(1011, "Internal server error")
                return
            if index and self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            audio = base64.b64encode(pcm[start : start + size]).decode("ascii")
            await connection.send(
                json.dumps(
                    {
                        "audio": audio,
                        "isFinal": False,
                        "normalizedAlignment": None,
                        "alignment": None,
                    }
                )
            )
            session.audio_messages_sent += 1
        await connection.send(json.dumps({"isFinal": True}))
        session.final_sent = True
        await connection.close(1000)

    async def _receive(self, connection: ServerConnection, session: FakeSession) -> Any:
        raw = await connection.recv()
        message: Any = raw
        with contextlib.suppress(ValueError):
            message = json.loads(raw)
        session.messages.append(message)
        return message

    async def _fail(self, connection: ServerConnection, message: str, error: str) -> None:
        await connection.send(json.dumps({"message": message, "error": error, "code": 1008}))
        await connection.close(1008, message[:120])
