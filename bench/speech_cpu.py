"""Local speech on this CPU. Run: ``.venv/bin/python bench/speech_cpu.py``.

Measures the speech layer as the realtime pipeline uses it, and beside it, in the same run,
the libraries used the plain way:

* STT: a ~3 s Piper utterance through ``FasterWhisperSTT`` (bundled tiny.en, int8, one
  thread per call, beam 1, no timestamps, in the inference pool), against ``WhisperModel``
  with the library defaults (``cpu_threads=0``: all cores; ``beam_size=5``). Median of N.
  Also the throughput of 8 transcriptions run 2 at a time, which is the load the thread
  setting is chosen for.
* TTS: time to the first audio chunk of a 1- and a 3-sentence reply through ``PiperTTS``
  (streamed per sentence), against Piper's plain ``synthesize_wav`` of the whole text (the
  first audio can only be sent when it returns). Median of N.
* RSS of the process once both models are loaded, and after their first use.

Ours and the baseline run alternately, so that drift of a shared machine hits both alike.
Ratios are baseline / ours for times and ours / baseline for throughput: above 1 means ours
is better. Needs no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import shlex
import statistics
import sys
import time
import wave
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(ROOT))

from agents.speech.audio import pcm16_bytes_to_float, resample  # noqa: E402
from agents.speech.base import SpeechDevice  # noqa: E402
from agents.speech.executor import InferencePool, available_cores  # noqa: E402
from agents.speech.faster_whisper import FasterWhisperSTT  # noqa: E402
from agents.speech.piper import PiperTTS  # noqa: E402

UTTERANCE = "Please book a table for two people at seven tonight."
ONE_SENTENCE = "Your table for two is booked for seven o'clock tonight."
THREE_SENTENCES = (
    "Thank you for calling the restaurant. I have booked a table for two people at seven "
    "tonight, by the window as you asked. Would you also like me to reserve a parking space "
    "for your car?"
)


def rss_mb() -> float:
    """Resident set size of this process now, in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def interleaved(
    ours: Callable[[], Awaitable[object]], baseline: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Seconds per run of each, alternating ours and baseline after one warm-up of each.

    Alternating spreads any drift of the machine (another process, thermal) over both.
    """
    await ours()
    await asyncio.to_thread(baseline)
    ours_s, baseline_s = [], []
    for _ in range(runs):
        start = time.perf_counter()
        await ours()
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.to_thread(baseline)
        baseline_s.append(time.perf_counter() - start)
    return ours_s, baseline_s


async def first_chunk(tts: PiperTTS, text: str) -> None:
    stream = tts.synthesize(text)
    await anext(stream)
    await stream.aclose()  # stop the rest: only the first chunk is being timed


@dataclass
class Results:
    text: str  # what STT heard
    audio_ms: float
    load_s: float
    rss_mb: tuple[float, float, float]  # before loading, both loaded, after first use
    rows: list[tuple[str, float, float]]  # name, ours, baseline (medians)
    calls_per_s: tuple[float, float]  # ours, baseline


async def measure(runs: int, threads: int, workers: int) -> Results:
    device = SpeechDevice(cpu_threads=threads)
    pool = InferencePool(max_workers=workers, max_queue=16, name="bench")
    stt = FasterWhisperSTT(device=device, pool=pool)
    tts = PiperTTS(device=device, pool=pool)

    rss_start = rss_mb()
    started = time.perf_counter()
    await pool.run(stt.load_model)
    await pool.run(tts.load_voice)
    load_s = time.perf_counter() - started
    rss_loaded = rss_mb()

    chunks = [chunk async for chunk in tts.synthesize(UTTERANCE)]
    pcm = b"".join(c.pcm for c in chunks)
    audio = resample(pcm16_bytes_to_float(pcm), tts.sample_rate, 16_000)
    text = (await stt.transcribe(audio)).text
    rss_used = rss_mb()

    # The baselines: the libraries used the plain way, on the same audio and texts.
    from faster_whisper import WhisperModel
    from piper import PiperVoice

    whisper: Any = await asyncio.to_thread(
        WhisperModel, str(stt.model_path), device="cpu", compute_type="int8"
    )
    voice = await asyncio.to_thread(PiperVoice.load, tts.model_path, tts.config_path)

    def transcribe() -> str:
        segments, _ = whisper.transcribe(audio, language="en")  # beam_size=5 by default
        return " ".join(s.text.strip() for s in segments)

    def wav_of(text: str) -> Callable[[], None]:
        def run() -> None:
            with wave.open(io.BytesIO(), "wb") as wav:
                voice.synthesize_wav(text, wav)

        return run

    async def eight_in_pairs() -> None:
        await asyncio.gather(*(stt.transcribe(audio) for _ in range(8)))

    two = ThreadPoolExecutor(2)

    def eight_in_pairs_baseline() -> None:
        list(two.map(lambda _: transcribe(), range(8)))

    stt_s = await interleaved(lambda: stt.transcribe(audio), transcribe, runs)
    tts1_s = await interleaved(lambda: first_chunk(tts, ONE_SENTENCE), wav_of(ONE_SENTENCE), runs)
    tts3_s = await interleaved(
        lambda: first_chunk(tts, THREE_SENTENCES), wav_of(THREE_SENTENCES), runs
    )
    batch_s = await interleaved(eight_in_pairs, eight_in_pairs_baseline, 3)
    two.shutdown()
    pool.shutdown()
    return Results(
        text=text,
        audio_ms=audio.size / 16,
        load_s=load_s,
        rss_mb=(rss_start, rss_loaded, rss_used),
        rows=[
            (name, median_ms(o), median_ms(b))
            for name, (o, b) in [
                ("STT, 1 call (ms)", stt_s),
                ("TTS first chunk, 1 sentence (ms)", tts1_s),
                ("TTS first chunk, 3 sentences (ms)", tts3_s),
            ]
        ],
        calls_per_s=(8 / statistics.median(batch_s[0]), 8 / statistics.median(batch_s[1])),
    )


def report(command: str, args: argparse.Namespace, r: Results) -> None:
    print(f"command: {command}")
    print(
        f"machine: {available_cores()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}"
    )
    print(
        f"ours: cpu_threads={args.threads} per call, pool of {args.workers}, beam 1, no "
        "timestamps, streamed TTS; baseline: cpu_threads=0, beam 5; PiperVoice.load + "
        "synthesize_wav"
    )
    print(f"utterance: {r.audio_ms:.0f} ms of Piper speech, heard as {r.text!r}")
    print(f"median of {args.runs} runs, alternating      ours   baseline   baseline/ours")
    for name, ours, baseline in r.rows:
        print(f"  {name:<36} {ours:>8.0f} {baseline:>10.0f} {baseline / ours:>12.2f}x")
    ours_cps, baseline_cps = r.calls_per_s
    print(
        f"  {'STT, 8 calls 2 at a time (calls/s)':<36} {ours_cps:>8.2f} {baseline_cps:>10.2f} "
        f"{ours_cps / baseline_cps:>12.2f}x (ours/baseline)"
    )
    before, loaded, used = r.rss_mb
    print(
        f"RSS: {before:.0f} MB before loading, {loaded:.0f} MB with both models loaded "
        f"(in {r.load_s:.2f} s), {used:.0f} MB after their first use"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is shown")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per call")
    parser.add_argument("--workers", type=int, default=2, help="inference pool workers")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    report(command, args, asyncio.run(measure(args.runs, args.threads, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
