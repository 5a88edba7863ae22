"""ELIZA as an LLM provider: the 1966 engine answering the last user message.

ELIZA has no notion of a system prompt or of retrieved knowledge, so
``request.system_prompt`` and ``request.passages`` are ignored, as is the history:
everything ELIZA remembers lives in ``context.engine_state``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import lru_cache

from agents.eliza import Eliza, ElizaState, Script, ScriptError, load_default_script, sentence_case
from agents.eliza import parse_script as parse_eliza_script

from .base import ConversationContext, LLMConfig, LLMError, LLMProvider, LLMRequest

__all__ = ["ElizaProvider"]

logger = logging.getLogger(__name__)


# Scripts are immutable once parsed, so one parse per script text serves every
# conversation in the process. Bounded, because every edited prompt version is a new
# key; an evicted script is simply parsed again.
@lru_cache(maxsize=128)
def _script(text: str) -> Script:
    return parse_eliza_script(text) if text.strip() else load_default_script()


class ElizaProvider(LLMProvider):
    """Answers with the ELIZA engine; state round-trips through ``context.engine_state``.

    The script is ``config.eliza_script`` (empty: the bundled therapist script). A
    script that does not parse raises ``LLMError(kind="config")`` from the constructor.
    """

    name = "eliza"
    speculative_safe = True  # all its state is in the context

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        try:
            self._script = _script(config.eliza_script)
        except ScriptError as exc:
            raise LLMError(f"the ELIZA script does not parse: {exc}", kind="config") from exc

    def greeting(self) -> str:
        """The script's greeting, sentence-cased for speech and display."""
        return sentence_case(self._script.greeting)

    async def stream_reply(
        self, request: LLMRequest, context: ConversationContext
    ) -> AsyncIterator[str]:
        """Yield ELIZA's sentence-cased answer to the last user message as one delta.

        The engine resumes from ``context.engine_state`` (empty: a fresh conversation)
        and its new state is written back before the reply is yielded, so the context
        always matches the replies that were produced.
        """
        user_text = next(
            (message.content for message in reversed(request.messages) if message.role == "user"),
            "",
        )
        engine = Eliza(self._script, state=_restore(context.engine_state))
        reply = sentence_case(engine.respond(user_text))
        context.engine_state = engine.state.to_dict()
        yield reply


def _restore(data: dict[str, object]) -> ElizaState | None:
    if not data:
        return None
    try:
        return ElizaState.from_dict(data)
    except ValueError as exc:
        # A stored state we cannot read (hand-edited, or from another version) should not
        # end the call: ELIZA carries on as if the conversation had just begun.
        logger.warning("discarding unreadable ELIZA state: %s", exc)
        return None
