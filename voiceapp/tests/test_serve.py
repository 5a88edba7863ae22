"""The server entry point's settings (the stop itself runs in the integration tests)."""

from __future__ import annotations

import pytest

from voiceapp.serve import DEFAULT_GRACE_SECONDS, grace_seconds, parse_args


def test_the_grace_period_defaults_and_reads_the_environment() -> None:
    assert grace_seconds({}) == DEFAULT_GRACE_SECONDS == 20
    assert grace_seconds({"SHUTDOWN_GRACE_SECONDS": " 45 "}) == 45
    assert grace_seconds({"SHUTDOWN_GRACE_SECONDS": "0"}) == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("soon", "SHUTDOWN_GRACE_SECONDS='soon' is not an integer"),
        ("-1", "SHUTDOWN_GRACE_SECONDS=-1 must be at least 0"),
    ],
)
def test_a_bad_grace_period_stops_the_start_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        grace_seconds({"SHUTDOWN_GRACE_SECONDS": raw})
    assert stopped.value.code == message


def test_host_port_and_log_level_come_from_the_environment_as_make_run_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    args = parse_args([])
    assert (args.host, args.port, args.ws, args.log_level, args.grace) == (
        "0.0.0.0",
        9001,
        "websockets-sansio",
        "warning",
        None,
    )
    args = parse_args(["--port", "8100", "--ws", "wsproto", "--grace", "2.5"])
    assert (args.port, args.ws, args.grace) == (8100, "wsproto", 2.5)
