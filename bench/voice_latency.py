"""Voice-to-voice latency of the audio socket, with the bundled models and ELIZA.

Starts the product (uvicorn, temporary SQLite, the demo ELIZA agent) and drives its
Echo-compatible socket with Piper-synthesised utterances streamed in real time (100 ms
chunks), first with 1 session, then with 8 at once. For every turn it records the
server's per-stage metrics and the voice-to-voice time (last voiced sample received ->
first reply audio byte sent), and the client's view of it (last chunk of speech sent ->
first reply audio received, minus the end-of-turn silence it had to send).

The baseline, measured in the same run and process: a naive sequential turn —
end-of-turn silence + faster-whisper on the utterance + Piper's first sentence of the
reply — with the same models and settings.

    .venv/bin/python bench/voice_latency.py [--turns 4] [--sessions 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np
import websockets
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.eliza import Eliza, load_default_script, sentence_case  # noqa: E402
from agents.speech.audio import pcm16_bytes_to_float  # noqa: E402
from agents.speech.faster_whisper import FasterWhisperSTT  # noqa: E402
from agents.speech.piper import PiperTTS  # noqa: E402
from bench.servers import (  # noqa: E402
    bench_env,
    prepare_database,
    rss_mb,
    start_servers,
    stop_servers,
)

UTTERANCES = [
    "I feel tired all the time.",
    "My boss never listens to me.",
    "I think my friends are avoiding me.",
    "I can't sleep at night.",
    "Maybe I need a holiday.",
    "I am worried about money.",
]
CHUNK = 1600  # 100 ms at 16 kHz
END_SILENCE_MS = 500  # the agent's default end-of-turn silence


def synthesize(texts: list[str]) -> dict[str, np.ndarray]:
    tts = PiperTTS(sample_rate=16_000)

    async def one(text: str) -> np.ndarray:
        pcm = b"".join([c.pcm async for c in tts.synthesize(text)])
        return pcm16_bytes_to_float(pcm) * np.float32(0.8)

    async def all_of() -> dict[str, np.ndarray]:
        return {text: await one(text) for text in texts}

    return asyncio.run(all_of())


async def session(
    url: str, speech: dict[str, np.ndarray], turns: int, offset: int, *, listen: bool = True
) -> list[dict[str, Any]]:
    """One caller: after each reply it listens to it (as long as its audio lasts), then
    speaks again, so a session's turns come at the pace of a real conversation."""
    await asyncio.sleep(offset * 0.37)  # callers do not all start talking at once
    results: list[dict[str, Any]] = []
    # The page's own origin (scheme, host and port), as the server compares them.
    page = urlsplit(url)._replace(scheme="http", path="", query="").geturl()
    async with websockets.connect(url, max_size=None, origin=Origin(page)) as ws:

        async def recv() -> dict[str, Any]:
            message: dict[str, Any] = msgpack.unpackb(await ws.recv(), raw=False)
            return message

        await ws.send(msgpack.packb({"type": "open"}))
        while (await recv())["type"] != "metrics":  # the greeting
            pass
        await ws.send(msgpack.packb({"type": "state", "state": "waiting"}))
        silence = np.zeros(CHUNK, np.float32)
        for turn in range(turns):
            text = UTTERANCES[(offset + turn) % len(UTTERANCES)]
            audio = speech[text]
            start = time.perf_counter()
            for i in range(0, len(audio), CHUNK):
                await ws.send(
                    msgpack.packb({"type": "audio", "audio": audio[i : i + CHUNK].tobytes()})
                )
                await asyncio.sleep(CHUNK / 16_000 - 0.001)
            speech_end = time.perf_counter()
            first_audio: float | None = None
            done = asyncio.Event()

            async def pump_silence(done: asyncio.Event = done) -> None:
                while not done.is_set():
                    await ws.send(msgpack.packb({"type": "audio", "audio": silence.tobytes()}))
                    await asyncio.sleep(CHUNK / 16_000)

            pump = asyncio.create_task(pump_silence())
            metrics: dict[str, Any] = {}
            reply_bytes = 0
            while True:
                frame = await recv()
                if frame["type"] == "audio":
                    reply_bytes += len(frame["audio"]) - 8
                if frame["type"] == "audio" and first_audio is None:
                    first_audio = time.perf_counter()
                if frame["type"] == "metrics":
                    metrics = frame
                    break
            done.set()
            await pump
            if listen and first_audio is not None:  # the reply plays out (44.1 kHz s16)
                remaining = first_audio + reply_bytes / 2 / 44_100 - time.perf_counter()
                await asyncio.sleep(max(0.0, remaining))
            await ws.send(msgpack.packb({"type": "state", "state": "waiting"}))
            client_ms = (first_audio - speech_end) * 1000 if first_audio else None
            results.append(
                {**metrics, "client_ms": client_ms, "turn_s": time.perf_counter() - start}
            )
        await ws.send(msgpack.packb({"type": "close"}))
    return results


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(name: str, rows: list[dict[str, Any]]) -> None:
    v2v = [r["voice_to_voice_ms"] for r in rows if r.get("voice_to_voice_ms") is not None]
    print(
        f"  {name}: {len(v2v)} turns  voice-to-voice p50 {pct(v2v, 0.5):6.0f} ms"
        f"  p95 {pct(v2v, 0.95):6.0f} ms  (client-side p50 "
        f"{pct([r['client_ms'] for r in rows if r['client_ms']], 0.5):6.0f} ms)"
    )
    for stage in ("stt_ms", "llm_first_token_ms", "tts_first_audio_ms"):
        values = [r[stage] for r in rows if r.get(stage) is not None]
        if values:
            print(
                f"      {stage:<20} p50 {statistics.median(values):6.0f} ms"
                f"  p95 {pct(values, 0.95):6.0f} ms"
            )
    hits = sum(1 for r in rows if r.get("speculative") == "hit")
    print(f"      speculative transcript used in {hits} of {len(rows)} turns")


def baseline(speech: dict[str, np.ndarray], turns: int) -> list[float]:
    """End-of-turn silence + STT + first TTS sentence, one after another, in-process."""
    stt, tts = FasterWhisperSTT(), PiperTTS(sample_rate=44_100)
    engine = Eliza(load_default_script())

    async def one(audio: np.ndarray) -> float:
        start = time.perf_counter()
        await asyncio.sleep(END_SILENCE_MS / 1000)
        text = (await stt.transcribe(audio)).text
        reply = sentence_case(engine.respond(text))
        first = reply.split(". ")[0]
        async for _ in tts.synthesize(first):
            break
        return (time.perf_counter() - start) * 1000

    async def run() -> list[float]:
        await one(speech[UTTERANCES[0]])  # warm-up
        return [await one(speech[UTTERANCES[i % len(UTTERANCES)]]) for i in range(turns)]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=4, help="turns per session")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions")
    args = parser.parse_args()
    speech = synthesize(UTTERANCES)

    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp), VOICE_MAX_SESSIONS_PER_CLIENT=str(args.sessions * 4))
        prepare_database(env)
        servers = start_servers(1, env)
        server = servers[0]
        try:
            url = server.url("/agents/eliza/conversation")
            print(
                "Voice latency: ELIZA, faster-whisper tiny.en int8, Piper joe;"
                f" {args.turns} turns per session"
            )
            asyncio.run(session(url, speech, 1, 0))  # warm the server's models
            one = asyncio.run(session(url, speech, args.turns * 2, 0))
            summarise("1 session ", one)

            async def many() -> list[dict[str, Any]]:
                rows = await asyncio.gather(
                    *(session(url, speech, args.turns, i) for i in range(args.sessions))
                )
                return [row for group in rows for row in group]

            summarise(f"{args.sessions} sessions", asyncio.run(many()))
            print(f"  server RSS with all models loaded: {rss_mb(server.pid):.0f} MB")
        finally:
            stop_servers(servers)

    naive = baseline(speech, args.turns * 2)
    print(
        f"  baseline (naive sequential, in-process): p50 {pct(naive, 0.5):6.0f} ms"
        f"  p95 {pct(naive, 0.95):6.0f} ms"
    )
    print(
        "  ratio 1-session p50 / baseline p50:"
        f" {pct([r['voice_to_voice_ms'] for r in one], 0.5) / pct(naive, 0.5):.2f}"
    )


if __name__ == "__main__":
    main()
