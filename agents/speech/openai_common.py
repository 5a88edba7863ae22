"""What the OpenAI speech providers share: credentials from the environment, the client, errors.

The key comes from ``OPENAI_API_KEY`` and the endpoint from ``OPENAI_BASE_URL`` when it is set,
the same variables the ``openai`` client reads itself, so a test that points
``OPENAI_BASE_URL`` at a local fake runs exactly the production code. Both are read when a
provider is built, and a missing key fails then rather than on the first utterance.

Clients come from the LLM layer's per-loop cache, so speech and chat against one endpoint
share a connection pool. Its SDK retries are off: a :class:`SpeechError` says whether a
retry may help and the caller decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI

from agents.llm.openai_responses import cached_client

from .base import SpeechError, SpeechErrorKind

API_KEY_VARIABLE = "OPENAI_API_KEY"
BASE_URL_VARIABLE = "OPENAI_BASE_URL"


@dataclass(frozen=True, slots=True)
class OpenAIEndpoint:
    """Where the OpenAI speech calls go, as read from the environment."""

    api_key: str
    base_url: str  # "" means the client's default, https://api.openai.com/v1

    @classmethod
    def from_environment(cls, provider: str) -> OpenAIEndpoint:
        """The endpoint in ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``; a config error if no key."""
        api_key = os.environ.get(API_KEY_VARIABLE, "").strip()
        if not api_key:
            raise SpeechError(
                f"the {provider} speech provider needs an OpenAI API key: set the "
                f"{API_KEY_VARIABLE} environment variable",
                kind=SpeechErrorKind.CONFIG,
            )
        return cls(api_key=api_key, base_url=os.environ.get(BASE_URL_VARIABLE, "").strip())

    def client(self, timeout_s: float) -> AsyncOpenAI:
        """The running loop's client for this endpoint (call from the event loop)."""
        return cached_client(base_url=self.base_url, api_key=self.api_key, timeout_s=timeout_s)


def _detail(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def speech_error_from_openai(exc: openai.OpenAIError, what: str) -> SpeechError:
    """The :class:`SpeechError` for an ``openai`` SDK exception raised while doing ``what``."""
    # Order matters: APITimeoutError is an APIConnectionError, RateLimitError an
    # APIStatusError.
    if isinstance(exc, openai.APITimeoutError):
        return SpeechError(f"{what} timed out", kind=SpeechErrorKind.TIMEOUT, retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return SpeechError(
            f"{what}: cannot reach OpenAI: {exc}", kind=SpeechErrorKind.UNAVAILABLE, retryable=True
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"{what} failed (HTTP {status}): {_detail(exc)}"
        if status == 429:
            # An exhausted quota also answers 429, but no amount of waiting fixes it.
            quota = exc.code == "insufficient_quota"
            return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED, retryable=not quota)
        if status in (401, 403):
            return SpeechError(detail, kind=SpeechErrorKind.AUTH)
        if status == 408:
            return SpeechError(detail, kind=SpeechErrorKind.TIMEOUT, retryable=True)
        if status >= 500 or status == 409:  # 409: a transient conflict on OpenAI's side
            return SpeechError(detail, kind=SpeechErrorKind.UNAVAILABLE, retryable=True)
        if exc.param == "file":
            return SpeechError(detail, kind=SpeechErrorKind.BAD_AUDIO)
        # Other 4xx: an unknown model or voice, a bad parameter. Fix the configuration.
        return SpeechError(detail, kind=SpeechErrorKind.CONFIG)
    if isinstance(exc, openai.APIError):  # a response the SDK could not make sense of
        return SpeechError(
            f"{what}: unexpected response from OpenAI: {_detail(exc)}",
            kind=SpeechErrorKind.UNAVAILABLE,
        )
    return SpeechError(f"{what}: OpenAI client error: {exc}", kind=SpeechErrorKind.CONFIG)
