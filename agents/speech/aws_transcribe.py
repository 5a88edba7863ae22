"""Speech to text with Amazon Transcribe's batch API, through a temporary object in S3.

One utterance is one job: the 16 kHz WAV goes to ``s3://$AWS_TRANSCRIBE_BUCKET/<prefix>``,
``StartTranscriptionJob`` points at it and writes its result JSON beside it, the job is
polled (with a growing interval, up to a deadline), the JSON is read back, and the audio,
the result and the job are deleted whether or not it worked. Every SDK call runs on a
worker thread.

Batch jobs take seconds even for a short utterance, which is slow for live turn-taking.
Transcribe's streaming API answers in a fraction of that but needs HTTP/2 and the separate
``amazon-transcribe`` package; it is the better choice once that dependency is acceptable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import botocore.exceptions
import pydantic

from .audio import as_float_audio
from .aws_common import aws_client, run_boto
from .base import (
    STT_SAMPLE_RATE,
    FloatAudio,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    STTProvider,
    Transcript,
)
from .cloud_audio import wav_bytes

log = logging.getLogger(__name__)

BUCKET_VARIABLE = "AWS_TRANSCRIBE_BUCKET"
DEFAULT_LANGUAGE = "en-US"
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")


class _TranscriptText(pydantic.BaseModel):
    transcript: str


class _Results(pydantic.BaseModel):
    transcripts: list[_TranscriptText]


class TranscribeOutput(pydantic.BaseModel):
    """The part of Transcribe's result JSON this provider reads: ``results.transcripts``."""

    results: _Results

    @property
    def text(self) -> str:
        """The transcript (the service gives one unless channels or speakers are split)."""
        return " ".join(item.transcript.strip() for item in self.results.transcripts).strip()


class _Job(pydantic.BaseModel):
    """What ``GetTranscriptionJob`` says about a job, as far as polling needs it."""

    model_config = pydantic.ConfigDict(extra="ignore")

    TranscriptionJobStatus: Literal["QUEUED", "IN_PROGRESS", "FAILED", "COMPLETED"]
    FailureReason: str | None = None


class AwsTranscribeSTT(STTProvider):
    """Speech to text with Amazon Transcribe batch jobs.

    ``model`` is the language code (``en-US`` unless configured). The temporary objects go
    to the bucket named in ``AWS_TRANSCRIBE_BUCKET`` (a missing variable is a ``config`` error
    when the provider is built), under ``key_prefix``; the credentials need
    ``s3:PutObject/GetObject/DeleteObject`` there and ``transcribe:StartTranscriptionJob/
    GetTranscriptionJob/DeleteTranscriptionJob``. ``device`` is accepted and ignored.
    """

    name = "aws_transcribe"

    def __init__(
        self,
        model: str | None = None,
        device: SpeechDevice | None = None,
        *,
        key_prefix: str = "voiceapp-transcribe/",
        timeout_s: float = 60.0,
        poll_initial_s: float = 0.25,
        poll_max_s: float = 2.0,
    ) -> None:
        language = model or DEFAULT_LANGUAGE
        if not _LANGUAGE_CODE.match(language):
            raise SpeechError(
                f"the aws_transcribe model is a language code such as 'en-US', not {language!r}",
                kind=SpeechErrorKind.CONFIG,
            )
        if timeout_s <= 0 or poll_initial_s <= 0 or poll_max_s < poll_initial_s:
            raise ValueError("timeouts and poll intervals must be positive, initial <= max")
        bucket = os.environ.get(BUCKET_VARIABLE, "").strip()
        if not bucket:
            raise SpeechError(
                f"the {self.name} speech provider needs an S3 bucket for the audio it sends: "
                f"set the {BUCKET_VARIABLE} environment variable",
                kind=SpeechErrorKind.CONFIG,
            )
        self.language = language
        self.bucket = bucket
        self.key_prefix = key_prefix
        self.timeout_s = timeout_s
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        # One call never waits longer than the whole transcription may take.
        per_call_s = min(timeout_s, 20.0)
        self.s3 = aws_client("s3", self.name, timeout_s=per_call_s)
        self.transcribe_client = aws_client("transcribe", self.name, timeout_s=per_call_s)

    async def transcribe(self, audio: FloatAudio) -> Transcript:
        """Transcribe one utterance (float32 mono, 16 kHz) with a Transcribe job.

        Raises :class:`SpeechError`: ``timeout`` (retryable) when the job is not done within
        ``timeout_s``; ``inference`` when the job fails; otherwise as
        :func:`~agents.speech.aws_common.speech_error_from_boto` maps AWS errors.
        """
        samples = as_float_audio(audio)
        if samples.size == 0:
            return Transcript(text="", duration_ms=0, inference_ms=0)
        started = time.perf_counter()
        job_name = f"voiceapp-{uuid.uuid4().hex}"
        audio_key = f"{self.key_prefix}{job_name}.wav"
        output_key = f"{self.key_prefix}{job_name}.json"
        job_started = False
        try:
            await run_boto(
                "uploading the audio for Transcribe",
                self.s3.put_object,
                Bucket=self.bucket,
                Key=audio_key,
                Body=wav_bytes(samples),
                ContentType="audio/wav",
            )
            await run_boto(
                "starting a Transcribe job",
                self.transcribe_client.start_transcription_job,
                TranscriptionJobName=job_name,
                LanguageCode=self.language,
                MediaFormat="wav",
                MediaSampleRateHertz=STT_SAMPLE_RATE,
                Media={"MediaFileUri": f"s3://{self.bucket}/{audio_key}"},
                OutputBucketName=self.bucket,
                OutputKey=output_key,
            )
            job_started = True
            await self._wait_for(job_name, deadline=time.monotonic() + self.timeout_s)
            text = await run_boto("reading the Transcribe result", self._read_output, output_key)
        finally:
            # Also on cancellation: the cleanup runs to its end on its own thread either way.
            await asyncio.shield(
                run_boto(
                    "cleaning up after Transcribe",
                    self._clean_up,
                    job_name if job_started else None,
                    [audio_key, output_key],
                )
            )
        return Transcript(
            text=text,
            duration_ms=round(samples.size * 1000 / STT_SAMPLE_RATE),
            inference_ms=round((time.perf_counter() - started) * 1000),
        )

    async def _wait_for(self, job_name: str, *, deadline: float) -> None:
        interval = self.poll_initial_s
        while True:
            response = await run_boto(
                "polling the Transcribe job",
                self.transcribe_client.get_transcription_job,
                TranscriptionJobName=job_name,
            )
            try:
                job = _Job.model_validate(response.get("TranscriptionJob"))
            except pydantic.ValidationError as exc:
                raise SpeechError(
                    f"Transcribe answered an unexpected job description: {exc}",
                    kind=SpeechErrorKind.UNAVAILABLE,
                ) from exc
            if job.TranscriptionJobStatus == "COMPLETED":
                return
            if job.TranscriptionJobStatus == "FAILED":
                raise SpeechError(
                    f"the Transcribe job failed: {job.FailureReason or 'no reason given'}",
                    kind=SpeechErrorKind.INFERENCE,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SpeechError(
                    f"the Transcribe job was not done after {self.timeout_s:g} s "
                    f"(status {job.TranscriptionJobStatus})",
                    kind=SpeechErrorKind.TIMEOUT,
                    retryable=True,
                )
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.poll_max_s)

    def _read_output(self, key: str) -> str:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            raw = body.read()
        finally:
            body.close()
        try:
            return TranscribeOutput.model_validate_json(raw).text
        except pydantic.ValidationError as exc:
            raise SpeechError(
                f"the Transcribe result s3://{self.bucket}/{key} is not a transcript: {exc}",
                kind=SpeechErrorKind.UNAVAILABLE,
            ) from exc

    def _clean_up(self, job_name: str | None, keys: list[str]) -> None:
        for key in keys:
            _try_delete(
                f"s3://{self.bucket}/{key}", self.s3.delete_object, Bucket=self.bucket, Key=key
            )
        if job_name is not None:
            _try_delete(
                f"Transcribe job {job_name}",
                self.transcribe_client.delete_transcription_job,
                TranscriptionJobName=job_name,
            )


def _try_delete(what: str, delete: Callable[..., Any], **arguments: str) -> None:
    # Best effort: a leftover object or job is a cost, not a reason to lose the transcript,
    # so a failure is logged and not raised.
    try:
        delete(**arguments)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        log.warning("could not delete %s", what, exc_info=True)
