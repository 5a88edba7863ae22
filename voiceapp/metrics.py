"""Prometheus metrics: what is measured, the small functions that measure it, and ``/metrics``.

Callers use the functions below, not the metric objects, so the names and labels stay in
one place. With ``PROMETHEUS_MULTIPROC_DIR`` set (several server processes), every process
writes its values to files in that directory and ``/metrics`` in any process reports the
sum over all of them (prometheus_client's multiprocess mode, chosen by that variable when
prometheus_client is first imported); otherwise the process's own registry is served.

``/metrics`` access: with ``METRICS_TOKEN`` set, every request needs
``Authorization: Bearer <METRICS_TOKEN>`` (loopback included; behind a reverse proxy every
request comes from a private address, so the address proves nothing). Without it, only
requests from loopback and private addresses are answered.
"""

from __future__ import annotations

import asyncio
import atexit
import hmac
import ipaddress
import os
import threading
import time
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from agents.speech.executor import default_pool

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
if MULTIPROCESS and not settings.PROMETHEUS_MULTIPROC_DIR:
    raise ImproperlyConfigured("PROMETHEUS_MULTIPROC_DIR is set but empty; name a directory")

# The *_created series (a timestamp per counter and histogram) only add series to store.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

#: Latency buckets (seconds) for every voice and reply stage: 50 ms to 10 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)

SOCKETS = ("clm", "voice", "chat", "monitor")

ACTIVE_SESSIONS = Gauge(
    "voiceapp_active_sessions",
    "Open WebSocket sessions, by socket type.",
    ["socket"],
    multiprocess_mode="livesum",
)
for _socket in SOCKETS:
    ACTIVE_SESSIONS.labels(socket=_socket)  # reported as 0 before the first socket opens
TURNS = Counter(
    "voiceapp_turns_recorded",
    "Replies stored (each with the user turn it answers), by channel and outcome "
    "(complete, failed, interrupted).",
    ["channel", "status"],
)
ERRORS = Counter(
    "voiceapp_errors",
    "Errors by kind: <source>.<code>, e.g. clm.unauthorized, voice.bad_frame, "
    "speech.overloaded, chat.empty_message, llm.fallback, store.turn_write.",
    ["kind"],
)
LLM_FIRST_TOKEN = Histogram(
    "voiceapp_llm_first_token_seconds",
    "From asking the LLM to its first token, by channel.",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
VOICE_TO_VOICE = Histogram(
    "voiceapp_voice_to_voice_seconds",
    "From the end of the user's speech to the first reply audio sent.",
    buckets=LATENCY_BUCKETS,
)
VOICE_STAGE = Histogram(
    "voiceapp_voice_stage_seconds",
    "Voice turn stages: stt (transcription), llm_first_token, tts_first_audio.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REPLY = Histogram(
    "voiceapp_http_reply_seconds",
    "Streamed HTTP replies, from the request to the first text (phase=first_text) and to "
    "the end (phase=complete), by endpoint.",
    ["endpoint", "phase"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "voiceapp_inference_queue_depth",
    "Inference jobs waiting for a worker thread, by pool (speech: STT and TTS; vad).",
    ["pool"],
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "voiceapp_inference_in_flight",
    "Inference jobs running on a worker thread, by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)

if MULTIPROCESS:
    # A process that exits cleanly takes its live gauges (sessions, queues) with it. One
    # that is killed cannot: empty the directory whenever the server processes start.
    # The pid is read at exit: a process forked after this import has its own.
    atexit.register(
        lambda: multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
    )


# --- Sessions and turns -------------------------------------------------------------------


class CountedSocket:
    """Mixin for a Channels consumer, listed before the consumer class: the socket counts in
    ``voiceapp_active_sessions`` for as long as its application runs, from the handshake
    to its end however it ends (a crash or a cancellation included, where Channels never
    calls ``disconnect``), so the gauge cannot drift."""

    metrics_socket: ClassVar[str]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gauge = ACTIVE_SESSIONS.labels(socket=self.metrics_socket)
        gauge.inc()
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            gauge.dec()


def turn_recorded(*, channel: str, status: str, first_token_ms: int | None, fallback: bool) -> None:
    """One reply was stored: count it, its LLM's first-token latency and any fallback."""
    TURNS.labels(channel=channel or "unknown", status=status).inc()
    if first_token_ms is not None:
        LLM_FIRST_TOKEN.labels(channel=channel or "unknown").observe(first_token_ms / 1000)
    if fallback:
        ERRORS.labels(kind="llm.fallback").inc()


def error(kind: str) -> None:
    """Count one error; ``kind`` is ``<source>.<code>`` from a fixed set of codes."""
    ERRORS.labels(kind=kind).inc()


def voice_turn(
    *,
    stt_ms: int | None,
    llm_first_token_ms: int | None,
    tts_first_audio_ms: int | None,
    voice_to_voice_ms: int | None,
) -> None:
    """Observe a stored voice turn's stage latencies (those that were measured)."""
    for stage, ms in (
        ("stt", stt_ms),
        ("llm_first_token", llm_first_token_ms),
        ("tts_first_audio", tts_first_audio_ms),
    ):
        if ms is not None:
            VOICE_STAGE.labels(stage=stage).observe(ms / 1000)
    if voice_to_voice_ms is not None:
        VOICE_TO_VOICE.observe(voice_to_voice_ms / 1000)


def http_reply(*, endpoint: str, phase: str, seconds: float) -> None:
    """A streamed HTTP reply reached ``phase`` (``first_text`` or ``complete``)."""
    HTTP_REPLY.labels(endpoint=endpoint, phase=phase).observe(seconds)


# --- Inference pools ----------------------------------------------------------------------


class Pool(Protocol):
    """What is read of an inference pool (``agents.speech.executor.InferencePool``)."""

    @property
    def name(self) -> str: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def in_flight(self) -> int: ...


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()
_sampler: threading.Thread | None = None
SAMPLE_SECONDS = 1.0


def watch_pool(pool: Pool) -> None:
    """Report ``pool``'s queue depth and running jobs (idempotent; call when it is made).

    A single process reads the pools when scraped. With several processes the scrape
    reaches one of them, so each process copies its pools' numbers into the shared files
    every second from a daemon thread, started with the first pool watched.
    """
    global _sampler
    with _pools_lock:
        _pools[pool.name] = pool
        if MULTIPROCESS and _sampler is None:
            _sampler = threading.Thread(target=_sample_forever, name="metrics-pools", daemon=True)
            _sampler.start()


def refresh_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        QUEUE_DEPTH.labels(pool=pool.name).set(pool.queue_depth)
        IN_FLIGHT.labels(pool=pool.name).set(pool.in_flight)


def _sample_forever() -> None:
    while True:
        time.sleep(SAMPLE_SECONDS)
        refresh_pools()


# --- /metrics -----------------------------------------------------------------------------


def exposition() -> bytes:
    """The text exposition of every metric (of every process, in multiprocess mode)."""
    # The shared STT/TTS pool exists in every server process that does speech; creating
    # it here costs no thread (its executor starts workers on the first job).
    watch_pool(default_pool())
    refresh_pools()
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# Loopback, RFC 1918 and RFC 4193 (unique local) networks. Not ipaddress's is_private,
# which also counts documentation and other reserved ranges.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
    )
)


def _is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a Unix socket or no address: nothing proves it is local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in PRIVATE_NETWORKS)


def _bearer(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def scrape_allowed(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if token:
        return hmac.compare_digest(_bearer(request).encode(), token.encode())
    return _is_private(request.META.get("REMOTE_ADDR") or "")


@require_safe
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics``: the Prometheus text exposition, for allowed scrapers only."""
    if not scrape_allowed(request):
        if settings.METRICS_TOKEN:
            response = HttpResponse("a valid bearer token is required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse(
            "metrics are served to private addresses only; set METRICS_TOKEN to scrape "
            "from elsewhere\n",
            status=403,
        )
    # Reading the other processes' files is blocking I/O: keep it off the event loop.
    body = await asyncio.to_thread(exposition)
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
