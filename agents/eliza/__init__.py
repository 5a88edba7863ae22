"""ELIZA as Weizenbaum described it in 1966, for the platform's rule-based agent.

Public API::

    script = parse_script(text)          # or load_default_script()
    engine = Eliza(script)               # or Eliza(script, state=ElizaState.from_dict(d))
    engine.greeting                      # raw greeting
    engine.respond("I need a holiday.")  # raw response, upper case
    sentence_case(raw)                   # the same, readable
    engine.state.to_dict()               # JSON-ready; resume later with from_dict()

Pure Python: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from .engine import Eliza
from .parser import Script, ScriptError, parse_script
from .present import sentence_case
from .state import ElizaState

__all__ = [
    "Eliza",
    "ElizaState",
    "Script",
    "ScriptError",
    "load_default_script",
    "parse_script",
    "sentence_case",
]


@cache
def load_default_script() -> Script:
    """The project's own therapist script (``scripts/therapist.txt``), parsed once.

    Read through :mod:`importlib.resources` so it also works from an installed
    package. The result is immutable, so one cached copy serves every caller.
    """
    text = files(__name__).joinpath("scripts", "therapist.txt").read_text(encoding="utf-8")
    return parse_script(text)
