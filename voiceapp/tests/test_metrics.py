"""Prometheus metrics at /metrics: what the sockets and stores count, and who may read it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from conversations.models import Channel
from conversations.realtime.session import SpokenReply, TurnMetrics, Utterance
from conversations.replies import Answer
from conversations.stores import open_conversation
from conversations.tests.hume_payloads import payload, sdk_user
from conversations.voice_store import VoiceTurnStore
from testing.waits import until
from voiceapp.asgi import application

ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; a series not reported yet counts as 0."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape() -> Samples:
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


async def ask_clm(socket: WebsocketCommunicator, text: str, session: str) -> None:
    await socket.send_to(text_data=payload([sdk_user(text)], session))
    while json.loads(await socket.receive_from(timeout=10))["type"] != "assistant_end":
        pass


def errors(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["kind"]: v
        for (name, labels), v in samples.items()
        if name == "voiceapp_errors_total"
    }


@pytest.mark.django_db(transaction=True)
async def test_a_clm_conversation_counts_its_turns_and_its_session(make_agent) -> None:
    await sync_to_async(make_agent)(slug="doctor")
    before = await scrape()
    turns = ("voiceapp_turns_recorded_total", {"channel": "hume_clm", "status": "complete"})
    first_token = ("voiceapp_llm_first_token_seconds_count", {"channel": "hume_clm"})

    socket = WebsocketCommunicator(application, "/llm/doctor")
    assert (await socket.connect())[0]
    await ask_clm(socket, "I am sad today.", "metrics-1")
    await ask_clm(socket, "My mother dislikes me.", "metrics-1")
    during = await scrape()
    await socket.disconnect()
    after = await scrape()

    assert value(during, "voiceapp_active_sessions", socket="clm") == (
        value(before, "voiceapp_active_sessions", socket="clm") + 1
    )
    assert value(after, "voiceapp_active_sessions", socket="clm") == 0
    assert value(after, turns[0], **turns[1]) == value(before, turns[0], **turns[1]) + 2
    assert value(after, first_token[0], **first_token[1]) == (
        value(before, first_token[0], **first_token[1]) + 2
    )
    assert errors(after) == errors(before)


@pytest.mark.django_db(transaction=True)
async def test_a_refused_clm_socket_counts_the_error_and_no_session(make_agent) -> None:
    await sync_to_async(make_agent)(slug="guarded", clm_token="right-token-123")
    before = await scrape()
    socket = WebsocketCommunicator(application, "/llm/guarded?token=wrong")
    assert (await socket.connect())[0]
    frame = json.loads(await socket.receive_from(timeout=10))
    assert frame["code"] == "unauthorized"
    assert (await socket.receive_output(timeout=10))["type"] == "websocket.close"
    await socket.disconnect()  # what the server sends once the close handshake is done
    after = await scrape()
    assert value(after, "voiceapp_errors_total", kind="clm.unauthorized") == (
        value(before, "voiceapp_errors_total", kind="clm.unauthorized") + 1
    )
    assert value(after, "voiceapp_active_sessions", socket="clm") == 0


@pytest.mark.django_db(transaction=True)
async def test_a_recorded_voice_turn_is_observed_in_the_latency_histograms(make_agent) -> None:
    agent = await sync_to_async(make_agent)()
    live = await open_conversation(agent, Channel.WEB_VOICE, None, None)
    before = await scrape()

    await VoiceTurnStore(live).record(
        user=Utterance(text="I need a job."),
        reply=SpokenReply(
            answer=Answer(generated=["Why a job?"], sent=["Why a job?"], first_token_ms=300)
        ),
        metrics=TurnMetrics(
            stt_ms=120, llm_first_token_ms=300, tts_first_audio_ms=80, voice_to_voice_ms=700
        ),
    )
    after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return round(value(after, name, **labels) - value(before, name, **labels), 6)

    v2v = "voiceapp_voice_to_voice_seconds"
    assert delta(f"{v2v}_count") == 1
    assert delta(f"{v2v}_sum") == 0.7
    assert delta(f"{v2v}_bucket", le="0.5") == 0
    assert delta(f"{v2v}_bucket", le="0.75") == 1
    stage = "voiceapp_voice_stage_seconds"
    assert delta(f"{stage}_sum", stage="stt") == 0.12
    assert delta(f"{stage}_sum", stage="llm_first_token") == 0.3
    assert delta(f"{stage}_sum", stage="tts_first_audio") == 0.08
    assert delta(f"{stage}_bucket", stage="tts_first_audio", le="0.05") == 0
    assert delta(f"{stage}_bucket", stage="tts_first_audio", le="0.1") == 1
    assert delta("voiceapp_turns_recorded_total", channel="web_voice", status="complete") == 1


@pytest.mark.django_db(transaction=True)
async def test_the_clm_sse_reply_latency_is_observed(make_agent) -> None:
    await sync_to_async(make_agent)(slug="doctor")
    before = await scrape()
    response: Any = await AsyncClient().post(
        "/llm/doctor/chat/completions?custom_session_id=sse-metrics",
        data={"messages": [{"role": "user", "content": "I am sad today."}]},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body.endswith(b"data: [DONE]\n\n")
    after = await scrape()
    for phase in ("first_text", "complete"):
        name = "voiceapp_http_reply_seconds_count"
        labels = {"endpoint": "clm_sse", "phase": phase}
        assert value(after, name, **labels) == value(before, name, **labels) + 1


# --- Who may read /metrics ------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.7", "::1", "fd00::5"])
def test_metrics_are_open_to_loopback_and_private_addresses(client: Client, address: str) -> None:
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200
    assert b"# TYPE voiceapp_active_sessions gauge" in response.content


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::1", ""])
def test_metrics_are_refused_to_other_addresses_without_a_token(
    client: Client, address: str
) -> None:
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 403
    assert b"voiceapp_" not in response.content


def test_with_a_token_configured_every_scrape_needs_it(client: Client, settings) -> None:
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    for address in ("127.0.0.1", "203.0.113.9"):
        refused = client.get("/metrics", REMOTE_ADDR=address)
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
        wrong = client.get(
            "/metrics", REMOTE_ADDR=address, headers={"Authorization": "Bearer not-it"}
        )
        assert wrong.status_code == 401
        allowed = client.get(
            "/metrics",
            REMOTE_ADDR=address,
            headers={"Authorization": "Bearer scrape-secret-0123456789"},
        )
        assert allowed.status_code == 200


def test_metrics_only_answer_get_and_head(client: Client) -> None:
    assert client.post("/metrics").status_code == 405
    assert client.head("/metrics").status_code == 200


# --- Several processes ----------------------------------------------------------------------


def run_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "voiceapp.settings_test", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


RECORD = """
import django
django.setup()
from voiceapp import metrics
metrics.turn_recorded(channel="web_voice", status="complete", first_token_ms=250, fallback=False)
metrics.ACTIVE_SESSIONS.labels(socket={socket!r}).inc()  # as an open socket does
"""


def test_with_a_multiprocess_directory_scrapes_sum_every_process(tmp_path: Path) -> None:
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    # The first process records a turn and exits with a socket still counted as open.
    run_python(RECORD.format(socket="voice"), **shared)
    # The second records another and scrapes while its own socket is open.
    text = run_python(
        RECORD.format(socket="chat") + "print(metrics.exposition().decode())", **shared
    )
    samples = parse(text)
    assert (
        value(samples, "voiceapp_turns_recorded_total", channel="web_voice", status="complete") == 2
    )
    assert value(samples, "voiceapp_llm_first_token_seconds_count", channel="web_voice") == 2
    assert value(samples, "voiceapp_active_sessions", socket="chat") == 1
    # A process that has exited no longer holds a session open.
    assert value(samples, "voiceapp_active_sessions", socket="voice") == 0


def test_a_missing_multiprocess_directory_stops_start_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "nowhere")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"PROMETHEUS_MULTIPROC_DIR='{tmp_path / 'nowhere'}' is not a directory" in result.stderr


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_a_socket_on_one_server_process_shows_in_the_scrape_of_another(
    start_server, make_agent, tmp_path: Path
) -> None:
    await sync_to_async(make_agent)(slug="doctor")
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "VOICE_LOAD_MODELS_AT_START": "false"}
    talking = await sync_to_async(start_server)(**shared)
    scraped = await sync_to_async(start_server)(**shared)

    async def scrape_other() -> Samples:
        async with httpx.AsyncClient(base_url=scraped.http_url, timeout=10) as http:
            response = await http.get("/metrics")
        assert response.status_code == 200
        return parse(response.text)

    turns = {"channel": "hume_clm", "status": "complete"}
    async with websockets.connect(f"{talking.ws_url}/llm/doctor") as socket:
        await socket.send(payload([sdk_user("I am sad today.")], "across-processes"))
        while json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] != (
            "assistant_end"
        ):
            pass
        during = await scrape_other()
    assert value(during, "voiceapp_active_sessions", socket="clm") == 1
    assert value(during, "voiceapp_turns_recorded_total", **turns) == 1

    # The server notices the close asynchronously: wait until its gauge says so.
    after = during

    async def closed() -> bool:
        nonlocal after
        after = await scrape_other()
        return value(after, "voiceapp_active_sessions", socket="clm") == 0

    await until(closed, what="the other process to count the socket as closed")
    assert value(after, "voiceapp_turns_recorded_total", **turns) == 1
    assert "Traceback" not in talking.log() + scraped.log()
    await sync_to_async(connections.close_all)()
