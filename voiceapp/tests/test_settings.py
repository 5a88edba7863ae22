"""Start-up fails loudly on bad configuration, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from voiceapp.env import Env

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 20 + "-production-secret-key-with-enough-entropy-0123456789"


def start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process with exactly these settings variables."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DEBUG",
            "SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_SETTINGS_MODULE",
            "HTTPS",
            "ALLOWED_HOSTS",
            "LOG_LEVEL",
            "CELERY_BROKER_URL",
            "SECRET_KEY_FILE",
        }
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *(args or ("check",))],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        (
            {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "postgres://u:secret@db:notaport/app"},
            "DATABASE_URL has an invalid port: 'postgres://u:***@db:notaport/app'",
        ),
        (
            {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "mysql://u@db/app"},
            "DATABASE_URL must be a sqlite:// or postgres:// URL",
        ),
        (
            {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "postgres://"},
            "DATABASE_URL must name a host and a database",
        ),
        ({"SECRET_KEY": GOOD_KEY, "REDIS_URL": "http://cache:6379"}, "REDIS_URL must be a"),
        ({"SECRET_KEY": GOOD_KEY, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' must be one of"),
        (
            {"DEBUG": "false", "SECRET_KEY_FILE": "/nonexistent/secret_key"},
            "SECRET_KEY must be set when DEBUG is off",
        ),
        (
            {"SECRET_KEY": GOOD_KEY, "API_THROTTLE_ANON": "lots"},
            "API_THROTTLE_ANON='lots' is not a rate; write it like 60/minute",
        ),
    ],
)
def test_bad_configuration_stops_start_up_naming_the_variable(
    env: dict[str, str], expected: str
) -> None:
    result = start(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert expected in result.stderr
    assert "secret@" not in result.stderr  # passwords in URLs are never printed


def test_production_configuration_passes_deploy_checks() -> None:
    result = start(
        {
            "DEBUG": "false",
            "SECRET_KEY": GOOD_KEY,
            "HTTPS": "true",
            "ALLOWED_HOSTS": "voice.example.org",
            "DATABASE_URL": "postgres://app:pw@127.0.0.1:5432/voiceapp",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_profile_selects_postgres_redis_and_a_real_broker() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CHANNEL_LAYERS['default']['BACKEND']);"
        "print(s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)"
    )
    result = start(
        {
            "SECRET_KEY": GOOD_KEY,
            "DATABASE_URL": "postgres://app:pw@127.0.0.1:5432/voiceapp",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        },
        "shell",
        "-c",
        code,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-4:-1] == [
        "django.db.backends.postgresql",
        "channels_redis.core.RedisChannelLayer",
        "redis://127.0.0.1:6379/0 False",
    ]


def test_embedded_profile_is_sqlite_in_memory_layer_and_eager_celery() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CHANNEL_LAYERS['default']['BACKEND']);"
        "print(s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)"
    )
    result = start({"SECRET_KEY": GOOD_KEY}, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-4:-1] == [
        "voiceapp.sqlite",
        "channels.layers.InMemoryChannelLayer",
        "memory:// True",
    ]


class TestEnv:
    def test_booleans_accept_the_usual_spellings(self) -> None:
        env = Env({"A": "Yes", "B": "off", "C": " 1 "})
        assert (env.flag("A", False), env.flag("B", True), env.flag("C", False)) == (
            True,
            False,
            True,
        )

    def test_unset_or_blank_values_take_the_default(self) -> None:
        assert Env({"A": "  "}).flag("A", True) is True
        assert Env({}).number("N", 7) == 7

    def test_integers_are_checked(self) -> None:
        with pytest.raises(ImproperlyConfigured, match=r"^PORT='eighty' is not an integer$"):
            Env({"PORT": "eighty"}).number("PORT", 80)
        with pytest.raises(ImproperlyConfigured, match=r"^N=-1 must be at least 0$"):
            Env({"N": "-1"}).number("N", 0, minimum=0)

    def test_database_urls_parse(self) -> None:
        config = Env({"D": "postgres://app:pw@db.internal:5433/voice"}).database("D", "")
        assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
            "django.db.backends.postgresql",
            "db.internal",
            5433,
            "voice",
        )

    def test_lists_split_on_commas(self) -> None:
        assert Env({"H": "a.org, b.org,,"}).items("H", []) == ["a.org", "b.org"]


def test_manage_py_uses_the_key_that_make_run_kept(tmp_path) -> None:
    kept = tmp_path / "secret_key"
    kept.write_text("kept-key-0123456789abcdefghijklmnopqrstuvwxyz-0123456789\n")
    code = "from django.conf import settings as s; print(s.SECRET_KEY)"
    result = start({"SECRET_KEY_FILE": str(kept)}, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == kept.read_text().strip()
    # A key in the environment wins over the file.
    result = start({"SECRET_KEY_FILE": str(kept), "SECRET_KEY": GOOD_KEY}, "shell", "-c", code)
    assert result.stdout.strip().splitlines()[-1] == GOOD_KEY
