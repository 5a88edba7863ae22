"""The OpenAI vector-store sync, driving the real ``openai`` client against the local fake.

Tasks run eagerly here (as in the embedded profile); ``test_sync_worker.py`` runs the
same sync in a real Celery worker with Redis.
"""

from __future__ import annotations

import datetime as dt

import openai
import pytest
from django.utils import timezone

from agents.models import Agent, LLMProvider
from knowledge import openai_sync
from knowledge.models import Document, Status, VectorStore, VectorStoreFile
from knowledge.openai_sync import SyncBusy, SyncFailed, file_name, vector_store_sync
from knowledge.services import document_delete, document_inspect_upload, document_save
from knowledge.tests.conftest import KEY_ENV, upload
from testing.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db


def remote_state(fake: FakeOpenAI) -> tuple[dict[str, bytes], dict[str, set[str]]]:
    """What the fake holds: file id -> content, store id -> attached file ids."""
    return (
        dict(fake.file_data),
        {store: set(files) for store, files in fake.vector_store_files.items()},
    )


def assert_in_step(fake: FakeOpenAI, agent: Agent) -> VectorStore:
    """Exactly one file per indexed document, with its content, attached; nothing else."""
    store = VectorStore.objects.get(agent=agent)
    documents = Document.objects.filter(agents=agent, status=Status.DONE)
    rows = {row.document_id: row for row in VectorStoreFile.objects.filter(store=store)}
    files, stores = remote_state(fake)
    assert set(stores) == {store.openai_id}
    assert stores[store.openai_id] == {row.openai_file_id for row in rows.values()}
    assert set(files) == {row.openai_file_id for row in rows.values()}
    assert set(rows) == {document.pk for document in documents}
    for document in documents:
        row = rows[document.pk]
        with document.file.open("rb") as handle:
            assert files[row.openai_file_id] == handle.read()
        assert (row.sha256, row.status) == (document.sha256, Status.DONE)
        assert fake.files[row.openai_file_id]["filename"] == file_name(store, document)
    return store


def test_an_added_document_is_uploaded_and_attached(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    document = add_document("hours.txt", b"Open at nine.", agents=[openai_agent])
    store = assert_in_step(fake_openai, openai_agent)
    assert (store.status, store.status_message) == (Status.DONE, "1 files in sync.")
    assert store.synced_at is not None
    remote = fake_openai.vector_stores[store.openai_id]
    assert remote["metadata"] == {
        "voiceapp_key": store.key.hex,
        "voiceapp_agent": openai_agent.slug,
    }
    [attached] = fake_openai.vector_store_files[store.openai_id].values()
    assert attached["attributes"] == {"document_id": str(document.pk), "sha256": document.sha256}
    assert fake_openai.errors == []


def test_a_changed_document_replaces_its_file(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("hours.txt", b"Open at nine.", agents=[openai_agent])
    old_file = VectorStoreFile.objects.get().openai_file_id
    with django_capture_on_commit_callbacks(execute=True):
        document_save(
            document=document,
            upload=document_inspect_upload(file=upload("hours.txt", b"Open at ten.")),
        )
    assert_in_step(fake_openai, openai_agent)
    assert old_file not in fake_openai.files
    assert list(fake_openai.file_data.values()) == [b"Open at ten."]


def test_a_deleted_document_is_removed_from_openai(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, django_capture_on_commit_callbacks
) -> None:
    keep = add_document("keep.txt", b"Keep me.", agents=[openai_agent])
    gone = add_document("gone.txt", b"Remove me.", agents=[openai_agent])
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=gone)
    assert_in_step(fake_openai, openai_agent)
    assert list(fake_openai.file_data.values()) == [b"Keep me."]
    assert VectorStoreFile.objects.get().document == keep


def test_detaching_a_document_from_the_agent_removes_its_file(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, django_capture_on_commit_callbacks
) -> None:
    document = add_document("a.txt", b"Words.", agents=[openai_agent])
    with django_capture_on_commit_callbacks(execute=True):
        document_save(document=document, agents=[])
    assert_in_step(fake_openai, openai_agent)
    assert fake_openai.files == {}


def test_running_the_sync_twice_changes_nothing(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    before = remote_state(fake_openai)
    uploads = len([r for r in fake_openai.requests_to("/v1/files") if r.method == "POST"])
    vector_store_sync(agent_id=openai_agent.pk)
    vector_store_sync(agent_id=openai_agent.pk)
    assert remote_state(fake_openai) == before
    posts = [r for r in fake_openai.requests_to("/v1/files") if r.method == "POST"]
    assert len(posts) == uploads == 1
    assert_in_step(fake_openai, openai_agent)


def test_duplicate_copies_of_a_file_are_reduced_to_one(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    document = add_document("a.txt", b"Alpha.", agents=[openai_agent])
    store = VectorStore.objects.get(agent=openai_agent)
    # Two more uploads of the same content, as a retried request may leave behind.
    client = openai.OpenAI(api_key="sk", base_url=fake_openai.base_url)
    for _ in range(2):
        client.files.create(
            file=(file_name(store, document), b"Alpha.", "text/plain"), purpose="assistants"
        )
    assert len(fake_openai.files) == 3
    vector_store_sync(agent_id=openai_agent.pk)
    assert_in_step(fake_openai, openai_agent)
    assert len(fake_openai.files) == 1


class WorkerDied(BaseException):
    """Stands for the process being killed: nothing in the sync catches it."""


def test_a_sync_killed_between_upload_and_record_leaves_no_orphan_after_the_rerun(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, monkeypatch
) -> None:
    openai_agent.llm_provider = LLMProvider.ELIZA  # no sync while the documents are added
    openai_agent.save(update_fields=["llm_provider"])
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    add_document("b.txt", b"Beta.", agents=[openai_agent])
    Agent.objects.filter(pk=openai_agent.pk).update(llm_provider=LLMProvider.OPENAI)
    real_upload = openai_sync._upload
    uploaded: list[str] = []

    def upload_then_die(client, store, document):
        uploaded.append(real_upload(client, store, document))
        if len(uploaded) == 2:
            raise WorkerDied  # the second file is at OpenAI; nothing here knows its id
        return uploaded[-1]

    monkeypatch.setattr(openai_sync, "_upload", upload_then_die)
    with pytest.raises(WorkerDied):
        vector_store_sync(agent_id=openai_agent.pk)
    assert len(fake_openai.files) == 2
    assert VectorStoreFile.objects.exclude(openai_file_id=uploaded[1]).count() == 1
    monkeypatch.setattr(openai_sync, "_upload", real_upload)

    vector_store_sync(agent_id=openai_agent.pk)
    assert_in_step(fake_openai, openai_agent)
    assert sorted(fake_openai.files) == sorted(uploaded)  # adopted, not uploaded again


def test_a_rejected_request_fails_the_sync_with_openais_message(
    openai_agent: Agent, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(400, message="boom")
    with pytest.raises(SyncFailed) as caught:
        vector_store_sync(agent_id=openai_agent.pk)
    assert caught.value.retryable is False
    store = VectorStore.objects.get(agent=openai_agent)
    assert (store.status, store.status_message, store.lease_token) == (
        Status.FAILED,
        "OpenAI: request rejected (HTTP 400): boom",
        "",
    )


def test_a_store_created_by_a_killed_run_is_found_again(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, monkeypatch
) -> None:
    document = add_document("a.txt", b"Alpha.", agents=[openai_agent])
    store = VectorStore.objects.get(agent=openai_agent)
    remote_id = store.openai_id
    # As if the run died between creating the store and recording its id.
    VectorStore.objects.filter(pk=store.pk).update(openai_id="")
    vector_store_sync(agent_id=openai_agent.pk)
    store.refresh_from_db()
    assert store.openai_id == remote_id
    assert list(fake_openai.vector_stores) == [remote_id]
    assert VectorStoreFile.objects.get().document == document


def test_a_store_deleted_at_openai_is_made_again(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    store = VectorStore.objects.get(agent=openai_agent)
    fake_openai.vector_stores.pop(store.openai_id)
    fake_openai.vector_store_files.pop(store.openai_id)
    vector_store_sync(agent_id=openai_agent.pk)
    store.refresh_from_db()
    assert_in_step(fake_openai, openai_agent)


def test_an_agent_leaving_openai_has_its_store_removed(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    Agent.objects.filter(pk=openai_agent.pk).update(llm_provider=LLMProvider.OPENAI_COMPATIBLE)
    assert vector_store_sync(agent_id=openai_agent.pk) is None
    assert (fake_openai.files, fake_openai.vector_stores) == ({}, {})
    assert not VectorStore.objects.exists()


def test_a_missing_key_fails_the_sync_without_retry(
    openai_agent: Agent, add_document, monkeypatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    store = VectorStore.objects.get(agent=openai_agent)
    assert (store.status, store.status_message) == (
        Status.FAILED,
        f"The OpenAI key variable {KEY_ENV} is not set.",
    )
    with pytest.raises(SyncFailed) as caught:
        vector_store_sync(agent_id=openai_agent.pk)
    assert caught.value.retryable is False


def test_a_server_error_is_retryable(openai_agent: Agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next(503, times=10)
    with pytest.raises(SyncFailed) as caught:
        vector_store_sync(agent_id=openai_agent.pk)
    assert caught.value.retryable is True
    assert VectorStore.objects.get().status == Status.FAILED


def test_a_second_sync_waits_for_the_lease(openai_agent: Agent, fake_openai: FakeOpenAI) -> None:
    store = VectorStore.objects.create(
        agent=openai_agent,
        base_url=openai_agent.llm_base_url,
        api_key_env=KEY_ENV,
        lease_token="other",
        lease_until=timezone.now() + dt.timedelta(seconds=30),
    )
    with pytest.raises(SyncBusy) as caught:
        vector_store_sync(agent_id=openai_agent.pk)
    assert 25 < caught.value.retry_in <= 30
    assert fake_openai.requests == []
    # Once it lapses (its worker died), the next sync takes over.
    VectorStore.objects.filter(pk=store.pk).update(lease_until=timezone.now())
    assert vector_store_sync(agent_id=openai_agent.pk) is not None


def test_a_file_openai_cannot_process_is_marked_failed(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document, monkeypatch
) -> None:
    original = fake_openai._attach

    def failing(store_id, file_id, attributes):
        item = original(store_id, file_id, attributes)
        item.update(status="failed", last_error={"code": "unsupported_file", "message": "no text"})
        return item

    monkeypatch.setattr(fake_openai, "_attach", failing)
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    row = VectorStoreFile.objects.get()
    assert (row.status, row.status_message) == (
        Status.FAILED,
        "OpenAI could not process the file: no text",
    )


def test_the_responses_call_gets_file_search_over_the_agents_store(
    openai_agent: Agent, fake_openai: FakeOpenAI, add_document
) -> None:
    from knowledge.selectors import vector_store_id_for

    assert vector_store_id_for(agent=openai_agent) == ""
    add_document("a.txt", b"Alpha.", agents=[openai_agent])
    store = VectorStore.objects.get(agent=openai_agent)
    assert vector_store_id_for(agent=openai_agent) == store.openai_id


def test_an_agent_without_documents_gets_no_store_at_openai(
    openai_agent: Agent, fake_openai: FakeOpenAI
) -> None:
    store = vector_store_sync(agent_id=openai_agent.pk)
    assert store is not None
    assert (store.status, store.openai_id) == (Status.DONE, "")
    assert fake_openai.vector_stores == {}
