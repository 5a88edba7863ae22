"""The language-model interface every provider implements, and the types it speaks.

A provider turns an :class:`LLMRequest` (system prompt, history, retrieved passages)
into an async stream of text deltas. Per-conversation state that must survive a
restart (ELIZA's memory, a provider-side conversation id) lives in a
:class:`ConversationContext` that the provider reads and updates and the caller
persists. Retries, timeouts and the spoken fallback line live in
:class:`agents.llm.stream.ReplyStream`, not in the providers.

Pure Python: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "ChatMessage",
    "ConversationContext",
    "ErrorKind",
    "LLMConfig",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "Passage",
    "format_instructions",
    "split_last_user_message",
]

ErrorKind = Literal["timeout", "rate_limited", "server", "client", "config", "connection"]

# Worth another attempt: the same request may well succeed a moment later.
_RETRYABLE_KINDS: frozenset[str] = frozenset({"timeout", "rate_limited", "server", "connection"})


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation history."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved knowledge chunk: ``ref`` identifies it (for logs and review), not for speech."""

    ref: str
    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """Everything a provider needs to know, resolved by the caller (secrets included).

    ``provider`` is a registry name (``"eliza"``, ``"openai"``, ``"openai_compatible"``).
    ``api_key`` is the resolved key; it is left out of ``repr`` so it never reaches a log.
    ``eliza_script`` empty means the bundled default script. ``timeout_s`` bounds each
    attempt (connecting, and every gap between deltas); ``max_retries`` counts the
    attempts after the first.
    """

    provider: str
    model: str = ""
    temperature: float = 0.7
    max_tokens: int = 512
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    eliza_script: str = ""
    timeout_s: float = 30.0
    max_retries: int = 2
    vector_store_id: str = ""

    def __post_init__(self) -> None:
        # Fail where the config is built, not halfway through a caller's first turn.
        if self.timeout_s <= 0:
            raise LLMError(f"timeout_s must be positive, got {self.timeout_s!r}", kind="config")
        if self.max_retries < 0:
            raise LLMError(f"max_retries must be >= 0, got {self.max_retries!r}", kind="config")
        if self.max_tokens <= 0:
            raise LLMError(f"max_tokens must be positive, got {self.max_tokens!r}", kind="config")


@dataclass
class ConversationContext:
    """Per-conversation provider state; the provider updates it, the caller persists it.

    ``engine_state``: JSON-ready engine state (ELIZA's), empty for a fresh conversation.
    ``provider_conversation_id``: the provider's own conversation id (OpenAI
    Conversations), empty until the provider creates one.
    """

    engine_state: dict[str, Any] = field(default_factory=dict)
    provider_conversation_id: str = ""


@dataclass(frozen=True)
class LLMRequest:
    """One turn to answer: ``messages`` is the history ending with the user message."""

    system_prompt: str
    messages: Sequence[ChatMessage]
    passages: Sequence[Passage] = ()


class LLMError(Exception):
    """A provider failed; ``kind`` says how and ``retryable`` whether trying again may help.

    ``kind`` is one of ``"timeout"``, ``"rate_limited"``, ``"server"``, ``"client"``,
    ``"config"``, ``"connection"``. ``retryable`` defaults from the kind (timeouts, rate
    limits, server and connection errors are); ``status`` is the HTTP status if any.
    Messages never carry secrets.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retryable: bool | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retryable: bool = kind in _RETRYABLE_KINDS if retryable is None else retryable
        self.status: int | None = status

    def __repr__(self) -> str:
        return (
            f"LLMError({str(self)!r}, kind={self.kind!r}, retryable={self.retryable!r}, "
            f"status={self.status!r})"
        )


class LLMProvider(ABC):
    """A language model behind one hook, :meth:`stream_reply`.

    Subclasses set ``name`` (their registry key) and implement ``stream_reply`` as an
    async generator. They raise :class:`LLMError` for every failure they understand and
    must let ``asyncio.CancelledError`` through, closing any HTTP response on the way
    out (``async with``), so that a cancelled reply frees its connection at once.
    """

    name: ClassVar[str]
    #: True when a reply can be computed ahead and thrown away unseen: the provider keeps
    #: no state outside ``context`` (which the caller can copy). A realtime caller may then
    #: start answering while the user is still pausing.
    speculative_safe: ClassVar[bool] = False

    def __init__(self, config: LLMConfig) -> None:
        self.config = config

    def greeting(self) -> str:
        """The provider's own opening line, or ``""`` when it has none."""
        return ""

    @abstractmethod
    def stream_reply(self, request: LLMRequest, context: ConversationContext) -> AsyncIterator[str]:
        """Yield the reply to ``request`` as text deltas; may update ``context``.

        Raises :class:`LLMError`. Retries and timeouts are the caller's business
        (:class:`agents.llm.stream.ReplyStream`).
        """


def split_last_user_message(
    messages: Sequence[ChatMessage],
) -> tuple[Sequence[ChatMessage], str]:
    """``(history before it, text)`` for the last user message.

    Raises ``LLMError(kind="client")`` when there is none: there is nothing to answer.
    """
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return messages[:index], messages[index].content
    raise LLMError("the request has no user message to answer", kind="client")


def format_instructions(system_prompt: str, passages: Sequence[Passage]) -> str:
    """The system prompt followed by the retrieved passages as a knowledge section.

    Shared by the providers that take a system prompt, so every model sees passages in
    the same shape. Refs are kept (they help when reviewing a transcript) but the model
    is told not to read them out: this is a voice product.
    """
    if not passages:
        return system_prompt
    lines = [
        "# Knowledge",
        "Passages retrieved for this turn. Answer from them when they are relevant; "
        "if they do not cover the question, say so rather than guess. "
        "Never read the bracketed references aloud.",
    ]
    for passage in passages:
        heading = f"[{passage.ref}] {passage.title}".rstrip()
        lines.append(f"\n{heading}\n{passage.text.strip()}")
    knowledge = "\n".join(lines)
    return f"{system_prompt.rstrip()}\n\n{knowledge}" if system_prompt.strip() else knowledge
