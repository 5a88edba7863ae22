"""A provider's reply made safe to speak: timeouts, retries, a fallback line, cancellation.

Usage::

    async with ReplyStream(provider, request, context) as stream:
        async for delta in stream:
            speak(delta)
    record(stream.outcome)

The ``async with`` (or an explicit ``await stream.aclose()``) matters when the consumer
can stop early, for example on barge-in: it closes the provider's generator, and so its
HTTP response, straight away instead of whenever the garbage collector gets to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from .base import ConversationContext, LLMError, LLMProvider, LLMRequest

__all__ = ["DEFAULT_FALLBACK_TEXT", "ReplyOutcome", "ReplyStream"]

logger = logging.getLogger(__name__)

DEFAULT_FALLBACK_TEXT = "Sorry, I'm having trouble answering right now. Please try again."


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What happened to one reply, for transcripts and metrics.

    ``text``: everything the stream yielded, the fallback line included, i.e. what the
    caller heard. ``first_token_ms``: from the start of iteration to the provider's
    first non-empty delta; ``None`` when the provider produced none (the fallback line
    does not count, so a failure does not pass for a fast reply). ``error``: why the
    reply failed, as ``"<kind>: <message>"``; ``""`` when it did not (a failure cured
    by a retry shows only in ``attempts``), so ``error`` is set exactly when
    ``used_fallback`` is. ``attempts``: provider calls
    started. ``cancelled``: iteration was stopped before the stream ended.
    """

    text: str
    first_token_ms: int | None
    error: str
    used_fallback: bool
    attempts: int
    cancelled: bool


class ReplyStream:
    """Async iterator over a provider's reply deltas, with the failure handling speech needs.

    * Each attempt gets ``provider.config.timeout_s`` for its first delta (connecting
      included) and again for every gap between deltas.
    * Retryable failures (rate limits, 5xx, timeouts, connection errors) are retried up
      to ``provider.config.max_retries`` times with exponential backoff and jitter, but
      only while nothing has been yielded: text already spoken is never repeated.
    * When the reply cannot be had (retries spent, a non-retryable error, or a failure
      after text went out) the stream yields ``fallback_text`` (after a space when text
      was already yielded), records the error in :attr:`outcome` and ends normally.
    * Cancelling the consuming task, leaving ``async with``, or ``await aclose()``
      closes the provider's generator at once.

    Errors that are not :class:`LLMError` are bugs and propagate unchanged.
    """

    def __init__(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        context: ConversationContext,
        *,
        fallback_text: str = DEFAULT_FALLBACK_TEXT,
        backoff_base_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._request = request
        self._context = context
        self._fallback_text = fallback_text
        self._backoff_base_s = backoff_base_s
        self._clock = clock
        self._gen: AsyncGenerator[str, None] | None = None
        self._parts: list[str] = []
        self._first_token_ms: int | None = None
        self._error = ""
        self._used_fallback = False
        self._attempts = 0
        self._cancelled = False
        self._closed = False

    @property
    def outcome(self) -> ReplyOutcome:
        """The reply so far; final once iteration has ended or been cancelled."""
        return ReplyOutcome(
            text="".join(self._parts),
            first_token_ms=self._first_token_ms,
            error=self._error,
            used_fallback=self._used_fallback,
            attempts=self._attempts,
            cancelled=self._cancelled,
        )

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        if self._gen is None:
            if self._closed:
                raise StopAsyncIteration
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the reply now; the provider's generator (and HTTP response) is closed."""
        if self._closed:
            return
        self._closed = True
        if self._gen is None:
            self._cancelled = True  # stopped before it started
            return
        await self._gen.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[str, None]:
        config = self._provider.config
        started = self._clock()
        max_attempts = 1 + config.max_retries
        try:
            while True:
                self._attempts += 1
                deltas = self._provider.stream_reply(self._request, self._context)
                failure: LLMError | None = None
                try:
                    while True:
                        try:
                            async with asyncio.timeout(config.timeout_s):
                                delta = await anext(deltas)
                        except StopAsyncIteration:
                            break
                        except TimeoutError as exc:
                            raise LLMError(
                                f"no reply from {self._provider.name} within {config.timeout_s} s",
                                kind="timeout",
                            ) from exc
                        if not delta:
                            continue
                        if self._first_token_ms is None:
                            self._first_token_ms = round((self._clock() - started) * 1000)
                        self._parts.append(delta)
                        yield delta
                except LLMError as exc:
                    failure = exc
                finally:
                    await _close(deltas)
                if failure is None:
                    self._closed = True
                    return
                retry = failure.retryable and not self._parts and self._attempts < max_attempts
                logger.warning(
                    "LLM provider %s failed (attempt %d of %d, %s): %s%s",
                    self._provider.name,
                    self._attempts,
                    max_attempts,
                    failure.kind,
                    failure,
                    "; retrying" if retry else "",
                )
                if not retry:
                    break
                await asyncio.sleep(self._backoff_s(self._attempts))
            # Only a reply that failed records its error; a failure that a retry cured
            # shows in `attempts` and in the log.
            self._error = f"{failure.kind}: {failure}"
            fallback = self._fallback_text
            if self._parts and not self._parts[-1][-1:].isspace():
                fallback = " " + fallback
            self._used_fallback = True
            self._parts.append(fallback)
            yield fallback
            self._closed = True
        except (GeneratorExit, asyncio.CancelledError):
            self._cancelled = True
            self._closed = True
            raise

    def _backoff_s(self, attempt: int) -> float:
        # "Equal jitter": at least half the exponential delay, so retries stay spaced out,
        # plus a random half, so many callers hit by one outage do not retry in lockstep.
        delay = self._backoff_base_s * 2.0 ** (attempt - 1)
        return delay / 2 + random.uniform(0, delay / 2)


async def _close(deltas: AsyncIterator[str]) -> None:
    # Providers are async generators; closing one runs its `async with` exits, which is
    # what closes the HTTP response. A plain iterator has nothing to close.
    aclose = getattr(deltas, "aclose", None)
    if aclose is not None:
        await aclose()
