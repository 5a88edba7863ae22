"""`manage.py eliza`: a greeting, then exactly one raw response line per input line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "eliza"


def run_eliza(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="voiceapp.settings_test")
    return subprocess.run(
        [sys.executable, "manage.py", "eliza", *args],
        cwd=ROOT,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_the_greeting_and_one_line_per_input_line() -> None:
    conversation = json.loads((SHARED / "conversations.json").read_text())["conversations"][1]
    lines = [exchange["user"] for exchange in conversation["exchanges"]]
    result = run_eliza("--script", str(SHARED / "DOCTOR-1966.txt"), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        conversation["greeting"],
        *(exchange["eliza"] for exchange in conversation["exchanges"]),
    ]


def test_the_bundled_script_is_the_default() -> None:
    result = run_eliza(stdin="I feel tired.\n\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 3  # greeting, then one line per input line (an empty line too)
    assert out[0] == out[0].upper() != ""


def test_a_broken_script_is_refused_with_its_position(tmp_path: Path) -> None:
    script = tmp_path / "broken.txt"
    script.write_text("(HELLO)\nSTART\n(SORRY ((0) (PLEASE DON'T APOLOGIZE))\n")
    result = run_eliza("--script", str(script), stdin="hi\n")
    assert result.returncode == 1
    assert f"{script}: line " in result.stderr
    assert result.stdout == ""


def test_a_missing_script_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_eliza("--script", str(tmp_path / "nope.txt"), stdin="")
    assert result.returncode == 1
    assert "cannot read" in result.stderr
    assert "No such file or directory" in result.stderr
