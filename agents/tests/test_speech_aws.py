"""The AWS providers (Polly TTS, Transcribe STT) against moto's in-process AWS.

What moto does and does not do, and so what these tests can see:

* Polly: ``SynthesizeSpeech`` validates the voice, format and sample rate and answers 8 zero
  bytes of audio whatever the text (4 samples at 16 kHz). It records nothing, so the
  requests are read from the client's own ``provide-client-params`` event.
* Transcribe: a job moves QUEUED -> IN_PROGRESS -> COMPLETED, one step per
  ``GetTranscriptionJob``, and then names ``TranscriptFileUri`` in the output bucket, but
  moto never writes that file (nor checks that the media exists). The tests write it where
  the job says, as the service would; a failed job cannot be made in moto, so that one test
  edits the parsed ``GetTranscriptionJob`` answer.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import wave
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import numpy as np
import pytest
from moto import mock_aws

from agents.speech.aws_common import aws_client, speech_error_from_boto
from agents.speech.aws_polly import MAX_CHARS, PollyTTS, split_text
from agents.speech.aws_transcribe import AwsTranscribeSTT
from agents.speech.base import (
    AudioChunk,
    SpeechDevice,
    SpeechError,
    SpeechErrorKind,
    TTSProvider,
)
from agents.speech.registry import build_stt, build_tts

DEVICE = SpeechDevice()
BUCKET = "voiceapp-test-transcribe"
REGION = "us-east-1"


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Only what a test sets: no developer profile, no metadata service, no real endpoint."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_POLLY",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_TRANSCRIBE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_TRANSCRIBE_BUCKET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(aws_environment: None) -> Iterator[None]:
    with mock_aws():  # also sets fake credentials in the environment
        yield


@pytest.fixture
def bucket(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    sdk("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("AWS_TRANSCRIBE_BUCKET", BUCKET)
    return BUCKET


def sdk(service: str) -> Any:
    """A client for the test's own calls (the providers' helper: it parses each API once)."""
    return aws_client(service, "test", timeout_s=5.0)


def record_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the client makes, as the caller gave them."""
    calls: list[dict[str, Any]] = []
    service = client.meta.service_model.service_name

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register(f"provide-client-params.{service}.{operation}", record)
    return calls


async def collect(tts: TTSProvider, text: str) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text)]


def utterance(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 16_000), dtype=np.float32) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# --- Polly --------------------------------------------------------------------------------


async def test_polly_asks_for_16khz_pcm_from_the_neural_joanna_and_streams_it(aws: None) -> None:
    tts = build_tts("aws_polly", "", DEVICE)
    calls = record_calls(tts.client, "SynthesizeSpeech")  # type: ignore[attr-defined]

    chunks = await collect(tts, "Hello there.")

    assert calls == [
        {
            "Text": "Hello there.",
            "OutputFormat": "pcm",
            "SampleRate": "16000",
            "Engine": "neural",
            "VoiceId": "Joanna",
        }
    ]
    assert [(chunk.pcm, chunk.sample_rate) for chunk in chunks] == [(b"\0" * 8, 16_000)]


async def test_polly_uses_the_configured_voice_and_engine(aws: None) -> None:
    tts = PollyTTS("Matthew", DEVICE, engine="standard")
    calls = record_calls(tts.client, "SynthesizeSpeech")

    await collect(tts, "Hi.")

    assert (calls[0]["VoiceId"], calls[0]["Engine"]) == ("Matthew", "standard")


@pytest.mark.parametrize(("rate", "samples"), [(8_000, 2), (44_100, 11), (48_000, 12)])
async def test_polly_resamples_to_the_requested_rate(aws: None, rate: int, samples: int) -> None:
    tts = build_tts("aws_polly", "", DEVICE, sample_rate=rate)

    chunks = await collect(tts, "Hello there.")

    assert tts.sample_rate == rate
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert sum(chunk.samples for chunk in chunks) == samples


async def test_polly_speaks_a_long_text_in_requests_under_its_limit(aws: None) -> None:
    sentence = "Fifty characters make up this short sentence now. "
    text = sentence * 70  # 3500 characters; cut after the last sentence that fits in 3000
    tts = PollyTTS()
    calls = record_calls(tts.client, "SynthesizeSpeech")

    chunks = await collect(tts, text)

    assert [len(call["Text"]) for call in calls] == [2999, 499]
    assert " ".join(call["Text"] for call in calls) == text.strip()
    assert sum(chunk.samples for chunk in chunks) == 8


def test_split_text_cuts_at_the_last_sentence_end_within_the_limit() -> None:
    assert split_text("One two. Three four. Five six.", limit=20) == [
        "One two. Three four.",
        "Five six.",
    ]
    assert split_text("abcdefghij", limit=4) == ["abcd", "efgh", "ij"]
    assert split_text("short", limit=MAX_CHARS) == ["short"]


async def test_polly_reports_an_unknown_voice_as_a_config_error(aws: None) -> None:
    tts = PollyTTS("NoSuchVoice")

    with pytest.raises(SpeechError) as caught:
        await collect(tts, "Hello.")

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.CONFIG, False)
    assert "InvalidParameterValue" in str(caught.value)


def test_polly_rejects_an_unknown_engine(aws: None) -> None:
    with pytest.raises(SpeechError) as caught:
        PollyTTS(engine="generative")

    assert caught.value.kind == SpeechErrorKind.CONFIG


def test_without_credentials_polly_fails_at_construction_naming_the_variables(
    aws_environment: None,
) -> None:
    with pytest.raises(SpeechError) as caught:
        build_tts("aws_polly", "", DEVICE)

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert str(caught.value) == (
        "the aws_polly speech provider needs AWS credentials: set the AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY environment variables (or AWS_PROFILE, or run with an instance "
        "or task role)"
    )


def test_without_a_region_polly_fails_at_construction_naming_the_variable(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(SpeechError) as caught:
        PollyTTS()

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert "AWS_DEFAULT_REGION" in str(caught.value)


def test_aws_region_is_accepted_when_aws_default_region_is_not_set(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    assert PollyTTS().client.meta.region_name == "eu-west-1"


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response = {
        "Error": {"Code": code, "Message": "from the test"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, "SynthesizeSpeech")


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (client_error("ThrottlingException", 400), SpeechErrorKind.RATE_LIMITED, True),
        (client_error("LimitExceededException", 400), SpeechErrorKind.RATE_LIMITED, True),
        (client_error("ServiceQuotaExceededException", 402), SpeechErrorKind.RATE_LIMITED, False),
        (client_error("UnrecognizedClientException", 400), SpeechErrorKind.AUTH, False),
        (client_error("AccessDeniedException", 403), SpeechErrorKind.AUTH, False),
        (client_error("ServiceFailureException", 500), SpeechErrorKind.UNAVAILABLE, True),
        (client_error("TextLengthExceededException", 400), SpeechErrorKind.INFERENCE, False),
        (client_error("NoSuchBucket", 404), SpeechErrorKind.CONFIG, False),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="x"), SpeechErrorKind.TIMEOUT, True),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="x"), SpeechErrorKind.TIMEOUT, True),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="x"),
            SpeechErrorKind.UNAVAILABLE,
            True,
        ),
        (botocore.exceptions.NoCredentialsError(), SpeechErrorKind.CONFIG, False),
    ],
)
def test_aws_errors_map_to_speech_errors(
    error: Exception, kind: SpeechErrorKind, retryable: bool
) -> None:
    mapped = speech_error_from_boto(error, "Polly")

    assert (mapped.kind, mapped.retryable) == (kind, retryable)


# --- Transcribe ---------------------------------------------------------------------------


def act_as_the_service(stt: AwsTranscribeSTT, text: str) -> None:
    """Write the result JSON where the finished job says it is, as Transcribe would."""
    s3 = sdk("s3")

    def write_result(parsed: dict[str, Any], **kwargs: Any) -> None:
        job = parsed.get("TranscriptionJob", {})
        if job.get("TranscriptionJobStatus") != "COMPLETED":
            return
        path = urllib.parse.urlsplit(job["Transcript"]["TranscriptFileUri"]).path
        bucket, key = path.lstrip("/").split("/", 1)
        result = {
            "jobName": job["TranscriptionJobName"],
            "results": {"transcripts": [{"transcript": text}]},
        }
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(result).encode())

    stt.transcribe_client.meta.events.register(
        "after-call.transcribe.GetTranscriptionJob", write_result
    )


def leftovers(bucket: str) -> tuple[list[str], list[str]]:
    """The objects still in the bucket and the jobs Transcribe still knows."""
    objects = sdk("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    jobs = sdk("transcribe").list_transcription_jobs()["TranscriptionJobSummaries"]
    return [item["Key"] for item in objects], [job["TranscriptionJobName"] for job in jobs]


def fast_stt(**overrides: Any) -> AwsTranscribeSTT:
    return AwsTranscribeSTT(**{"poll_initial_s": 0.001, "poll_max_s": 0.001, **overrides})


async def test_transcribe_runs_a_job_on_the_uploaded_wav_and_reads_its_result(
    bucket: str,
) -> None:
    stt = fast_stt()
    uploads = record_calls(stt.s3, "PutObject")
    starts = record_calls(stt.transcribe_client, "StartTranscriptionJob")
    polls = record_calls(stt.transcribe_client, "GetTranscriptionJob")
    act_as_the_service(stt, " Book a table for two. ")

    transcript = await stt.transcribe(utterance(0.75))

    assert (transcript.text, transcript.duration_ms) == ("Book a table for two.", 750)
    [start] = starts
    job = start["TranscriptionJobName"]
    assert job.startswith("voiceapp-")
    assert start == {
        "TranscriptionJobName": job,
        "LanguageCode": "en-US",
        "MediaFormat": "wav",
        "MediaSampleRateHertz": 16_000,
        "Media": {"MediaFileUri": f"s3://{BUCKET}/voiceapp-transcribe/{job}.wav"},
        "OutputBucketName": BUCKET,
        "OutputKey": f"voiceapp-transcribe/{job}.json",
    }
    assert len(polls) == 3  # QUEUED, IN_PROGRESS, COMPLETED
    [upload] = uploads
    assert (upload["Bucket"], upload["Key"]) == (BUCKET, f"voiceapp-transcribe/{job}.wav")
    with wave.open(io.BytesIO(upload["Body"]), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert wav.getnframes() == 12_000


async def test_transcribe_deletes_the_audio_the_result_and_the_job(bucket: str) -> None:
    stt = fast_stt()
    act_as_the_service(stt, "Hello.")

    await stt.transcribe(utterance(0.2))

    assert leftovers(bucket) == ([], [])


async def test_transcribe_uses_the_configured_language(bucket: str) -> None:
    stt = build_stt("aws_transcribe", "en-GB", DEVICE)
    stt.poll_initial_s = stt.poll_max_s = 0.001  # type: ignore[attr-defined]
    starts = record_calls(stt.transcribe_client, "StartTranscriptionJob")  # type: ignore[attr-defined]
    act_as_the_service(stt, "Cheers.")  # type: ignore[arg-type]

    transcript = await stt.transcribe(utterance(0.2))

    assert transcript.text == "Cheers."
    assert starts[0]["LanguageCode"] == "en-GB"


async def test_a_job_still_queued_at_the_deadline_times_out_and_is_cleaned_up(
    bucket: str,
) -> None:
    stt = fast_stt(timeout_s=0.000_001)

    with pytest.raises(SpeechError) as caught:
        await stt.transcribe(utterance(0.2))

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.TIMEOUT, True)
    assert "status QUEUED" in str(caught.value)
    assert leftovers(bucket) == ([], [])


async def test_a_failed_job_is_an_inference_error_and_is_cleaned_up(bucket: str) -> None:
    stt = fast_stt()

    def fail(parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed["TranscriptionJob"]["TranscriptionJobStatus"] = "FAILED"
        parsed["TranscriptionJob"]["FailureReason"] = "The media file is too short."

    stt.transcribe_client.meta.events.register("after-call.transcribe.GetTranscriptionJob", fail)

    with pytest.raises(SpeechError) as caught:
        await stt.transcribe(utterance(0.2))

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.INFERENCE, False)
    assert str(caught.value) == "the Transcribe job failed: The media file is too short."
    assert leftovers(bucket) == ([], [])


async def test_a_missing_bucket_is_a_config_error_and_no_job_is_started(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_TRANSCRIBE_BUCKET", "no-such-bucket-here")
    stt = fast_stt()
    starts = record_calls(stt.transcribe_client, "StartTranscriptionJob")

    with pytest.raises(SpeechError) as caught:
        await stt.transcribe(utterance(0.2))

    assert (caught.value.kind, caught.value.retryable) == (SpeechErrorKind.CONFIG, False)
    assert "NoSuchBucket" in str(caught.value)
    assert starts == []


async def test_transcribe_makes_no_calls_for_empty_audio(bucket: str) -> None:
    stt = fast_stt()
    uploads = record_calls(stt.s3, "PutObject")

    transcript = await stt.transcribe(np.zeros(0, np.float32))

    assert (transcript.text, transcript.duration_ms) == ("", 0)
    assert uploads == []


def test_transcribe_without_a_bucket_fails_at_construction_naming_the_variable(
    aws: None,
) -> None:
    with pytest.raises(SpeechError) as caught:
        build_stt("aws_transcribe", "", DEVICE)

    assert caught.value.kind == SpeechErrorKind.CONFIG
    assert str(caught.value) == (
        "the aws_transcribe speech provider needs an S3 bucket for the audio it sends: set "
        "the AWS_TRANSCRIBE_BUCKET environment variable"
    )


def test_transcribe_rejects_a_model_that_is_not_a_language_code(bucket: str) -> None:
    with pytest.raises(SpeechError) as caught:
        build_stt("aws_transcribe", "whisper-1", DEVICE)

    assert caught.value.kind == SpeechErrorKind.CONFIG
