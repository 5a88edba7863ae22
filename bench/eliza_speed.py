"""How fast is the ELIZA engine? Run: ``.venv/bin/python bench/eliza_speed.py``.

Replays every reference conversation (``shared/eliza/conversations.json`` on the
1966 DOCTOR script, a fresh engine per conversation) many times and reports
responses per second and microseconds per response, the median of several rounds.

Beside it, in the same run, a baseline: the input normalisation and tokenisation
step alone, over the same inputs. No ELIZA can be faster than reading its input, so
the ratio engine/baseline says how much the rest of the work (keystack,
decomposition, reassembly, memory) costs on top of that floor.

Needs no Django.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "eliza"
# Run as a script, Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(ROOT))

from agents.eliza import Eliza, Script, parse_script  # noqa: E402 (needs the path above)
from agents.eliza.engine import tokenize  # noqa: E402


def load() -> tuple[Script, list[list[tuple[str, str]]]]:
    script = parse_script((SHARED / "DOCTOR-1966.txt").read_text("utf-8"))
    data = json.loads((SHARED / "conversations.json").read_text("utf-8"))
    conversations = [
        [(exchange["user"], exchange["eliza"].upper()) for exchange in conversation["exchanges"]]
        for conversation in data["conversations"]
    ]
    return script, conversations


def check(script: Script, conversations: list[list[tuple[str, str]]]) -> None:
    """Refuse to time an engine that gives wrong answers."""
    for number, conversation in enumerate(conversations, 1):
        engine = Eliza(script)
        for text, expected in conversation:
            got = engine.respond(text)
            if got != expected:
                raise SystemExit(f"conversation {number}: {text!r} gave {got!r}, not {expected!r}")


def engine_pass(script: Script, inputs: list[list[str]]) -> None:
    for conversation in inputs:
        respond = Eliza(script).respond
        for text in conversation:
            respond(text)


def baseline_pass(inputs: list[list[str]]) -> None:
    for conversation in inputs:
        for text in conversation:
            tokenize(text)


def median_seconds(run: Callable[[], None], passes: int, rounds: int) -> float:
    """Median wall time of one pass, over ``rounds`` rounds of ``passes`` passes."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(passes):
            run()
        times.append((time.perf_counter() - start) / passes)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="engine time to spend")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"reference data not found at {SHARED}", file=sys.stderr)
        return 1

    script, conversations = load()
    check(script, conversations)
    inputs = [[text for text, _ in conversation] for conversation in conversations]
    responses = sum(len(conversation) for conversation in inputs)

    def engine() -> None:
        engine_pass(script, inputs)

    def baseline() -> None:
        baseline_pass(inputs)

    # Size the rounds from a short warm-up so the engine runs for about --seconds.
    warmup = median_seconds(engine, passes=20, rounds=1)
    passes = max(1, round(args.seconds / args.rounds / warmup))
    engine_s = median_seconds(engine, passes, args.rounds)
    baseline_s = median_seconds(baseline, passes, args.rounds)

    print(
        f"ELIZA speed: DOCTOR-1966, {len(inputs)} conversations, {responses} responses a pass, "
        f"{passes} passes x {args.rounds} rounds (median round)"
    )
    print(f"Python {sys.version.split()[0]}")
    for name, seconds in [("engine", engine_s), ("baseline (tokenize only)", baseline_s)]:
        per_response = seconds / responses
        print(
            f"  {name:<26} {1 / per_response:>12,.0f} responses/s "
            f"{per_response * 1e6:>8.2f} us/response"
        )
    print(f"  ratio engine/baseline      {engine_s / baseline_s:>12.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
