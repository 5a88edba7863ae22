"""Load on the Hume custom-LLM socket: N concurrent sockets x M turns.

Starts two servers on loopback and drives both with the same client in the same run:

- the product (``voiceapp.asgi`` under uvicorn, as ``make run`` serves it, every turn
  persisted; SQLite in a temporary file unless ``--database-url`` is given), and
- the baseline (``bench/clm_baseline.py``: the same ELIZA behind a bare ASGI app, state in
  memory, nothing stored).

Prints turns/s and p50/p99 turn latency (payload sent -> ``assistant_end``) for each, the
ratios, and checks that the product stored every turn it answered.

    .venv/bin/python bench/clm_load.py [--sockets 200] [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.servers import (  # noqa: E402
    PY,
    bench_env,
    prepare_database,
    start_servers,
    stop_servers,
)

LINES = [
    "I feel tired all the time.",
    "My boss never listens to me.",
    "I think my friends are avoiding me.",
    "Work has been stressful lately.",
    "I can't sleep at night.",
    "My mother calls me every day.",
    "Maybe I need a holiday.",
    "I am worried about money.",
    "Why do I always feel this way?",
    "You are not helping me.",
]


@dataclass
class Result:
    name: str
    turns: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def payload(text: str, session_id: str) -> str:
    message = {
        "type": "user_message",
        "message": {"role": "user", "content": text},
        "models": {"prosody": {"scores": {"Calmness": 0.5, "Interest": 0.3}}},
    }
    return json.dumps({"messages": [message], "custom_session_id": session_id})


async def drive(name: str, url: str, sockets: int, turns: int) -> Result:
    latencies: list[float] = []
    errors = 0
    connections = await asyncio.gather(
        *(websockets.connect(url, max_size=None, open_timeout=60) for _ in range(sockets))
    )
    start = asyncio.Event()

    async def client(index: int, ws: websockets.ClientConnection) -> None:
        nonlocal errors
        await start.wait()
        for turn in range(turns):
            sent = time.perf_counter()
            await ws.send(payload(LINES[(index + turn) % len(LINES)], f"{name}-{index}"))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "assistant_end":
                    break
                if frame["type"] == "error":
                    errors += 1
            latencies.append((time.perf_counter() - sent) * 1000)
        await ws.close()

    tasks = [asyncio.create_task(client(i, ws)) for i, ws in enumerate(connections)]
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return Result(name, sockets * turns, time.perf_counter() - began, latencies, errors)


def stored_turns(env: dict[str, str]) -> int:
    out = subprocess.run(
        [
            PY,
            "manage.py",
            "shell",
            "-c",
            "from conversations.models import Turn; print(Turn.objects.count())",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().splitlines()[-1])


def report(result: Result) -> None:
    print(
        f"  {result.name:<10} {result.turns_per_s:8.1f} turns/s   p50 {result.pct(0.5):7.1f} ms"
        f"   p99 {result.pct(0.99):7.1f} ms   mean {statistics.fmean(result.latencies_ms):7.1f} ms"
        f"   errors {result.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp), args.database_url)
        prepare_database(env)
        before = stored_turns(env)

        print(f"CLM load: {args.sockets} sockets x {args.turns} turns, ELIZA (bundled script)")
        results = []
        for name, app in (
            ("baseline", "bench.clm_baseline:app"),
            ("product", "voiceapp.asgi:application"),
        ):
            servers = start_servers(1, env, app=app)
            try:
                path = "/" if name == "baseline" else "/llm"
                results.append(
                    asyncio.run(drive(name, servers[0].url(path), args.sockets, args.turns))
                )
            finally:
                stop_servers(servers)
        for result in results:
            report(result)
        baseline, product = results
        throughput = product.turns_per_s / baseline.turns_per_s
        p99 = product.pct(0.99) / baseline.pct(0.99)
        print(f"  ratio product/baseline: throughput {throughput:.2f}x, p99 {p99:.2f}x")
        stored = stored_turns(env) - before
        expected = 2 * product.turns  # each turn is a user message and a reply
        verdict = "none lost" if stored == expected else "LOST TURNS"
        print(f"  stored turns: {stored} of {expected} expected ({verdict})")
        if stored != expected:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
