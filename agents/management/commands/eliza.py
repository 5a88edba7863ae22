"""Talk to ELIZA in a terminal or from a script: one response line per input line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.eliza import Eliza, ScriptError, load_default_script, parse_script


class Command(BaseCommand):
    help = (
        "Print the greeting, then answer each line of standard input with exactly one line "
        "of raw ELIZA output, until end of input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--script", type=Path, help="A script in the 1966 format (default: the bundled one)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path | None = options["script"]
        if path is None:
            script = load_default_script()
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}") from None
            try:
                script = parse_script(text)
            except ScriptError as exc:
                raise CommandError(f"{path}: {exc}") from None
        engine = Eliza(script)
        out = self.stdout
        out.write(engine.greeting)
        out.flush()
        for line in sys.stdin:
            out.write(engine.respond(line.rstrip("\n")))
            out.flush()
