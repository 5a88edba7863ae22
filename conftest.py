"""Fixtures shared by every app's tests: small factories for the core records."""

from __future__ import annotations

import importlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

from agents.models import Agent
from agents.services import agent_create
from testing.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent
_counter = itertools.count(1)


#: Fixtures that start real processes: a test using one is marked ``processes`` (the
#: tests that spawn processes themselves carry the mark by hand).
_PROCESS_FIXTURES = {"start_server", "start_worker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


@pytest.fixture(autouse=True)
def _eager_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run Celery tasks in-process, as the embedded profile does, unless a real worker is used.

    The second stage of ``make test`` sets REDIS_URL, which makes Celery send tasks to
    Redis; only the integration tests have a worker there to run them.
    """
    from voiceapp.celery import app

    if request.node.get_closest_marker("integration"):
        yield
        return
    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def make_agent(db: None) -> Callable[..., Agent]:
    def make(**fields: Any) -> Agent:
        n = next(_counter)
        fields.setdefault("name", f"Agent {n}")
        fields.setdefault("slug", f"agent-{n}")
        fields.setdefault("prompt_text", f"You are agent {n}.")
        return agent_create(**fields)

    return make


def _group(name: str) -> Group:
    """A group made by a data migration; transactional tests flush it, so remake it then."""
    group, created = Group.objects.get_or_create(name=name)
    if created and name == "Operators":
        migration = importlib.import_module("conversations.migrations.0002_operators_group")
        # 0003 lets operators label turns.
        for app_label, codename in [
            *migration.OPERATOR_PERMISSIONS,
            ("conversations", "label_turn"),
        ]:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(*, staff: bool = False, superuser: bool = False, groups: tuple[str, ...] = ()) -> User:
        n = next(_counter)
        user = User.objects.create_user(
            username=f"user{n}",
            password="pw-12345-xyz",
            is_staff=staff or superuser,
            is_superuser=superuser,
        )
        for name in groups:
            user.groups.add(_group(name))
        return user

    return make


@pytest.fixture
def operator(make_user: Callable[..., User]) -> User:
    return make_user(staff=True, groups=("Operators",))


class ServerProcess:
    """A real uvicorn process serving the project, for tests that cross process boundaries."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.port = port
        self.process = process
        self.log_path = log_path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start uvicorn processes against the test database; all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(*, log_level: str = "warning", **extra_env: str) -> ServerProcess:
        from django.db import connection

        db = connection.settings_dict
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = "voiceapp.settings_test"
        if db["ENGINE"].endswith("postgresql"):
            env["DATABASE_URL"] = (
                f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            )
        else:
            env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
        env.update(extra_env)
        port = _free_port()
        log_path = tmp_path / f"server-{port}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voiceapp.serve",  # the product's entry point (uvicorn, draining on SIGTERM)
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = ServerProcess(port, process, log_path)
        started.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return server
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in 30 s:\n{server.log()}")

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()


@pytest.fixture(scope="session")
def _fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(_fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    """A local fake of the OpenAI API (real HTTP, real SSE), reset for each test."""
    _fake_openai_server.reset()
    return _fake_openai_server
