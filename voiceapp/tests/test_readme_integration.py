"""The README's first-hour commands, from a fresh clone, exactly as printed.

The repository is cloned into a temporary directory; `make run` is started there in the
background with nothing in the environment but PATH, HOME and PORT (as a newcomer's
shell would have), and once it serves, every other command of the README's "The first
hour" block runs in the same directory, as printed, and what each prints is checked.
The clone shares this checkout's virtual environment and front-end libraries (which
`make test` installed from the same pinned files), so the run costs no download.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.waits import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAKE_RUN_TIMEOUT_S = 900  # a cold install of the pinned requirements, on a busy machine
COMMAND_TIMEOUT_S = 300


def first_hour_commands() -> list[str]:
    """The commands of the README's "The first hour" block, comments removed."""
    found = re.search(r"### The first hour\n.*?```sh\n(.*?)```", README.read_text(), re.S)
    assert found, "the README has no 'The first hour' block"
    return [line.split("#", 1)[0].strip() for line in found[1].splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    if (ROOT / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    else:  # a checkout without its history: the same files, without what runs make
        shutil.copytree(
            ROOT,
            repo,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".venv", "node_modules", "var", "test-artifacts", "__pycache__", ".*_cache"
            ),
        )
    (repo / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(ROOT / "node_modules", repo / "node_modules", symlinks=True)
    return repo


@pytest.fixture
def newcomer_env() -> dict[str, str]:
    """A shell with nothing of ours set: no SECRET_KEY, DATABASE_URL or settings module."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def make_run(clone: Path, newcomer_env: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """`make run` in the clone, serving on a free port, stopped (its whole process group)
    afterwards; yields the port and its log."""
    port = free_port()
    log = clone.parent / "make-run.log"
    command = first_hour_commands()[0]
    assert command == "make run"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            shell=True,
            cwd=clone,
            env={**newcomer_env, "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Uvicorn running on" in log.read_text() or server.poll() is not None,
            what="make run to serve",
            timeout_s=MAKE_RUN_TIMEOUT_S,
        )
        assert server.poll() is None, log.read_text()
        yield port, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read().decode()


def sign_in(base: str, username: str, password: str) -> str:
    """Sign in to the admin as a browser would; returns the admin index page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{base}/admin/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token
    data = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token[1],
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=data, headers={"Referer": f"{base}/admin/login/"}
    )
    with opener.open(request, timeout=30) as response:
        assert response.url == f"{base}/admin/", "the printed password did not sign in"
        return str(response.read().decode())


def test_the_first_hour_runs_from_a_fresh_clone_exactly_as_printed(
    clone: Path, newcomer_env: dict[str, str], make_run: tuple[int, Path]
) -> None:
    port, log = make_run
    base = f"http://127.0.0.1:{port}"
    served = log.read_text()
    assert f"Serving on {base}/ (admin at /admin/)" in served
    password = re.search(r"^  password: (\S+)$", served, re.M)
    assert password, served
    assert served.count(password[1]) == 1  # printed once, and never logged again
    assert (clone / "var" / "secret_key").stat().st_mode & 0o077 == 0
    assert get(f"{base}/agents/eliza/")[0] == 200
    assert "Agents, conversations and knowledge" in sign_in(base, "admin", password[1])

    def run(command: str, stdin: str = "") -> str:
        done = subprocess.run(
            command,
            shell=True,
            cwd=clone,
            env=newcomer_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def eliza(out: str) -> None:
        greeting, answer = out.splitlines()
        assert greeting == "HELLO. WHAT WOULD YOU LIKE TO TALK ABOUT TODAY"
        assert answer == "HOW LONG HAVE YOU BEEN FEELING SAD"

    def api_token(out: str) -> None:
        token = out.strip()
        assert re.fullmatch(r"[0-9a-f]{40}", token)
        status, body = get(f"{base}/api/agents/", {"Authorization": f"Token {token}"})
        assert status == 200
        assert "eliza" in [agent["slug"] for agent in json.loads(body)["results"]]

    def knowledge_index(out: str) -> None:
        assert out.strip().endswith("Indexed 0 of 0 documents.")

    def knowledge_sync(out: str) -> None:
        assert out.strip().endswith("Synced 0 of 0 vector stores.")

    checks = {
        ".venv/bin/python manage.py eliza": (eliza, "I am sad.\n"),
        ".venv/bin/python manage.py api_token admin": (api_token, ""),
        ".venv/bin/python manage.py knowledge index": (knowledge_index, ""),
        ".venv/bin/python manage.py knowledge sync": (knowledge_sync, ""),
    }
    commands = first_hour_commands()[1:]
    # Every command the block prints is run and checked; a new one needs its check here.
    assert commands == list(checks)
    for command in commands:
        check, stdin = checks[command]
        check(run(command, stdin))
