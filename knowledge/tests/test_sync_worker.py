"""The knowledge tasks in a real Celery worker process, with Redis as the broker.

The worker runs the indexing and the OpenAI sync against the same test database, and
talks to the fake OpenAI server in this process over HTTP. The crash test kills the
worker with SIGKILL while OpenAI is answering an upload it has already performed, then
runs the sync again in a new worker.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agents.models import Agent
from knowledge.models import Document, Status, VectorStore
from knowledge.services import (
    document_create,
    document_delete,
    document_inspect_upload,
    document_save,
)
from knowledge.tests.conftest import KEY_ENV, Worker, upload, wait_for
from knowledge.tests.test_openai_sync import assert_in_step
from testing.fake_openai import FakeOpenAI

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LEASE_S = 2
# A killed worker's unacknowledged task is redelivered after this long.
VISIBILITY_S = 3
WORKER_ENV = {
    KEY_ENV: "sk-worker",
    "KNOWLEDGE_SYNC_LEASE_SECONDS": str(LEASE_S),
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_S),
}


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., Worker]) -> Worker:
    """One worker for the module (starting one takes seconds); the crash test kills it."""
    return start_worker(**WORKER_ENV)


def synced(agent: Agent, after=None) -> Callable[[], bool]:
    def check() -> bool:
        store = VectorStore.objects.filter(agent=agent).first()
        if store is None or store.status != Status.DONE:
            return False
        return after is None or (store.synced_at is not None and store.synced_at > after)

    return check


def settle_in_step(fake: FakeOpenAI, agent: Agent, worker: Worker, timeout_s: float = 20) -> None:
    """Wait until the syncs the worker has queued are done and OpenAI is in step.

    Several syncs may be queued (one per indexed document); check once they are all done.
    """

    def in_step() -> bool:
        store = VectorStore.objects.filter(agent=agent).first()
        if store is None or store.status != Status.DONE or store.lease_token:
            return False
        try:
            assert_in_step(fake, agent)
        except AssertionError:
            return False
        return True

    wait_for(in_step, timeout_s=timeout_s, what=f"OpenAI in step\n{worker.log()}")


def indexed(document: Document) -> Callable[[], bool]:
    return lambda: Document.objects.get(pk=document.pk).status in {Status.DONE, Status.FAILED}


def test_the_worker_indexes_and_syncs_adds_changes_and_deletes(
    openai_agent: Agent, fake_openai: FakeOpenAI, worker: Worker
) -> None:
    first = document_create(file=upload("a.txt", b"Alpha."), agents=[openai_agent])
    second = document_create(file=upload("b.md", b"# Beta\n\nBeta."), agents=[openai_agent])
    wait_for(indexed(first), what="indexing")
    wait_for(indexed(second), what="indexing")
    settle_in_step(fake_openai, openai_agent, worker)
    assert len(fake_openai.files) == 2
    store = VectorStore.objects.get(agent=openai_agent)

    before = VectorStore.objects.get(pk=store.pk).synced_at
    document_save(
        document=Document.objects.get(pk=first.pk),
        upload=document_inspect_upload(file=upload("a.txt", b"Alpha, revised.")),
    )
    document_delete(document=Document.objects.get(pk=second.pk))
    wait_for(synced(openai_agent, after=before), what=f"the resync\n{worker.log()}")
    wait_for(indexed(first), what="indexing the new version")
    settle_in_step(fake_openai, openai_agent, worker)
    assert list(fake_openai.file_data.values()) == [b"Alpha, revised."]
    assert fake_openai.errors == []


def test_a_worker_killed_mid_sync_then_its_redelivered_task_leaves_one_file_per_document(
    openai_agent: Agent, fake_openai: FakeOpenAI, worker: Worker, start_worker
) -> None:
    first = document_create(file=upload("a.txt", b"Alpha."), agents=[openai_agent])
    settle_in_step(fake_openai, openai_agent, worker)

    # The next upload is performed by OpenAI, but its answer never reaches the worker:
    # the worker is killed while waiting for it, before it can record the file's id.
    fake_openai.stall_next(30, path="/v1/files", method="POST")
    second = document_create(file=upload("b.txt", b"Beta."), agents=[openai_agent])
    wait_for(lambda: len(fake_openai.files) == 2, what=f"the second upload\n{worker.log()}")
    worker.kill()
    store = VectorStore.objects.get(agent=openai_agent)
    assert store.status == Status.RUNNING  # died mid-sync, holding the lease
    assert store.lease_token != ""
    before = store.synced_at

    # Nobody asks for a sync again: the broker hands the killed worker's unacknowledged
    # task to the new worker once its visibility timeout has passed.
    rerun = start_worker(**WORKER_ENV)
    wait_for(
        synced(openai_agent, after=before),
        timeout_s=VISIBILITY_S + 30,
        what=f"the redelivered sync\n{rerun.log()}",
    )
    settle_in_step(fake_openai, openai_agent, rerun)
    assert len(fake_openai.files) == 2  # the orphaned upload was adopted, not repeated
    uploads = [r for r in fake_openai.requests_to("/v1/files") if r.method == "POST"]
    assert len(uploads) == 2
    assert {Document.objects.get(pk=d.pk).status for d in (first, second)} == {Status.DONE}
    assert "vector_store_sync" in rerun.log()  # the new worker ran the redelivered task
