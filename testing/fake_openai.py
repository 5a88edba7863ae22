"""A local fake of the OpenAI HTTP API, for tests that drive the real ``openai`` client.

``FakeOpenAI`` serves a small ASGI app (written against the ASGI spec, no framework)
with uvicorn on a free port of 127.0.0.1, in a background thread, so the code under
test talks real HTTP and the SDK parses real wire data: SSE streams for
``POST /v1/responses`` and ``POST /v1/chat/completions``, JSON for the rest. ::

    with FakeOpenAI() as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
        fake.reply_text = "Hello there."
        fake.fail_next(status=429)                # the next request answers 429
        ...
        fake.requests[-1].json["input"]           # every request is recorded

Routes live in a table (``fake.routes``); add one with :meth:`FakeOpenAI.add_route` and
a handler that returns a :class:`JSONReply` or a :class:`StreamReply`. Failures are
injected per request: :meth:`~FakeOpenAI.fail_next` (an HTTP error status),
:meth:`~FakeOpenAI.stall_next` (a pause before the first delta, for timeouts) and
:meth:`~FakeOpenAI.disconnect_next` (the connection drops mid-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.parser
import email.policy
import io
import itertools
import json
import math
import re
import secrets
import socket
import struct
import threading
import time
import urllib.parse
import wave
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn

__all__ = [
    "DEFAULT_REPLY",
    "DEFAULT_TRANSCRIPT",
    "SPEECH_PCM_RATE",
    "AudioUpload",
    "BytesReply",
    "FakeOpenAI",
    "Handler",
    "JSONReply",
    "RecordedRequest",
    "Reply",
    "Route",
    "SSEEvent",
    "StreamReply",
    "openai_error",
    "split_deltas",
    "tone_pcm",
]

DEFAULT_REPLY = "Hello from the fake model."
DEFAULT_TRANSCRIPT = "Hello from the fake transcriber."
#: The rate of ``/v1/audio/speech`` with ``response_format="pcm"``.
SPEECH_PCM_RATE = 24_000


def tone_pcm(seconds: float, rate: int = SPEECH_PCM_RATE, hz: float = 440.0) -> bytes:
    """A sine tone as s16le mono PCM: what the fake's speech endpoint says by default."""
    count = round(seconds * rate)
    samples = (round(8000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(count))
    return struct.pack(f"<{count}h", *samples)


ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]


@dataclass
class RecordedRequest:
    """One request as the fake received it. Header names are lower case."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any = None  # the parsed body, or None when it is not JSON (e.g. multipart)
    # The client went away before the response was complete (a cancel, a timeout).
    disconnected: bool = False


@dataclass(frozen=True)
class JSONReply:
    """A plain JSON response."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event; ``is_delta`` marks text deltas (where faults and delays apply)."""

    data: str
    event: str | None = None
    is_delta: bool = False

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {self.data}\n\n".encode()


@dataclass(frozen=True)
class StreamReply:
    """A ``text/event-stream`` response, sent event by event."""

    events: Sequence[SSEEvent]
    status: int = 200


@dataclass(frozen=True)
class BytesReply:
    """A binary response (audio), sent piece by piece; faults and delays apply per piece."""

    chunks: Sequence[bytes]
    content_type: str = "application/octet-stream"
    status: int = 200


@dataclass(frozen=True)
class AudioUpload:
    """A WAV file sent to ``/v1/audio/transcriptions``, with the form's text fields."""

    fields: dict[str, str]
    filename: str
    data: bytes
    channels: int
    sample_width: int  # bytes per sample
    sample_rate: int
    frames: int


Reply = JSONReply | StreamReply | BytesReply
Handler = Callable[[RecordedRequest, Mapping[str, str]], Reply]
ReplyFunction = Callable[[RecordedRequest], str | Sequence[str]]


@dataclass(frozen=True)
class Route:
    """``method`` + a path template such as ``/v1/conversations/{conversation_id}/items``."""

    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route serves the request, else None."""
        if method != self.method:
            return None
        found = self.pattern.match(path)
        return found.groupdict() if found else None


@dataclass
class _Fault:
    kind: Literal["status", "stall", "disconnect"]
    path: str | None
    remaining: int
    status: int = 500
    message: str | None = None
    code: str | None = None
    seconds: float = 0.0
    after_deltas: int = 0
    method: str | None = None  # None: any method


# What the real API sends for the statuses tests inject: (type, code, message).
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to make this request."),
    404: ("invalid_request_error", None, "Not found."),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(
    status: int, message: str | None = None, *, code: str | None = None, param: str | None = None
) -> JSONReply:
    """An error response shaped like OpenAI's: ``{"error": {message, type, param, code}}``."""
    kind, default_code, default_message = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    error = {
        "message": message or default_message,
        "type": kind,
        "param": param,
        "code": code or default_code,
    }
    return JSONReply({"error": error}, status=status)


def split_deltas(text: str) -> list[str]:
    """Split text into token-like deltas, each word with its leading whitespace."""
    return re.findall(r"\s*\S+|\s+$", text)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


class FakeOpenAI:
    """The fake server; a context manager that starts and stops it.

    ``reply_text`` (or ``reply``, a function of the request returning the text or its
    deltas) decides what the model says; ``delta_delay_s`` spaces out deltas. State set
    from the test thread is read by the server thread between requests.
    """

    def __init__(self, *, reply_text: str = DEFAULT_REPLY) -> None:
        self.reply_text = reply_text
        self.reply: ReplyFunction | None = None
        self.delta_delay_s = 0.0
        self.requests: list[RecordedRequest] = []
        # Exceptions raised by handlers: answered as 500 and kept here, so that a bug in
        # the fake does not pass for a server error the test meant to provoke.
        self.errors: list[BaseException] = []
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self.routes: list[Route] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.add_route("POST", "/v1/responses", self._create_response)
        self.add_route("POST", "/v1/conversations", self._create_conversation)
        self.add_route("POST", "/v1/conversations/{conversation_id}/items", self._add_items)
        self.add_route("POST", "/v1/chat/completions", self._create_chat_completion)
        # Files and vector stores (state in self.files, self.vector_stores).
        self.files: dict[str, dict[str, Any]] = {}
        self.file_data: dict[str, bytes] = {}
        self.vector_stores: dict[str, dict[str, Any]] = {}
        self.vector_store_files: dict[str, dict[str, dict[str, Any]]] = {}
        self.add_route("POST", "/v1/files", self._create_file)
        self.add_route("GET", "/v1/files", self._list_files)
        self.add_route("GET", "/v1/files/{file_id}", self._retrieve_file)
        self.add_route("DELETE", "/v1/files/{file_id}", self._delete_file)
        self.add_route("POST", "/v1/vector_stores", self._create_vector_store)
        self.add_route("GET", "/v1/vector_stores", self._list_vector_stores)
        self.add_route("GET", "/v1/vector_stores/{store_id}", self._retrieve_vector_store)
        self.add_route("DELETE", "/v1/vector_stores/{store_id}", self._delete_vector_store)
        self.add_route("POST", "/v1/vector_stores/{store_id}/files", self._attach_file)
        self.add_route("GET", "/v1/vector_stores/{store_id}/files", self._list_store_files)
        self.add_route(
            "GET", "/v1/vector_stores/{store_id}/files/{file_id}", self._retrieve_store_file
        )
        self.add_route("DELETE", "/v1/vector_stores/{store_id}/files/{file_id}", self._detach_file)
        # Audio: transcriptions answer transcript_text; speech streams speech_pcm (24 kHz).
        self.transcript_text = DEFAULT_TRANSCRIPT
        self.speech_pcm = tone_pcm(0.25)
        self.speech_chunk_bytes = 4800
        self.audio_uploads: list[AudioUpload] = []
        self.add_route("POST", "/v1/audio/transcriptions", self._create_transcription)
        self.add_route("POST", "/v1/audio/speech", self._create_speech)

    # --- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to pass as the client's ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        if not self._port:
            raise RuntimeError("FakeOpenAI is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> None:
        """Serve on a free port; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, a response's headers and body
        # (two writes) wait on the client's delayed ACK, ~40 ms per keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Binding port 0 here and handing uvicorn the socket avoids a find-then-bind race.
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            # Leave the process's logging configuration alone (`access_log=False` would
            # too: it rewires the global "uvicorn.access" logger).
            log_config=None,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeOpenAI did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
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
        """Forget requests, faults, conversations, files, stores and replies (between tests).

        Routes added with :meth:`add_route` stay.
        """
        with self._lock:
            self.reply_text = DEFAULT_REPLY
            self.reply = None
            self.delta_delay_s = 0.0
            self.requests.clear()
            self.errors.clear()
            self.conversations.clear()
            self._faults.clear()
            self.files.clear()
            self.file_data.clear()
            self.vector_stores.clear()
            self.vector_store_files.clear()
            self.transcript_text = DEFAULT_TRANSCRIPT
            self.speech_pcm = tone_pcm(0.25)
            self.speech_chunk_bytes = 4800
            self.audio_uploads.clear()

    # --- configuration -----------------------------------------------------------

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Serve ``method template`` with ``handler(request, path_params) -> Reply``."""
        self.routes.append(Route(method, template, handler))

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        *,
        path: str | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, or any) with an error status."""
        self._add_fault(_Fault("status", path, times, status=status, message=message, code=code))

    def stall_next(
        self, seconds: float, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Pause ``seconds`` before the first delta (JSON replies: before answering).

        The request itself is handled first: a stalled upload has created its file, as a
        server that did the work but whose answer never arrived.
        """
        self._add_fault(_Fault("stall", path, times, seconds=seconds, method=method))

    def disconnect_next(
        self, after_deltas: int = 1, times: int = 1, *, path: str | None = None
    ) -> None:
        """Drop the connection after ``after_deltas`` deltas (JSON: after the headers)."""
        self._add_fault(_Fault("disconnect", path, times, after_deltas=after_deltas))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for one path, oldest first."""
        return [request for request in self.requests if request.path == path]

    def reply_deltas(self, request: RecordedRequest) -> list[str]:
        """The scripted reply for ``request``, as deltas."""
        reply = self.reply(request) if self.reply is not None else self.reply_text
        return split_deltas(reply) if isinstance(reply, str) else list(reply)

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.remaining > 0
                    and fault.path in (None, path)
                    and fault.method in (None, method)
                ):
                    fault.remaining -= 1
                    return fault
        return None

    # --- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: ASGIMessage, receive: Receive, send: Send) -> None:
        """The ASGI 3 application."""
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers={
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in scope["headers"]
            },
            body=bytes(body),
        )
        with contextlib.suppress(ValueError):
            request.json = json.loads(body) if body else None
        with self._lock:
            self.requests.append(request)
        exchange = _Exchange(receive, send, request)
        watcher = asyncio.create_task(exchange.watch())
        try:
            fault = self._take_fault(request.path, request.method)
            if fault is not None and fault.kind == "status":
                reply: Reply = openai_error(fault.status, fault.message, code=fault.code)
            else:
                reply = self._dispatch(request)
            await exchange.respond(reply, fault, self.delta_delay_s)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _dispatch(self, request: RecordedRequest) -> Reply:
        for route in self.routes:
            params = route.match(request.method, request.path)
            if params is not None:
                try:
                    return route.handler(request, params)
                except Exception as exc:  # a bug in the fake: keep it for the test to see
                    self.errors.append(exc)
                    return openai_error(500, f"fake handler failed: {exc!r}")
        return openai_error(404, f"Invalid URL ({request.method} {request.path})")

    # --- /v1/responses -------------------------------------------------------------

    def _create_response(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        if not body.get("model"):
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        conversation = body.get("conversation")
        conversation_id = conversation.get("id") if isinstance(conversation, dict) else conversation
        if conversation_id and conversation_id not in self.conversations:
            return openai_error(
                404, f"Conversation with id '{conversation_id}' not found.", param="conversation"
            )
        deltas = self.reply_deltas(request)
        text = "".join(deltas)
        response_id = _new_id("resp")
        message_id = _new_id("msg")
        tools = body.get("tools") or []
        searches = any(tool.get("type") == "file_search" for tool in tools)
        search_call: dict[str, Any] = {
            "id": _new_id("fs"),
            "type": "file_search_call",
            "status": "completed",
            "queries": [_user_text(body.get("input"))],
            "results": None,
        }
        text_part: dict[str, Any] = {
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": text,
        }
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [text_part],
        }
        output = [search_call, message] if searches else [message]
        words = len(text.split())
        usage = {
            "input_tokens": len(json.dumps(body.get("input"))) // 4,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": words,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": len(json.dumps(body.get("input"))) // 4 + words,
        }

        def response(status: str, out: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return _response_object(
                response_id, body, conversation_id, status, out, usage if with_usage else None
            )

        if conversation_id:
            items = self.conversations[conversation_id]
            items.extend(_conversation_items(body.get("input")))
            items.append(message)
        if not body.get("stream"):
            return JSONReply(response("completed", output, True))

        sequence = itertools.count()
        events: list[SSEEvent] = []

        def emit(kind: str, is_delta: bool = False, **fields: Any) -> None:
            payload = {"type": kind, "sequence_number": next(sequence), **fields}
            events.append(SSEEvent(json.dumps(payload), event=kind, is_delta=is_delta))

        emit("response.created", response=response("in_progress", [], False))
        emit("response.in_progress", response=response("in_progress", [], False))
        index = 0
        if searches:
            searching = {**search_call, "status": "in_progress"}
            emit("response.output_item.added", output_index=0, item=searching)
            item_id = search_call["id"]
            emit("response.file_search_call.in_progress", output_index=0, item_id=item_id)
            emit("response.file_search_call.searching", output_index=0, item_id=item_id)
            emit("response.file_search_call.completed", output_index=0, item_id=item_id)
            emit("response.output_item.done", output_index=0, item=search_call)
            index = 1
        empty_part = {**text_part, "text": ""}
        emit(
            "response.output_item.added",
            output_index=index,
            item={**message, "status": "in_progress", "content": []},
        )
        where: dict[str, Any] = {"item_id": message_id, "output_index": index, "content_index": 0}
        emit("response.content_part.added", part=empty_part, **where)
        for delta in deltas:
            emit("response.output_text.delta", is_delta=True, delta=delta, logprobs=[], **where)
        emit("response.output_text.done", text=text, logprobs=[], **where)
        emit("response.content_part.done", part=text_part, **where)
        emit("response.output_item.done", output_index=index, item=message)
        emit("response.completed", response=response("completed", output, True))
        return StreamReply(events)

    # --- /v1/conversations ---------------------------------------------------------

    def _create_conversation(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        items = body.get("items") or []
        if len(items) > 20:
            return openai_error(400, "You may add up to 20 items at a time.", param="items")
        conversation_id = _new_id("conv")
        self.conversations[conversation_id] = _conversation_items(items)
        return JSONReply(
            {
                "id": conversation_id,
                "object": "conversation",
                "created_at": int(time.time()),
                "metadata": body.get("metadata") or {},
            }
        )

    def _add_items(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        conversation_id = params["conversation_id"]
        if conversation_id not in self.conversations:
            return openai_error(404, f"Conversation with id '{conversation_id}' not found.")
        body = request.json if isinstance(request.json, dict) else {}
        items = body.get("items") or []
        if len(items) > 20:
            return openai_error(400, "You may add up to 20 items at a time.", param="items")
        added = _conversation_items(items)
        self.conversations[conversation_id].extend(added)
        return JSONReply(
            {
                "object": "list",
                "data": added,
                "first_id": added[0]["id"] if added else None,
                "last_id": added[-1]["id"] if added else None,
                "has_more": False,
            }
        )

    # --- /v1/files -------------------------------------------------------------------

    def _create_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        fields, uploads = _multipart(request)
        if "file" not in uploads:
            return openai_error(400, "Missing required parameter: 'file'.", param="file")
        if not fields.get("purpose"):
            return openai_error(400, "Missing required parameter: 'purpose'.", param="purpose")
        filename, data = uploads["file"]
        file_id = "file-" + secrets.token_hex(12)
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": fields["purpose"],
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.file_data[file_id] = data
        return JSONReply(self.files[file_id])

    def _list_files(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        query = _query(request)
        files = [f for f in self.files.values() if query.get("purpose") in (None, f["purpose"])]
        return _page(files, query, default_limit=10_000, default_order="desc")

    def _retrieve_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        found = self.files.get(params["file_id"])
        if found is None:
            return openai_error(404, f"No such File object: {params['file_id']}")
        return JSONReply(found)

    def _delete_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        file_id = params["file_id"]
        if self.files.pop(file_id, None) is None:
            return openai_error(404, f"No such File object: {file_id}")
        self.file_data.pop(file_id, None)
        return JSONReply({"id": file_id, "object": "file", "deleted": True})

    # --- /v1/vector_stores -------------------------------------------------------------

    def _store_object(self, store_id: str) -> dict[str, Any]:
        store = self.vector_stores[store_id]
        files = self.vector_store_files[store_id].values()
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for item in files:
            counts[item["status"]] += 1
        store["file_counts"] = {**counts, "total": len(files)}
        store["usage_bytes"] = sum(item["usage_bytes"] for item in files)
        return store

    def _create_vector_store(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        store_id = "vs_" + secrets.token_hex(12)
        now = int(time.time())
        self.vector_stores[store_id] = {
            "id": store_id,
            "object": "vector_store",
            "created_at": now,
            "last_active_at": now,
            "name": body.get("name") or "",
            "metadata": body.get("metadata") or {},
            "status": "completed",
            "expires_after": None,
            "expires_at": None,
        }
        self.vector_store_files[store_id] = {}
        for file_id in body.get("file_ids") or []:
            self._attach(store_id, file_id, {})
        return JSONReply(self._store_object(store_id))

    def _list_vector_stores(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        stores = [self._store_object(store_id) for store_id in self.vector_stores]
        return _page(stores, _query(request), default_limit=20, default_order="desc")

    def _retrieve_vector_store(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        if params["store_id"] not in self.vector_stores:
            return openai_error(404, f"No vector store found with id '{params['store_id']}'.")
        return JSONReply(self._store_object(params["store_id"]))

    def _delete_vector_store(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        store_id = params["store_id"]
        if self.vector_stores.pop(store_id, None) is None:
            return openai_error(404, f"No vector store found with id '{store_id}'.")
        self.vector_store_files.pop(store_id, None)
        return JSONReply({"id": store_id, "object": "vector_store.deleted", "deleted": True})

    def _attach(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        item = self.vector_store_files[store_id].get(file_id)
        if item is None:
            item = {
                "id": file_id,
                "object": "vector_store.file",
                "created_at": int(time.time()),
                "vector_store_id": store_id,
                "status": "completed",
                "usage_bytes": self.files[file_id]["bytes"],
                "last_error": None,
                "attributes": attributes,
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
                },
            }
            self.vector_store_files[store_id][file_id] = item
        return item

    def _attach_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        store_id = params["store_id"]
        body = request.json if isinstance(request.json, dict) else {}
        if store_id not in self.vector_stores:
            return openai_error(404, f"No vector store found with id '{store_id}'.")
        file_id = body.get("file_id")
        if file_id not in self.files:
            return openai_error(404, f"No file found with id '{file_id}'.", param="file_id")
        return JSONReply(self._attach(store_id, file_id, body.get("attributes") or {}))

    def _list_store_files(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        store_id = params["store_id"]
        if store_id not in self.vector_stores:
            return openai_error(404, f"No vector store found with id '{store_id}'.")
        query = _query(request)
        items = [
            item
            for item in self.vector_store_files[store_id].values()
            if query.get("filter") in (None, item["status"])
        ]
        return _page(items, query, default_limit=20, default_order="desc")

    def _retrieve_store_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        item = self.vector_store_files.get(params["store_id"], {}).get(params["file_id"])
        if item is None:
            return openai_error(404, f"No file found with id '{params['file_id']}'.")
        return JSONReply(item)

    def _detach_file(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        store_id, file_id = params["store_id"], params["file_id"]
        if self.vector_store_files.get(store_id, {}).pop(file_id, None) is None:
            return openai_error(404, f"No file found with id '{file_id}' in vector store.")
        return JSONReply({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    # --- /v1/audio ---------------------------------------------------------------------

    def _create_transcription(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        fields, uploads = _multipart(request)
        if "file" not in uploads:
            return openai_error(400, "Missing required parameter: 'file'.", param="file")
        if not fields.get("model"):
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        if fields.get("response_format", "json") != "json":
            return openai_error(400, "FakeOpenAI only answers response_format 'json'.")
        filename, data = uploads["file"]
        try:
            with wave.open(io.BytesIO(data), "rb") as wav:
                upload = AudioUpload(
                    fields=fields,
                    filename=filename,
                    data=data,
                    channels=wav.getnchannels(),
                    sample_width=wav.getsampwidth(),
                    sample_rate=wav.getframerate(),
                    frames=wav.getnframes(),
                )
        except (wave.Error, EOFError):
            return openai_error(400, "Invalid file format: FakeOpenAI reads WAV.", param="file")
        self.audio_uploads.append(upload)
        seconds = math.ceil(upload.frames / upload.sample_rate) if upload.sample_rate else 0
        return JSONReply(
            {"text": self.transcript_text, "usage": {"type": "duration", "seconds": seconds}}
        )

    def _create_speech(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return openai_error(400, f"Missing required parameter: '{name}'.", param=name)
        if len(body["input"]) > 4096:
            return openai_error(400, "Input is longer than 4096 characters.", param="input")
        if body.get("response_format") != "pcm":
            return openai_error(400, "FakeOpenAI only speaks response_format 'pcm'.")
        pcm, size = self.speech_pcm, self.speech_chunk_bytes
        return BytesReply([pcm[i : i + size] for i in range(0, len(pcm), size)], "audio/pcm")

    # --- /v1/chat/completions ------------------------------------------------------

    def _create_chat_completion(self, request: RecordedRequest, params: Mapping[str, str]) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        if not body.get("model"):
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        if not body.get("messages"):
            return openai_error(400, "Missing required parameter: 'messages'.", param="messages")
        deltas = self.reply_deltas(request)
        text = "".join(deltas)
        completion_id = f"chatcmpl-{secrets.token_hex(12)}"
        created = int(time.time())
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(deltas),
            "total_tokens": prompt_tokens + len(deltas),
        }
        common = {"id": completion_id, "created": created, "model": body["model"]}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
            completion = {**common, "object": "chat.completion", "choices": [choice]}
            return JSONReply({**completion, "usage": usage, "system_fingerprint": None})

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return json.dumps({**common, "object": "chat.completion.chunk", "choices": [choice]})

        events = [SSEEvent(chunk({"role": "assistant", "content": "", "refusal": None}))]
        events += [SSEEvent(chunk({"content": delta}), is_delta=True) for delta in deltas]
        events.append(SSEEvent(chunk({}, "stop")))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            final = {**common, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append(SSEEvent(json.dumps(final)))
        events.append(SSEEvent("[DONE]"))
        return StreamReply(events)


class _Exchange:
    """One request's response side: sending, pausing, and noticing the client leave."""

    def __init__(self, receive: Receive, send: Send, request: RecordedRequest) -> None:
        self._receive = receive
        self._send = send
        self._request = request
        self._gone = asyncio.Event()
        self._complete = False

    async def watch(self) -> None:
        # After the body is read, the next message is http.disconnect: either the client
        # left (it matters only before the response completed) or the response is done.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._complete:
            self._request.disconnected = True
        self._gone.set()

    async def _pause(self, seconds: float) -> bool:
        """Wait, but stop early if the client leaves; True if it is still there."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), seconds)
        return not self._gone.is_set()

    async def respond(self, reply: Reply, fault: _Fault | None, delta_delay_s: float) -> None:
        stall = fault.seconds if fault is not None and fault.kind == "stall" else 0.0
        drop_after = fault.after_deltas if fault is not None and fault.kind == "disconnect" else -1
        if isinstance(reply, JSONReply):
            if not await self._pause(stall):
                return
            headers = {"content-type": "application/json", **reply.headers}
            await self._start(reply.status, headers)
            if drop_after >= 0:
                return  # headers but no body: the server hangs up
            self._complete = True
            await self._send(
                {"type": "http.response.body", "body": json.dumps(reply.body).encode()}
            )
            return
        if isinstance(reply, BytesReply):
            await self._start(reply.status, {"content-type": reply.content_type})
            for index, piece in enumerate(reply.chunks):
                if not await self._pause(stall if index == 0 else delta_delay_s):
                    return
                if index == drop_after:
                    return  # uvicorn closes the connection: an incomplete chunked body
                await self._send({"type": "http.response.body", "body": piece, "more_body": True})
            self._complete = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._start(reply.status, {"content-type": "text/event-stream; charset=utf-8"})
        sent_deltas = 0
        for event in reply.events:
            if event.is_delta:
                pause = stall if sent_deltas == 0 else delta_delay_s
                if not await self._pause(pause):
                    return
                if sent_deltas == drop_after:
                    # Returning mid-response makes uvicorn close the connection: the
                    # client sees an incomplete chunked body, as after a network drop.
                    return
                sent_deltas += 1
            if self._gone.is_set():
                return
            await self._send(
                {"type": "http.response.body", "body": event.encode(), "more_body": True}
            )
        self._complete = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self, status: int, headers: Mapping[str, str]) -> None:
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        raw.append((b"x-request-id", f"req_{secrets.token_hex(16)}".encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": raw})


def _query(request: RecordedRequest) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.query))


def _page(
    items: list[dict[str, Any]], query: Mapping[str, str], *, default_limit: int, default_order: str
) -> JSONReply:
    """One page of a cursor-paginated list (``limit``, ``order``, ``after``), as OpenAI's."""
    ordered = list(items) if query.get("order", default_order) == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    limit = int(query.get("limit", default_limit))
    page = ordered[:limit]
    return JSONReply(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(ordered) > limit,
        }
    )


def _multipart(request: RecordedRequest) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The text fields and the files (name, bytes) of a ``multipart/form-data`` body."""
    content_type = request.headers.get("content-type", "")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + request.body
    )
    fields: dict[str, str] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts() if isinstance(message, email.message.EmailMessage) else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            uploads[name] = (filename, payload)
        else:
            fields[name] = payload.decode()
    return fields, uploads


def _user_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    texts = [item.get("content") for item in value or [] if isinstance(item, dict)]
    return next((text for text in reversed(texts) if isinstance(text, str)), "")


def _conversation_items(value: Any) -> list[dict[str, Any]]:
    """Input (a string or a list of input messages) as stored conversation items."""
    messages = [{"role": "user", "content": value}] if isinstance(value, str) else value or []
    items = []
    for message in messages:
        role = message.get("role", "user")
        content = message.get("content", "")
        part_type = "output_text" if role == "assistant" else "input_text"
        parts = (
            [{"type": part_type, "text": content}] if isinstance(content, str) else list(content)
        )
        items.append(
            {
                "id": _new_id("msg"),
                "type": "message",
                "status": "completed",
                "role": role,
                "content": parts,
            }
        )
    return items


def _response_object(
    response_id: str,
    body: Mapping[str, Any],
    conversation_id: str | None,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "id": response_id,
        "object": "response",
        "created_at": now,
        "status": status,
        "background": False,
        "completed_at": now if status == "completed" else None,
        "conversation": {"id": conversation_id} if conversation_id else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "metadata": body.get("metadata") or {},
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
    }
