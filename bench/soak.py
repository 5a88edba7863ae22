"""Soak: custom-LLM sockets and voice sessions against two server processes for minutes.

Starts N product servers (uvicorn, one shared database: PostgreSQL + Redis when
``DATABASE_URL``/``REDIS_URL`` are set, as ``make bench-soak`` sets them; otherwise a
temporary SQLite file) and drives them from one asyncio client, spread evenly over them:

- ``--sockets`` Hume custom-LLM sockets, opened before the clock starts and open for the
  whole run. Each runs sessions of ``--turns`` turns back to back (a new
  ``custom_session_id``, so a new stored conversation, per session), sending the
  session's whole history as Hume does, with a think time between a reply and the next
  message (uniform in 0.5-1.5 x ``--think``): a socket is one caller, who listens and
  speaks between turns. The sockets join during the warm-up, each at a random point of a
  session; from then on the offered load is about ``sockets / think`` turns/s.
- ``--voice`` callers on the Echo-style audio socket, each running sessions of ``--turns``
  turns (one socket per session, as a call): Piper-made speech streamed in real time, the
  reply listened to for as long as its audio lasts, then the next utterance.

Measures per-turn latency (custom LLM: payload sent -> ``assistant_end``; voice: the
server's voice-to-voice, last voiced audio -> first reply audio, and the client's view of
it), turns/s, errors by kind (the client's and the server logs'), lost turns (turns
answered to the client vs turns stored for the soak's conversations, counted through the
ORM after the servers stop), and each process's CPU and RSS every 5 s, with the RSS
growth from the end of the warm-up to the end of the run. Exits non-zero on lost turns,
a traceback in a server log, or a server that died during the run; RSS growth is
reported against its goal (<= 5%) but does not fail the run.

    make bench-soak                      # PostgreSQL + Redis, 2 servers, 600 s
    make bench-soak SOAK_ARGS="--duration 60"
    .venv/bin/python bench/soak.py --duration 30 --sockets 50 --voice 2   # SQLite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import websockets
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.clm_load import LINES  # noqa: E402
from bench.servers import (  # noqa: E402
    PY,
    Server,
    bench_env,
    cpu_seconds,
    prepare_database,
    profile,
    rss_mb,
    start_servers,
    stop_servers,
)
from bench.voice_latency import CHUNK, UTTERANCES, synthesize  # noqa: E402

SAMPLE_EVERY_S = 5.0
CLM_TURN_TIMEOUT_S = 30.0
VOICE_TURN_TIMEOUT_S = 30.0
VOICE_OPEN_TIMEOUT_S = 60.0
RECONNECT_AFTER_S = 1.0
RSS_GOAL_PCT = 5.0
REPLY_RATE = 44_100  # the voice reply's sample rate (pcm_44100, the default format)
SOCKET_ERRORS = (OSError, TimeoutError, websockets.WebSocketException)
PROSODY = {"Calmness": 0.5, "Interest": 0.3}
VOICE_PATH = "/agents/eliza/conversation"
VOICE_STAGES = ("stt_ms", "tts_first_audio_ms")


@dataclass(frozen=True)
class Settings:
    duration: float
    sockets: int
    voice: int
    turns: int
    think: float
    warmup: float
    run_id: str  # prefix of the custom_session_ids, to find the soak's conversations


@dataclass
class ProcessSample:
    at_s: float
    mb: list[float]  # one per server, then the client
    cpu_s: list[float]  # CPU time used so far, in the same order


def sample(pids: list[int], at_s: float) -> ProcessSample:
    return ProcessSample(at_s, [rss_mb(pid) for pid in pids], [cpu_seconds(pid) for pid in pids])


@dataclass
class Run:
    """What the client saw; every coroutine of the run writes here (one event loop)."""

    settings: Settings
    start: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    clm_latency_ms: list[float] = field(default_factory=list)
    clm_ended_at: list[float] = field(default_factory=list)  # seconds into the run
    voice_ended_at: list[float] = field(default_factory=list)
    voice_v2v_ms: list[float] = field(default_factory=list)  # the server's figure
    voice_client_ms: list[float] = field(default_factory=list)
    voice_stages: dict[str, list[float]] = field(default_factory=dict)
    clm_done: Counter[str] = field(default_factory=Counter)  # session id -> turns answered
    voice_done: Counter[str] = field(default_factory=Counter)  # conversation id -> turns
    voice_greeted: set[str] = field(default_factory=set)  # conversations greeted (1 turn)
    clm_errors: Counter[str] = field(default_factory=Counter)
    voice_errors: Counter[str] = field(default_factory=Counter)
    samples: list[ProcessSample] = field(default_factory=list)
    exited: dict[int, int] = field(default_factory=dict)  # server number -> exit code

    def going(self) -> bool:
        return time.monotonic() - self.start < self.settings.duration

    def at(self) -> float:
        return time.monotonic() - self.start

    async def pause(self, seconds: float) -> bool:
        """Sleep, cut short by the end of the run; True while the run goes on."""
        await asyncio.sleep(max(0.0, min(seconds, self.settings.duration - self.at())))
        return self.going()

    async def think(self, rng: random.Random) -> bool:
        """A caller's pause between a reply and the next message."""
        return await self.pause(self.settings.think * rng.uniform(0.5, 1.5))

    @property
    def clm_turns(self) -> int:
        return sum(self.clm_done.values())

    @property
    def voice_turns(self) -> int:
        return sum(self.voice_done.values())

    @property
    def client_errors(self) -> int:
        return sum(self.clm_errors.values()) + sum(self.voice_errors.values())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def error_kind(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else f"connection {type(exc).__name__}"


# --- custom LLM -------------------------------------------------------------------------


async def clm_turn(
    ws: websockets.ClientConnection,
    session_id: str,
    history: list[dict[str, Any]],
    text: str,
    errors: Counter[str],
) -> float:
    """Send one user message after the session's history; return the latency in ms once
    ``assistant_end`` arrives, with the reply appended to ``history``."""
    history.append(
        {
            "type": "user_message",
            "message": {"role": "user", "content": text},
            "models": {"prosody": {"scores": PROSODY}},
        }
    )
    sent = time.perf_counter()
    await ws.send(json.dumps({"messages": history, "custom_session_id": session_id}))
    parts: list[str] = []
    async with asyncio.timeout(CLM_TURN_TIMEOUT_S):
        while True:
            frame = json.loads(await ws.recv())
            kind = frame.get("type")
            if kind == "assistant_end":
                break
            if kind == "assistant_input":
                parts.append(str(frame.get("text", "")))
            elif kind == "error":
                errors[f"error frame {frame.get('code')}"] += 1
    latency = (time.perf_counter() - sent) * 1000
    reply = {"role": "assistant", "content": " ".join(parts)}
    history.append({"type": "assistant_message", "message": reply})
    return latency


def clm_connect(server: Server) -> websockets.connect:
    return websockets.connect(server.url("/llm"), max_size=None, open_timeout=60)


async def clm_open_all(servers: list[Server], run: Run) -> list[websockets.ClientConnection | None]:
    """Open the custom-LLM sockets before the clock starts (spread over the servers, a
    few at a time): the run measures open sockets, not a burst of connections. A socket
    that fails to open is counted and opened again by its caller."""
    gate = asyncio.Semaphore(50)

    async def one(index: int) -> websockets.ClientConnection | None:
        async with gate:
            try:
                return await clm_connect(servers[index % len(servers)])
            except SOCKET_ERRORS as exc:
                run.clm_errors[error_kind(exc)] += 1
                return None

    return await asyncio.gather(*(one(i) for i in range(run.settings.sockets)))


async def clm_caller(
    index: int, server: Server, run: Run, ws: websockets.ClientConnection | None
) -> None:
    """One custom-LLM socket for the whole run; after a failure (a timeout, a dropped
    socket) it reconnects and starts a new session, as Hume would."""
    settings = run.settings
    rng = random.Random(index)
    session = 0
    # Callers join during the warm-up, each at a random point of a session (its first
    # session is 1 to ``turns`` turns long), so that sessions begin and end spread out in
    # time as real calls do, instead of all at once every ``turns`` turns.
    join_at = rng.uniform(0, settings.warmup)
    turns = rng.randint(1, settings.turns)
    while run.going():
        try:
            if ws is None:
                ws = await clm_connect(server)
            async with ws:
                if not await run.pause(join_at - run.at()):
                    return
                while run.going():
                    session_id = f"{settings.run_id}-{index}-{session}"
                    session += 1
                    history: list[dict[str, Any]] = []
                    for turn in range(turns):
                        if turn and not await run.think(rng):
                            break
                        text = LINES[(index + session + turn) % len(LINES)]
                        latency = await clm_turn(ws, session_id, history, text, run.clm_errors)
                        run.clm_done[session_id] += 1
                        run.clm_latency_ms.append(latency)
                        run.clm_ended_at.append(run.at())
                    turns = settings.turns
                    await run.think(rng)
        except SOCKET_ERRORS as exc:
            run.clm_errors[error_kind(exc)] += 1
            session += 1
            ws = None
            await asyncio.sleep(RECONNECT_AFTER_S)


# --- voice ------------------------------------------------------------------------------


@dataclass
class VoiceTurn:
    voice_to_voice_ms: float | None  # the server's figure, from the metrics frame
    client_ms: float | None  # last chunk of speech sent -> first reply audio received
    stages: dict[str, float]  # the server's per-stage figures that the frame carries


class VoiceCall:
    """One voice session on an open socket: msgpack maps both ways."""

    def __init__(self, ws: websockets.ClientConnection, errors: Counter[str]) -> None:
        self.ws = ws
        self.errors = errors
        self.conversation = ""

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(msgpack.packb(message))

    async def recv(self) -> dict[str, Any]:
        message: dict[str, Any] = msgpack.unpackb(await self.ws.recv(), raw=False)
        if message.get("type") == "error":
            self.errors[f"error frame {message.get('code')}"] += 1
        return message

    async def open(self) -> None:
        """Open the session; return once its id and the end of the greeting are in."""
        await self.send({"type": "open"})
        greeted = False
        async with asyncio.timeout(VOICE_OPEN_TIMEOUT_S):
            while not (self.conversation and greeted):
                frame = await self.recv()
                if frame.get("type") == "session":
                    self.conversation = str(frame["conversation"])
                elif frame.get("type") == "metrics":
                    greeted = True
        await self.send({"type": "state", "state": "waiting"})

    async def turn(self, audio: np.ndarray) -> VoiceTurn:
        """Speak ``audio`` in real time, wait for the reply, listen to it to the end."""
        for i in range(0, len(audio), CHUNK):
            await self.send({"type": "audio", "audio": audio[i : i + CHUNK].tobytes()})
            await asyncio.sleep(CHUNK / 16_000 - 0.001)
        speech_end = time.perf_counter()
        pump = asyncio.create_task(self._silence())
        first_audio: float | None = None
        reply_bytes = 0
        try:
            async with asyncio.timeout(VOICE_TURN_TIMEOUT_S):
                while True:
                    frame = await self.recv()
                    if frame.get("type") == "audio":
                        reply_bytes += len(frame["audio"]) - 8  # after the 8-byte token
                        if first_audio is None:
                            first_audio = time.perf_counter()
                    elif frame.get("type") == "metrics":
                        break
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        client_ms = None
        if first_audio is not None:
            client_ms = (first_audio - speech_end) * 1000
            # The caller hears the reply out (s16 mono) before speaking again.
            playout = first_audio + reply_bytes / 2 / REPLY_RATE - time.perf_counter()
            await asyncio.sleep(max(0.0, playout))
        await self.send({"type": "state", "state": "waiting"})
        v2v = frame.get("voice_to_voice_ms")
        stages = {k: float(frame[k]) for k in VOICE_STAGES if frame.get(k) is not None}
        return VoiceTurn(None if v2v is None else float(v2v), client_ms, stages)

    async def _silence(self) -> None:
        """The microphone stays open: silence while the caller waits for the reply."""
        silence = np.zeros(CHUNK, np.float32).tobytes()
        while True:
            await self.send({"type": "audio", "audio": silence})
            await asyncio.sleep(CHUNK / 16_000)


def voice_connect(server: Server) -> websockets.connect:
    return websockets.connect(
        server.url(VOICE_PATH),
        max_size=None,
        # The page's own origin: scheme, host and port, as the server compares them.
        origin=Origin(server.url("", scheme="http")),
        open_timeout=60,
    )


async def voice_caller(index: int, server: Server, speech: dict[str, np.ndarray], run: Run) -> None:
    """One caller: sessions of ``turns`` turns, one socket (a call) each, until the end."""
    await asyncio.sleep(index * 0.37)  # callers do not all start talking at once
    said = index
    while run.going():
        try:
            async with voice_connect(server) as ws:
                call = VoiceCall(ws, run.voice_errors)
                await call.open()
                run.voice_greeted.add(call.conversation)
                for _ in range(run.settings.turns):
                    if not run.going():
                        break
                    said += 1
                    turn = await call.turn(speech[UTTERANCES[said % len(UTTERANCES)]])
                    run.voice_done[call.conversation] += 1
                    run.voice_ended_at.append(run.at())
                    if turn.voice_to_voice_ms is not None:
                        run.voice_v2v_ms.append(turn.voice_to_voice_ms)
                    if turn.client_ms is not None:
                        run.voice_client_ms.append(turn.client_ms)
                    for stage, ms in turn.stages.items():
                        run.voice_stages.setdefault(stage, []).append(ms)
                await call.send({"type": "close"})
        except SOCKET_ERRORS as exc:
            run.voice_errors[error_kind(exc)] += 1
            await asyncio.sleep(RECONNECT_AFTER_S)


async def warm_voice(servers: list[Server], speech: dict[str, np.ndarray]) -> None:
    """One short call per server before the clock starts, so that the speech models are
    loaded and used once when the first RSS sample is taken. Not counted."""

    async def one(number: int, server: Server) -> None:
        errors: Counter[str] = Counter()
        try:
            async with voice_connect(server) as ws:
                call = VoiceCall(ws, errors)
                await call.open()
                await call.turn(speech[UTTERANCES[0]])
                await call.send({"type": "close"})
        except SOCKET_ERRORS as exc:
            detail = ", ".join(errors) or error_kind(exc)
            raise SystemExit(f"the warm-up call to server {number} failed: {detail}") from exc

    began = time.monotonic()
    await asyncio.gather(*(one(number, server) for number, server in enumerate(servers, 1)))
    print(f"  warm-up call per server: {time.monotonic() - began:.0f} s", flush=True)


# --- the run ----------------------------------------------------------------------------


async def watch(servers: list[Server], run: Run, done: asyncio.Event) -> None:
    """Sample RSS (each server's, the client's) every few seconds and note servers that
    exit; print a progress line about ten times a run."""
    pids = [*(server.pid for server in servers), os.getpid()]
    every = max(10.0, run.settings.duration / 10)
    next_line = every
    while not done.is_set():
        run.samples.append(sample(pids, run.at()))
        for number, server in enumerate(servers, 1):
            code = server.process.poll()
            if code is not None:
                run.exited.setdefault(number, code)
        if run.at() >= next_line:
            next_line += every
            rss = " / ".join(f"{mb:.0f}" for mb in run.samples[-1].mb[: len(servers)])
            dead = f"   EXITED: server {sorted(run.exited)}" if run.exited else ""
            print(
                f"  [{run.at():4.0f} s] custom LLM {run.clm_turns:>7,} turns"
                f" ({run.clm_turns / run.at():5.1f}/s)   voice {run.voice_turns:>4} turns"
                f"   client errors {run.client_errors}   server RSS {rss} MB{dead}",
                flush=True,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), SAMPLE_EVERY_S)
    run.samples.append(sample(pids, run.at()))


async def run_load(servers: list[Server], speech: dict[str, np.ndarray], run: Run) -> None:
    if run.settings.voice:
        await warm_voice(servers, speech)
    began = time.monotonic()
    sockets = await clm_open_all(servers, run)
    print(f"  {run.settings.sockets} custom-LLM sockets open in {time.monotonic() - began:.1f} s")
    run.start = time.monotonic()
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(servers, run, done))
    n = len(servers)
    await asyncio.gather(
        *(clm_caller(i, servers[i % n], run, ws) for i, ws in enumerate(sockets)),
        *(voice_caller(i, servers[i % n], speech, run) for i in range(run.settings.voice)),
    )
    run.elapsed = run.at()
    done.set()
    await watcher


# --- afterwards -------------------------------------------------------------------------

# Run with ``manage.py shell -c`` (the servers' settings and database): turns stored per
# conversation of this soak, as JSON on the last line.
STORED_QUERY = """
import json, pathlib
from django.db.models import Count
from conversations.models import Channel, Conversation
q = json.loads(pathlib.Path({path!r}).read_text())
clm = Conversation.objects.filter(channel=Channel.HUME_CLM, external_id__startswith=q["prefix"])
voice = Conversation.objects.filter(channel=Channel.WEB_VOICE, pk__in=q["voice"])
print(json.dumps({{
    "clm": dict(clm.annotate(n=Count("turns")).values_list("external_id", "n")),
    "voice": {{str(k): n for k, n in voice.annotate(n=Count("turns")).values_list("pk", "n")}},
}}))
"""


@dataclass
class Stored:
    expected: int
    stored: int
    lost: int  # turns answered to the client that are not in the database
    extra: int  # turns stored beyond those answered (a reply cut off by a failure)


def stored_turns(env: dict[str, str], tmp: Path, run: Run) -> Stored:
    """Compare, conversation by conversation, what the client was answered with what the
    database holds, so that an extra turn in one cannot hide a lost one in another."""
    query = tmp / "soak-query.json"
    voice_ids = sorted(run.voice_greeted)
    query.write_text(json.dumps({"prefix": f"{run.settings.run_id}-", "voice": voice_ids}))
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", STORED_QUERY.format(path=str(query))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    db: dict[str, dict[str, int]] = json.loads(out.strip().splitlines()[-1])
    # Each answered turn is two rows, the user's message and the reply; a voice session's
    # spoken greeting is one more.
    expected = {session_id: 2 * turns for session_id, turns in run.clm_done.items()}
    expected.update({c: 1 + 2 * run.voice_done[c] for c in voice_ids})
    stored = {**db["clm"], **db["voice"]}
    keys = set(expected) | set(stored)
    return Stored(
        expected=sum(expected.values()),
        stored=sum(stored.values()),
        lost=sum(max(0, expected.get(k, 0) - stored.get(k, 0)) for k in keys),
        extra=sum(max(0, stored.get(k, 0) - expected.get(k, 0)) for k in keys),
    )


# settings.LOGGING, LOG_FORMAT=plain: "<date> <time> <LEVEL> <logger> [conv=<id>] <message>"
_DJANGO_LINE = re.compile(r"^\S+(?: \S+)? (WARNING|ERROR|CRITICAL) (\S+)")
_UVICORN_LINE = re.compile(r"^(WARNING|ERROR|CRITICAL):\s+(.{0,48})")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


@dataclass
class LogErrors:
    tracebacks: Counter[str] = field(default_factory=Counter)  # by final exception type
    lines: Counter[str] = field(default_factory=Counter)  # WARNING/ERROR lines by logger


def scan_log(text: str) -> LogErrors:
    """Tracebacks (a chain counts once, by its last exception) and log lines by level."""
    found = LogErrors()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Traceback (most recent call last):"):
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                i += 1
            exception = lines[i].split(":", 1)[0] if i < len(lines) else "?"
            after = [ln for ln in lines[i + 1 : i + 4] if ln.strip()]
            if not (after and after[0].startswith(_CHAINED)):
                found.tracebacks[exception] += 1
        elif match := _DJANGO_LINE.match(line):
            found.lines[f"{match[1]} {match[2]}"] += 1
        elif match := _UVICORN_LINE.match(line):
            found.lines[f"{match[1]} uvicorn {match[2].strip()!r}"] += 1
        i += 1
    return found


def process_table(run: Run, servers: list[Server]) -> tuple[list[float], list[float]]:
    """Print CPU and RSS per process; return each server's RSS growth (%) from the warm-up
    to the end, and over the second half of the run (whether it levels off).

    A voice turn holds tens of MB for a moment, so one sample against another is noise:
    the growth compares the median over a window just after the warm-up with the median
    over a window of the same length at the end of the run.
    """
    samples = run.samples
    window = max(3 * SAMPLE_EVERY_S, 0.1 * run.settings.duration)
    warmup = run.settings.warmup
    warm = [s for s in samples if warmup <= s.at_s < warmup + window] or samples[-1:]
    end = [s for s in samples if s.at_s > samples[-1].at_s - window]
    middle_at = (warmup + samples[-1].at_s) / 2
    middle = [s for s in samples if abs(s.at_s - middle_at) <= window / 2] or warm
    span = samples[-1].at_s - samples[0].at_s
    print(
        f"  process (sampled every {SAMPLE_EVERY_S:.0f} s)   CPU   RSS MB: start"
        "   after warm-up   at the end    peak   growth   2nd half"
    )
    print(
        f"  {'':<28} % of a core {'':>12}"
        f" {warm[0].at_s:4.0f}-{warm[-1].at_s:<4.0f} s {end[0].at_s:5.0f}-{end[-1].at_s:<4.0f} s"
    )
    names = [f"server {n} (pid {s.pid})" for n, s in enumerate(servers, 1)] + ["client"]
    growth: list[float] = []
    second_half: list[float] = []
    for i, name in enumerate(names):
        cpu = (samples[-1].cpu_s[i] - samples[0].cpu_s[i]) / span * 100 if span else math.nan
        before = statistics.median(s.mb[i] for s in warm)
        after = statistics.median(s.mb[i] for s in end)
        change = (after - before) / before * 100
        mid = statistics.median(s.mb[i] for s in middle)
        late = (after - mid) / mid * 100
        if i < len(servers):
            growth.append(change)
            second_half.append(late)
        print(
            f"    {name:<28} {cpu:4.0f}% {samples[0].mb[i]:13.0f} {before:15.0f} {after:12.0f}"
            f" {max(s.mb[i] for s in samples):7.0f}  {change:+6.1f}%  {late:+6.1f}%"
        )
    return growth, second_half


def steady_rate(run: Run, ended_at: list[float]) -> float:
    """Turns per second from the end of the warm-up to the end of the run."""
    start, end = run.settings.warmup, run.settings.duration
    if end <= start:
        return float("nan")
    return sum(1 for at in ended_at if start <= at < end) / (end - start)


def report(run: Run, servers: list[Server], stored: Stored, logs: list[LogErrors]) -> bool:
    """Print the summary and a verdict per goal; True when the run passes: no lost turn,
    no traceback in a server log, every server alive to the end (RSS growth is reported,
    not enforced)."""
    settings, elapsed = run.settings, run.elapsed
    print(f"Results: {elapsed:.0f} s of load, warm-up {settings.warmup:.0f} s")
    print(
        "  load               turns   turns/s   after warm-up   offered/s"
        "    p50 ms    p99 ms   client errors"
    )
    clm, voice = run.clm_latency_ms, run.voice_v2v_ms
    print(
        f"  custom LLM   {run.clm_turns:>10,} {run.clm_turns / elapsed:9.1f}"
        f" {steady_rate(run, run.clm_ended_at):15.1f} {settings.sockets / settings.think:11.1f}"
        f" {pct(clm, 0.5):9.1f} {pct(clm, 0.99):9.1f}   {sum(run.clm_errors.values())}"
    )
    print(
        f"  voice        {run.voice_turns:>10,} {run.voice_turns / elapsed:9.2f}"
        f" {steady_rate(run, run.voice_ended_at):15.2f} {'-':>11}"
        f" {pct(voice, 0.5):9.0f} {pct(voice, 0.99):9.0f}   {sum(run.voice_errors.values())}"
    )
    client = run.voice_client_ms
    stages = ", ".join(
        f"{stage} p50 {pct(values, 0.5):.0f} / p99 {pct(values, 0.99):.0f}"
        for stage, values in run.voice_stages.items()
    )
    print(
        "  custom LLM latency: payload sent -> assistant_end; offered = sockets / mean think"
        " time, once every socket has joined (they join during the warm-up)."
    )
    print(
        "  voice latency: voice-to-voice as the server measures it (last voiced audio ->"
        " first reply audio); client-side (last speech sent -> first reply audio received)"
        f" p50 {pct(client, 0.5):.0f} / p99 {pct(client, 0.99):.0f} ms; {stages or 'no stages'}."
    )
    print(
        f"  stored turns: {stored.stored:,} of {stored.expected:,} expected"
        f" ({stored.lost} lost, {stored.extra} extra)"
    )
    kinds = Counter({f"custom LLM client: {k}": n for k, n in run.clm_errors.items()})
    kinds.update({f"voice client: {k}": n for k, n in run.voice_errors.items()})
    for number, log in enumerate(logs, 1):
        kinds.update({f"server {number} traceback: {k}": n for k, n in log.tracebacks.items()})
        kinds.update({f"server {number} log: {k}": n for k, n in log.lines.items()})
    for number, code in sorted(run.exited.items()):
        kinds[f"server {number} exited during the run with code {code}"] += 1
    print("  errors by kind:" + ("" if kinds else " none"))
    for kind, count in kinds.most_common():
        print(f"    {count:>6}  {kind}")
    growth, second_half = process_table(run, servers)

    tracebacks = sum(sum(log.tracebacks.values()) for log in logs)
    verdicts = [
        (stored.lost == 0, f"lost turns: {stored.lost} (goal 0: stored = sent)"),
        (tracebacks == 0, f"tracebacks in the server logs: {tracebacks} (goal 0)"),
        (not run.exited, f"servers that died during the run: {len(run.exited)} (goal 0)"),
        (
            all(g <= RSS_GOAL_PCT for g in growth),
            "RSS growth after warm-up: "
            + ", ".join(f"server {n} {g:+.1f}%" for n, g in enumerate(growth, 1))
            + f" (goal <= {RSS_GOAL_PCT:.0f}% each)",
        ),
        (
            all(g <= RSS_GOAL_PCT / 2 for g in second_half),
            "RSS levels off: growth over the second half "
            + ", ".join(f"server {n} {g:+.1f}%" for n, g in enumerate(second_half, 1))
            + f" (levelled when <= {RSS_GOAL_PCT / 2:.1f}% each)",
        ),
    ]
    print("Verdicts")
    for ok, line in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {line}")
    return stored.lost == 0 and tracebacks == 0 and not run.exited


def first_traceback(log: str, lines: int = 40) -> str:
    at = log.find("Traceback (most recent call last):")
    return "" if at < 0 else "\n".join(log[at:].splitlines()[:lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--sockets", type=int, default=500, help="custom-LLM sockets")
    parser.add_argument("--voice", type=int, default=10, help="concurrent voice callers")
    parser.add_argument("--turns", type=int, default=20, help="turns per session")
    parser.add_argument("--servers", type=int, default=2, help="server processes")
    parser.add_argument(
        "--think",
        type=float,
        default=10.0,
        help="mean seconds between a reply and the next message (a Hume caller listens to"
        " the reply and speaks the next one)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the RSS baseline (default: 10%% of the duration, at least two"
        " think times, at most 60)",
    )
    parser.add_argument(
        "--database-url", default=None, help="default: $DATABASE_URL, else a temporary SQLite file"
    )
    args = parser.parse_args()
    warmup = args.warmup
    if warmup is None:
        warmup = min(60.0, max(args.duration * 0.1, 2 * args.think))
    settings = Settings(
        duration=args.duration,
        sockets=args.sockets,
        voice=args.voice,
        turns=args.turns,
        think=args.think,
        warmup=warmup,
        run_id=f"soak-{uuid.uuid4().hex[:8]}",
    )
    speech = synthesize(UTTERANCES) if args.voice else {}

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = bench_env(
            tmp,
            args.database_url or os.environ.get("DATABASE_URL"),
            VOICE_MAX_SESSIONS_PER_CLIENT=str(max(4, 4 * args.voice)),
            # Without voice callers the servers run as a text-only deployment would.
            VOICE_LOAD_MODELS_AT_START=str(bool(args.voice)).lower(),
            LOG_FORMAT="plain",  # what scan_log reads
        )
        prepare_database(env)
        print(
            f"Soak: {args.servers} server processes ({profile(env)}), {args.duration:.0f} s;"
            f" {args.sockets} custom-LLM sockets (sessions of {args.turns} turns, think"
            f" {args.think:.1f} s) + {args.voice} voice callers (sessions of {args.turns} turns)",
            flush=True,
        )
        run = Run(settings)
        servers = start_servers(args.servers, env, log_dir=tmp)
        try:
            asyncio.run(run_load(servers, speech, run))
        finally:
            stop_servers(servers)
        stored = stored_turns(env, tmp, run)
        logs = [scan_log(server.log()) for server in servers]
        passed = report(run, servers, stored, logs)
        if not passed:
            for number, server in enumerate(servers, 1):
                if excerpt := first_traceback(server.log()):
                    print(f"--- server {number}: first traceback ---\n{excerpt}")
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
