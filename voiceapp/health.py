"""Liveness and readiness probes: ``/healthz`` and ``/readyz``.

``/healthz`` says the process answers HTTP; it touches nothing else, so a database outage
never gets a healthy process restarted. ``/readyz`` says whether this process should get
traffic: the database answers ``SELECT 1``, Redis answers ``PING`` (when ``REDIS_URL`` is
set), the bundled speech models have loaded (when ``VOICE_LOAD_MODELS_AT_START`` is on),
and the process is not draining before a shutdown (:func:`set_draining`). The checks run
concurrently, each within :data:`CHECK_TIMEOUT_SECONDS`, so an unreachable service makes
``/readyz`` answer 503 in about that time instead of hanging.

The body names every check: ``{"status": "ready"|"unavailable", "checks": {"database":
{"ok": true, "ms": 1.2}, ...}}``; a failed check adds ``"error"`` with the kind of failure
(``timeout`` or the exception's class). The details go to the log, not to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from conversations import warmup

log = logging.getLogger(__name__)

#: How long each check may take before it counts as failed.
CHECK_TIMEOUT_SECONDS = 1.5

_draining = threading.Event()


def set_draining(draining: bool = True) -> None:
    """Mark this process as draining (``/readyz`` answers 503 from now on), or not."""
    if draining:
        _draining.set()
    else:
        _draining.clear()


def is_draining() -> bool:
    return _draining.is_set()


class CheckFailed(Exception):
    """A readiness check ran and found the dependency not ready."""


# --- The checks ---------------------------------------------------------------------------

# Database checks get a thread of their own: a connection attempt to a host that drops
# packets blocks its thread for the connect timeout, and must not hold up the thread that
# every socket's ORM work runs on.
_db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-db")
_db_probe: Future[None] | None = None
_db_probe_lock = threading.Lock()


def _select_one() -> None:
    """``SELECT 1`` on a new connection made from the default database's settings.

    A new connection, closed at once, rather than the thread's Django connection: each
    probe sees the database as a new request would, leaves no connection open between
    probes, and can be given a connect timeout of its own.
    """
    database = connections["default"]
    params = database.get_connection_params()
    if database.vendor == "postgresql":
        # libpq counts whole seconds (and treats anything below 2 as 2).
        params["connect_timeout"] = max(2, math.ceil(CHECK_TIMEOUT_SECONDS))
    if database.vendor == "sqlite" and not _kept_connections_current():
        raise CheckFailed(
            "the database file was replaced or removed under this process's connection"
        )
    raw = database.get_new_connection(params)
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise CheckFailed("SELECT 1 did not return 1")
    finally:
        raw.close()


def _kept_connections_current() -> bool:
    """Whether the SQLite file this process last opened is still the one at the path.

    A probe on a new connection would open whatever file is there now and pass, while the
    process's kept connections still use the old one; the backend replaces those at their
    next use (``voiceapp.sqlite``), and until then the process is not ready.
    """
    from voiceapp.sqlite.base import file_identity, last_opened

    path = str(connections["default"].settings_dict["NAME"])
    return path not in last_opened or file_identity(path) == last_opened[path]


async def check_database() -> None:
    global _db_probe
    with _db_probe_lock:
        # One probe at a time: while an earlier one still waits on a dead host, later
        # requests wait on that one instead of queueing more threads behind it.
        if _db_probe is None or _db_probe.done():
            _db_probe = _db_executor.submit(_select_one)
        probe = _db_probe
    # Shielded: a timed-out request must not cancel the probe that others may share.
    await asyncio.shield(asyncio.wrap_future(probe))


async def check_redis(url: str) -> None:
    client = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        retry_on_timeout=False,
    )
    try:
        if not await client.ping():
            raise CheckFailed("PING was not answered with PONG")
    finally:
        await client.aclose()


async def check_speech_models() -> None:
    if warmup.failed():
        raise CheckFailed("loading the bundled speech models failed (see the log)")
    if not warmup.ready():
        raise CheckFailed("the bundled speech models are still loading")


async def check_not_draining() -> None:
    if is_draining():
        raise CheckFailed("the process is draining before a shutdown")


def readiness_checks() -> dict[str, Callable[[], Awaitable[None]]]:
    """The checks that apply with the current settings, by the name they report under."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = functools.partial(check_redis, settings.REDIS_URL)
    if settings.VOICE_LOAD_MODELS_AT_START:
        checks["speech_models"] = check_speech_models
    checks["draining"] = check_not_draining
    return checks


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    started = time.perf_counter()
    error = ""
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        error = "timeout"
        log.warning("readiness check %s timed out after %.1f s", name, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        # Any failure of a dependency means "not ready": report which, never a 500.
        error = type(exc).__name__
        log.warning("readiness check %s failed: %s: %s", name, error, exc)
    result: dict[str, Any] = {
        "ok": not error,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if error:
        result["error"] = error
    return result


# --- Views --------------------------------------------------------------------------------


@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves HTTP. No database, no Redis."""
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every check passes, 503 otherwise; the body lists them all."""
    checks = readiness_checks()
    results = await asyncio.gather(*(_run(name, check) for name, check in checks.items()))
    by_name = dict(zip(checks, results, strict=True))
    ready = all(result["ok"] for result in results)
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": by_name},
        status=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )
