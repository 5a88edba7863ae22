"""Liveness and readiness probes: /healthz and /readyz, against real (failing) services."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import AsyncClient, Client

from conversations import warmup
from voiceapp import health

ALWAYS = {"database", "draining"}


def expected_checks(*extra: str) -> set[str]:
    """The checks /readyz runs here: Redis too when the suite runs with REDIS_URL."""
    return ALWAYS | set(extra) | ({"redis"} if django_settings.REDIS_URL else set())


def closed_port() -> int:
    """A loopback port that nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _probe_settings(settings) -> Iterator[None]:
    # Model loading is tested on its own; the other tests leave it out.
    settings.VOICE_LOAD_MODELS_AT_START = False
    yield
    health.set_draining(False)
    # A database probe still waiting on a dead server would be shared by the next test.
    if health._db_probe is not None:
        wait([health._db_probe], timeout=10)


async def readyz() -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = await AsyncClient().get("/readyz")
    return response.status_code, response.json(), time.perf_counter() - started


def test_healthz_answers_ok_without_touching_the_database(client: Client) -> None:
    # No django_db mark: any database access in the view would fail this test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_healthz_stays_ok_while_draining(client: Client) -> None:
    health.set_draining(True)
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
async def test_readyz_is_ready_when_every_check_passes() -> None:
    status, body, _ = await readyz()
    assert status == 200
    assert body["status"] == "ready"
    assert set(body["checks"]) == expected_checks()
    for result in body["checks"].values():
        assert set(result) == {"ok", "ms"}
        assert result["ok"] is True
        assert 0 <= result["ms"] < 1500


@pytest.mark.django_db
async def test_readyz_is_unavailable_when_the_database_cannot_be_reached(
    monkeypatch, tmp_path: Path
) -> None:
    database = connections.settings["default"]
    if database["ENGINE"] == "voiceapp.sqlite":
        # SQLite cannot open a file in a directory that does not exist.
        monkeypatch.setitem(database, "NAME", str(tmp_path / "missing" / "db.sqlite3"))
    else:
        monkeypatch.setitem(database, "HOST", "127.0.0.1")
        monkeypatch.setitem(database, "PORT", str(closed_port()))
    status, body, elapsed = await readyz()
    assert status == 503
    assert body["status"] == "unavailable"
    assert set(body["checks"]) == expected_checks()
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert [name for name, r in body["checks"].items() if not r["ok"]] == ["database"]
    assert elapsed < 2


@pytest.mark.django_db
async def test_readyz_answers_within_two_seconds_when_the_database_hangs(
    monkeypatch, silent_port: int
) -> None:
    database = connections.settings["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs a database reached over the network (make test's PostgreSQL stage)")
    monkeypatch.setitem(database, "HOST", "127.0.0.1")
    monkeypatch.setitem(database, "PORT", str(silent_port))
    status, body, elapsed = await readyz()
    assert status == 503
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "timeout"
    assert elapsed < 2


@pytest.mark.django_db
async def test_readyz_is_unavailable_when_redis_refuses_connections(settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    status, body, elapsed = await readyz()
    assert status == 503
    assert set(body["checks"]) == ALWAYS | {"redis"}
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 2


@pytest.mark.django_db
async def test_readyz_answers_within_two_seconds_when_redis_hangs(
    settings, silent_port: int
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    status, body, elapsed = await readyz()
    assert status == 503
    assert body["checks"]["redis"] == {
        "ok": False,
        "ms": body["checks"]["redis"]["ms"],
        "error": "timeout",
    }
    assert elapsed < 2


@pytest.mark.django_db
async def test_readyz_is_unavailable_while_draining_and_ready_again_after() -> None:
    health.set_draining(True)
    status, body, _ = await readyz()
    assert status == 503
    assert body["checks"]["draining"]["ok"] is False
    assert [name for name, r in body["checks"].items() if not r["ok"]] == ["draining"]
    health.set_draining(False)
    status, body, _ = await readyz()
    assert (status, body["status"]) == (200, "ready")


@pytest.mark.django_db
async def test_readyz_waits_for_the_speech_models_when_they_load_at_start(
    settings, monkeypatch
) -> None:
    settings.VOICE_LOAD_MODELS_AT_START = True
    # A stand-in for the loading thread, so that the test controls when loading ends.
    loaded = threading.Event()
    loader = threading.Thread(target=loaded.wait, daemon=True)
    loader.start()
    monkeypatch.setattr(warmup, "_thread", loader)

    status, body, _ = await readyz()
    assert status == 503
    assert set(body["checks"]) == expected_checks("speech_models")
    assert body["checks"]["speech_models"]["error"] == "CheckFailed"

    loaded.set()
    loader.join()
    status, body, _ = await readyz()
    assert status == 200
    assert body["checks"]["speech_models"]["ok"] is True


@pytest.mark.django_db
async def test_readyz_reports_models_that_failed_to_load(settings, monkeypatch) -> None:
    settings.VOICE_LOAD_MODELS_AT_START = True

    def broken(*args, **kwargs):
        raise RuntimeError("no model here")

    monkeypatch.setattr(warmup, "build_stt", broken)
    monkeypatch.setattr(warmup, "_failed", False)
    loader = threading.Thread(target=warmup._warm)  # the real loading code, failing
    loader.start()
    loader.join()
    monkeypatch.setattr(warmup, "_thread", loader)

    status, body, _ = await readyz()
    assert status == 503
    assert body["checks"]["speech_models"] == {
        "ok": False,
        "ms": body["checks"]["speech_models"]["ms"],
        "error": "CheckFailed",
    }


def test_readyz_refuses_other_methods(client: Client) -> None:
    assert client.post("/readyz").status_code == 405


# --- Against the real services (make test, second stage) ---------------------------------


@pytest.fixture
def services() -> Iterator[Any]:
    # Imported here: only the integration stage has (and needs) services to stop and start.
    from testing.services import Services

    services = Services.from_environment()
    yield services
    services.ensure_running()  # the tests after this one share them


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_readyz_of_a_server_follows_postgres_and_redis_going_down_and_up(
    start_server, services
) -> None:
    assert connections["default"].vendor == "postgresql", "this test needs PostgreSQL"
    server = start_server(VOICE_LOAD_MODELS_AT_START="false")

    with httpx.Client(base_url=server.http_url, timeout=10) as http:

        def probe() -> tuple[int, dict[str, Any], float]:
            started = time.perf_counter()
            response = http.get("/readyz")
            return response.status_code, response.json()["checks"], time.perf_counter() - started

        status, checks, _ = probe()
        assert status == 200
        assert set(checks) == {"database", "redis", "draining"}
        assert all(check["ok"] for check in checks.values())

        services.stop_redis()
        try:
            status, checks, elapsed = probe()
        finally:
            services.start_redis()
        assert status == 503
        assert checks["redis"]["ok"] is False
        assert [name for name, check in checks.items() if not check["ok"]] == ["redis"]
        assert elapsed < 2
        assert probe()[0] == 200

        services.stop_postgres()
        try:
            status, checks, elapsed = probe()
        finally:
            services.start_postgres()
            # This process's connections died with the server; the teardown needs new ones.
            connections.close_all()
        assert status == 503
        assert checks["database"]["ok"] is False
        assert [name for name, check in checks.items() if not check["ok"]] == ["database"]
        assert elapsed < 2
        assert probe()[0] == 200
    assert "Traceback" not in server.log()
