"""Fixtures for the knowledge tests: real small files, eager tasks, a Celery worker."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.models import Agent, LLMProvider
from knowledge.models import Document
from knowledge.services import document_create
from testing.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "AGENT_KEY_KNOWLEDGE_TEST"


# --- files made here, with the real libraries --------------------------------------------


def make_pdf(
    pages: Sequence[str | Sequence[str]],
    *,
    title: str = "",
    outline: Sequence[tuple[int, str]] = (),
    password: str | None = None,
) -> bytes:
    """A PDF with one page per item (paragraphs separated by blank lines), made by fpdf2.

    ``outline``: (page number, heading) bookmarks, as a long PDF's table of contents.
    """
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    if password is not None:
        pdf.set_encryption(owner_password="owner-" + password, user_password=password)
    headings = dict(outline)
    for number, page in enumerate(pages, start=1):
        pdf.add_page()
        if number in headings:
            pdf.start_section(headings[number])
        paragraphs = [page] if isinstance(page, str) else list(page)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(6)
    return bytes(pdf.output())


def make_image_only_pdf() -> bytes:
    """A PDF with a drawing and no text, as a scanned page appears to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def make_docx(items: Sequence[tuple[str, str]], *, title: str = "") -> bytes:
    """A DOCX made with python-docx: items are ("h1"/"h2"/"p"/"table", text).

    For "table" the text is rows separated by ";" and cells by "|".
    """
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for kind, text in items:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        elif kind == "table":
            rows = [row.split("|") for row in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell.strip()
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


# --- the Django side ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _media_root(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[None]:
    """Uploaded files go to a temporary folder (removed with it).

    A worker process reads the test settings' MEDIA_ROOT, so integration tests keep that
    one and remove the files they stored instead.
    """
    if not request.node.get_closest_marker("integration"):
        settings.MEDIA_ROOT = tmp_path / "media"
        yield
        return
    root = Path(settings.MEDIA_ROOT)
    before = set(root.rglob("*"))
    yield
    for path in sorted(set(root.rglob("*")) - before, reverse=True):
        if path.is_file():
            path.unlink()
        else:
            path.rmdir()


@pytest.fixture
def add_document(
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., Document]:
    """Upload a document through the service and run what it queues (indexing, sync)."""

    def add(name: str, data: bytes, *, agents: Sequence[Agent] = (), title: str = "") -> Document:
        with django_capture_on_commit_callbacks(execute=True):
            document = document_create(file=upload(name, data), title=title, agents=agents)
        document.refresh_from_db()
        return document

    return add


@pytest.fixture
def openai_agent(
    make_agent: Callable[..., Agent], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Agent:
    """An agent on the OpenAI provider, pointed at the local fake server."""
    monkeypatch.setenv(KEY_ENV, "sk-test-knowledge")
    return make_agent(
        llm_provider=LLMProvider.OPENAI,
        llm_model="gpt-test",
        llm_api_key_env=KEY_ENV,
        llm_base_url=fake_openai.base_url,
    )


# --- a real Celery worker (integration tests) -------------------------------------------------


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task without acknowledging or cleaning up."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _database_url() -> str:
    # The worker must see the test database, exactly as the root conftest's start_server.
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.fixture(scope="module")
def start_worker(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[Callable[..., Worker]]:
    """Start ``celery worker`` processes on the test database and Redis.

    Module-scoped (a worker takes seconds to start); all are stopped after the module.
    """
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs REDIS_URL (the integration stage of make test sets it)")
    started: list[Worker] = []
    logs = tmp_path_factory.mktemp("workers")

    def start(**extra_env: str) -> Worker:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="voiceapp.settings_test",
            DATABASE_URL=_database_url(),
            REDIS_URL=redis_url,
            CELERY_TASK_ALWAYS_EAGER="false",
        )
        env.update(extra_env)
        log_path = logs / f"worker-{len(started)}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "voiceapp.celery",  # as make production starts it
                "worker",
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
                f"--hostname=knowledge-test-{os.getpid()}-{len(started)}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches it whole
        )
        worker = Worker(process, log_path)
        started.append(worker)
        deadline = time.monotonic() + 30
        while "ready." not in worker.log():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{worker.log()}")
            time.sleep(0.1)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)
