"""What the AWS speech providers share: a client from the standard environment, and errors.

The clients are botocore's, the engine under boto3 (its resource layer is not needed here).
Credentials, region and endpoint come from the SDK's own resolution: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``), ``AWS_PROFILE``, or an instance or task
role; ``AWS_DEFAULT_REGION`` (``AWS_REGION`` is accepted too, as Lambda and ECS set it);
``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_<SERVICE>`` for a local endpoint. A provider builds
its clients when it is built, so missing credentials or region fail then, as a ``config``
error naming the variables, instead of on the first utterance.

The SDK is blocking: every call on these clients belongs in a worker thread (see
:func:`run_boto`). The clients themselves are thread-safe.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session

from .base import SpeechError, SpeechErrorKind

P = ParamSpec("P")
T = TypeVar("T")

# The SDK blocks on the network, so its calls run here: a pool of their own, so that slow AWS
# calls cannot starve the loop's default executor (which Django's sync_to_async also uses),
# and bounded, since each waiting call holds a thread. Idle threads cost nothing.
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="aws-speech")

# Error codes by what the caller should do about them. AWS services do not share one list,
# so these are the union of what Polly, Transcribe and S3 document for each case.
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "LimitExceededException",  # Transcribe: too many requests (or jobs) at once
        "RequestLimitExceeded",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalFailureException",
        "ServiceFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
# Polly: the text itself cannot be spoken. Not a configuration problem, and not retryable.
_BAD_TEXT_CODES = frozenset(
    {
        "InvalidSsmlException",
        "SsmlMarksNotSupportedForTextTypeException",
        "TextLengthExceededException",
    }
)


# The service descriptions (JSON, ~150 ms to parse for S3) are read once per process: every
# session made below shares this loader, and caches nothing else, so each provider still
# resolves credentials, region and endpoint from the environment as it is when it is built.
_loader = botocore.loaders.create_loader()


def aws_client(service: str, provider: str, *, timeout_s: float) -> Any:
    """A client for ``service`` from the environment, or a ``config`` SpeechError.

    Resolving credentials may ask the instance metadata service when no variables are set
    (once; the session caches it), so build providers off the event loop.
    """
    session = botocore.session.Session()
    session.register_component("data_loader", _loader)
    if not os.environ.get("AWS_DEFAULT_REGION") and os.environ.get("AWS_REGION"):
        session.set_config_variable("region", os.environ["AWS_REGION"])
    if not session.get_config_variable("region"):
        raise SpeechError(
            f"the {provider} speech provider needs an AWS region: set the AWS_DEFAULT_REGION "
            "environment variable (or AWS_REGION)",
            kind=SpeechErrorKind.CONFIG,
        )
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # a broken profile or credentials file
        raise SpeechError(
            f"the {provider} speech provider cannot load AWS credentials: {exc}",
            kind=SpeechErrorKind.CONFIG,
        ) from exc
    if credentials is None:
        raise SpeechError(
            f"the {provider} speech provider needs AWS credentials: set the AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY environment variables (or AWS_PROFILE, or run with an "
            "instance or task role)",
            kind=SpeechErrorKind.CONFIG,
        )
    config = botocore.config.Config(
        connect_timeout=min(timeout_s, 5.0),
        read_timeout=timeout_s,
        # No retries inside the SDK: a SpeechError says whether one may help and the caller,
        # which knows how much of the turn's time is left, decides.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return session.create_client(service, config=config)


def speech_error_from_boto(exc: Exception, what: str) -> SpeechError:
    """The :class:`SpeechError` for a botocore exception raised while doing ``what``."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{what} failed ({code or 'no code'}, HTTP {status}): {error.get('Message', '')}"
        if code in _THROTTLE_CODES or status == 429:
            return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED, retryable=True)
        if code == "ServiceQuotaExceededException":  # waiting does not raise a quota
            return SpeechError(detail, kind=SpeechErrorKind.RATE_LIMITED)
        if code in _AUTH_CODES or status in (401, 403):
            return SpeechError(detail, kind=SpeechErrorKind.AUTH)
        if code in _UNAVAILABLE_CODES or status >= 500:
            return SpeechError(detail, kind=SpeechErrorKind.UNAVAILABLE, retryable=True)
        if code in _BAD_TEXT_CODES:
            return SpeechError(detail, kind=SpeechErrorKind.INFERENCE)
        # Other 4xx: an unknown voice, engine or bucket, a bad parameter.
        return SpeechError(detail, kind=SpeechErrorKind.CONFIG)
    # Timeouts first: ConnectTimeoutError is also an EndpointConnectionError.
    if isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    ):
        return SpeechError(f"{what} timed out", kind=SpeechErrorKind.TIMEOUT, retryable=True)
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError | botocore.exceptions.HTTPClientError,
    ):
        return SpeechError(
            f"{what}: cannot reach AWS: {exc}", kind=SpeechErrorKind.UNAVAILABLE, retryable=True
        )
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.NoRegionError
        | botocore.exceptions.ParamValidationError,
    ):
        return SpeechError(f"{what}: {exc}", kind=SpeechErrorKind.CONFIG)
    return SpeechError(f"{what}: AWS client error: {exc!r}", kind=SpeechErrorKind.UNAVAILABLE)


async def run_boto(what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a worker thread, its AWS errors as :class:`SpeechError`.

    Cancelling the caller stops the wait, not the call: an SDK call cannot be interrupted
    and finishes (or times out) on its thread.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_executor, functools.partial(fn, *args, **kwargs))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise speech_error_from_boto(exc, what) from exc
