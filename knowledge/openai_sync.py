"""Keeping an agent's OpenAI vector store in step with its documents (Files + Vector Stores).

One sync reconciles what OpenAI holds with what the database says should be there:

1. the agent's store exists (found again by its metadata if an earlier run created it
   but died before recording it; created otherwise);
2. every indexed document of the agent has exactly one uploaded file with its current
   content, attached to the store;
3. every other file this store ever uploaded (an old version, a deleted document, a
   duplicate left by a run killed between uploading and recording) is detached and
   deleted.

What belongs to a store is decided from OpenAI's own listings, not only from the
database: every file is named ``voiceapp-<store key>-d<document id>-<sha256 prefix>-…``,
so a run that was killed at any point, then run again, ends with exactly one file per
current document and no orphans. A lease on the store row keeps two syncs of the same
store from running at once; it lapses by itself if a worker dies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from openai import OpenAI

from agents.keys import KeyVariableRefused, read_key
from agents.llm.openai_responses import llm_error_from_openai
from agents.models import Agent, LLMProvider
from knowledge.models import Document, Status, VectorStore, VectorStoreFile

log = logging.getLogger(__name__)

__all__ = ["SyncBusy", "SyncFailed", "file_name", "vector_store_sync", "vector_store_teardown"]

_NAME = re.compile(r"^voiceapp-(?P<key>[0-9a-f]{32})-d(?P<document>\d+)-(?P<sha>[0-9a-f]{16})")
_EXTENSIONS = {"pdf": ".pdf", "docx": ".docx", "txt": ".txt", "md": ".md", "html": ".html"}
# How long to wait for OpenAI to process an attached file before leaving it in progress.
PROCESSING_WAIT_S = 120.0
_POLL_S = 1.0
_MAX_PASSES = 3


class SyncFailed(Exception):
    """The sync could not finish; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SyncBusy(Exception):
    """Another sync of this store holds the lease; it may be retried in ``retry_in`` s."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"another sync of this store is running (retry in {retry_in:.0f} s)")
        self.retry_in = retry_in


@dataclass(frozen=True)
class _Remote:
    """A file this store uploaded, as OpenAI lists it."""

    file_id: str
    document_id: int
    sha_prefix: str
    created_at: int


def file_name(store: VectorStore, document: Document) -> str:
    """The name a document's file gets at OpenAI: it says which store and content it is."""
    readable = slugify(document.title)[:40] or "document"
    extension = _EXTENSIONS.get(document.kind, "")
    return f"voiceapp-{store.key.hex}-d{document.pk}-{document.sha256[:16]}-{readable}{extension}"


def _client(store: VectorStore) -> OpenAI:
    try:
        key = read_key(store.api_key_env)
    except KeyVariableRefused as exc:
        raise SyncFailed(str(exc), retryable=False) from None
    if not key:
        name = store.api_key_env or "(none named)"
        raise SyncFailed(f"The OpenAI key variable {name} is not set.", retryable=False)
    # The SDK retries transient failures itself; a run that still fails is retried by
    # the Celery task with backoff. Every call is safe to repeat (see the module doc).
    return OpenAI(api_key=key, base_url=store.base_url or None, timeout=60.0, max_retries=2)


# --- the lease ---------------------------------------------------------------------------


class _Lease:
    def __init__(self, store: VectorStore) -> None:
        self.store_id = store.pk
        self.token = uuid.uuid4().hex
        self.seconds = settings.KNOWLEDGE_SYNC_LEASE_SECONDS

    def acquire(self) -> None:
        now = timezone.now()
        taken = (
            VectorStore.objects.filter(pk=self.store_id)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(
                lease_token=self.token,
                lease_until=now + dt.timedelta(seconds=self.seconds),
                updated_at=now,
            )
        )
        if not taken:
            until = (
                VectorStore.objects.filter(pk=self.store_id)
                .values_list("lease_until", flat=True)
                .first()
            )
            raise SyncBusy(max(1.0, (until - now).total_seconds()) if until else 1.0)

    def renew(self) -> None:
        """Extend the lease before each remote change; lost (expired and taken) is busy."""
        now = timezone.now()
        kept = VectorStore.objects.filter(pk=self.store_id, lease_token=self.token).update(
            lease_until=now + dt.timedelta(seconds=self.seconds)
        )
        if not kept:
            raise SyncBusy(float(self.seconds))

    def release(self) -> None:
        VectorStore.objects.filter(pk=self.store_id, lease_token=self.token).update(
            lease_token="", lease_until=None
        )


def _set_status(store: VectorStore, status: Status, message: str = "", **extra: Any) -> None:
    store.status = status
    store.status_message = message
    for name, value in extra.items():
        setattr(store, name, value)
    VectorStore.objects.filter(pk=store.pk).update(
        status=status, status_message=message, updated_at=timezone.now(), **extra
    )


# --- the sync ---------------------------------------------------------------------------


def vector_store_sync(*, agent_id: int) -> VectorStore | None:
    """Bring the agent's OpenAI vector store in step with its indexed documents.

    An agent that no longer uses OpenAI has its store and files removed (returns None).
    Raises :class:`SyncBusy` while another sync holds the store, and
    :class:`SyncFailed` (also recorded on the store) when OpenAI or the configuration
    fails it.
    """
    agent = Agent.objects.filter(pk=agent_id).first()
    uses_openai = agent is not None and agent.llm_provider == LLMProvider.OPENAI
    store = VectorStore.objects.filter(agent_id=agent_id).first()
    if store is None:
        if not uses_openai or agent is None:
            return None
        store, _ = VectorStore.objects.get_or_create(
            agent=agent,
            defaults={"base_url": agent.llm_base_url, "api_key_env": agent.llm_api_key_env},
        )
    if not uses_openai or agent is None:
        vector_store_teardown(store_id=store.pk)
        return None
    lease = _Lease(store)
    lease.acquire()
    try:
        for _ in range(_MAX_PASSES):
            started = timezone.now()
            _set_status(store, Status.RUNNING, "Syncing with OpenAI.")
            if (store.base_url, store.api_key_env) != (agent.llm_base_url, agent.llm_api_key_env):
                # Another account or endpoint: the old store cannot serve; remove it there.
                _teardown_remote(store, lease)
                _move_store(store, agent)
            count = _reconcile(store, agent, lease)
            store.refresh_from_db()
            agent.refresh_from_db()
            if store.requested_at is None or store.requested_at <= started:
                break  # nothing changed while this pass ran
        _set_status(store, Status.DONE, f"{count} files in sync.", synced_at=timezone.now())
        return store
    except openai.OpenAIError as exc:
        error = llm_error_from_openai(exc)
        failure = SyncFailed(f"OpenAI: {error}", retryable=error.retryable)
        _set_status(store, Status.FAILED, str(failure))
        raise failure from exc
    except SyncFailed as exc:
        _set_status(store, Status.FAILED, str(exc))
        raise
    finally:
        lease.release()


def _move_store(store: VectorStore, agent: Agent) -> None:
    store.openai_id = ""
    store.key = uuid.uuid4()
    store.base_url = agent.llm_base_url
    store.api_key_env = agent.llm_api_key_env
    store.save(update_fields=["openai_id", "key", "base_url", "api_key_env", "updated_at"])
    VectorStoreFile.objects.filter(store=store).delete()


def _ours(client: OpenAI, store: VectorStore) -> Iterator[_Remote]:
    """Every file at OpenAI that this store uploaded (found by name)."""
    for remote in client.files.list(purpose="assistants", limit=10_000):
        found = _NAME.match(remote.filename or "")
        if found and found["key"] == store.key.hex:
            yield _Remote(remote.id, int(found["document"]), found["sha"], remote.created_at)


def _ensure_store(
    client: OpenAI, store: VectorStore, agent: Agent, lease: _Lease, *, create: bool
) -> str:
    """The store's OpenAI id: the recorded one, one a killed run made, or (if ``create``)
    a new one; ``""`` when there is none and none is wanted."""
    if store.openai_id:
        try:
            client.vector_stores.retrieve(store.openai_id)
            return store.openai_id
        except openai.NotFoundError:
            log.warning("vector store %s is gone at OpenAI; making a new one", store.openai_id)
    # A run killed after creating the store but before recording it left it findable.
    found = next(
        (
            remote.id
            for remote in client.vector_stores.list(limit=100)
            if (remote.metadata or {}).get("voiceapp_key") == store.key.hex
        ),
        None,
    )
    if found is None and not create:
        return ""
    if found is None:
        lease.renew()
        created = client.vector_stores.create(
            name=f"{agent.name} ({agent.slug})"[:256],
            metadata={"voiceapp_key": store.key.hex, "voiceapp_agent": agent.slug[:512]},
        )
        found = created.id
    store.openai_id = found
    store.save(update_fields=["openai_id", "updated_at"])
    return found


def _reconcile(store: VectorStore, agent: Agent, lease: _Lease) -> int:
    client = _client(store)
    documents = {
        document.pk: document
        for document in Document.objects.filter(agents=agent, status=Status.DONE)
    }
    # No documents and no store yet: nothing to make at OpenAI.
    store_id = _ensure_store(client, store, agent, lease, create=bool(documents))
    if not store_id:
        return 0
    remotes = list(_ours(client, store))
    attached = {item.id: item for item in client.vector_stores.files.list(store_id, limit=100)}
    recorded = dict(
        VectorStoreFile.objects.filter(store=store).values_list("document_id", "openai_file_id")
    )
    keep: dict[int, str] = {}
    for document in documents.values():
        candidates = [
            remote
            for remote in remotes
            if remote.document_id == document.pk and remote.sha_prefix == document.sha256[:16]
        ]
        # Several copies (a retried upload): keep the attached, else the recorded, else
        # the oldest; the others go below with the rest.
        candidates.sort(
            key=lambda r: (
                r.file_id not in attached,
                r.file_id != recorded.get(document.pk),
                r.created_at,
                r.file_id,
            )
        )
        if candidates:
            file_id = candidates[0].file_id
        else:
            lease.renew()
            file_id = _upload(client, store, document)
        keep[document.pk] = file_id
        row, _ = VectorStoreFile.objects.update_or_create(
            store=store,
            document=document,
            defaults={
                "openai_file_id": file_id,
                "sha256": document.sha256,
                "status": Status.RUNNING,
                "status_message": "Attaching to the vector store.",
            },
        )
        if file_id not in attached:
            lease.renew()
            attached[file_id] = client.vector_stores.files.create(
                store_id,
                file_id=file_id,
                attributes={"document_id": str(document.pk), "sha256": document.sha256},
            )
        _record_processing(client, store_id, file_id, row, lease)
    wanted = set(keep.values())
    for file_id in attached:
        if file_id not in wanted:
            lease.renew()
            _detach(client, store_id, file_id)
    for remote in remotes:
        if remote.file_id not in wanted:
            lease.renew()
            _delete_file(client, remote.file_id)
    VectorStoreFile.objects.filter(store=store).exclude(document_id__in=list(keep)).delete()
    return len(keep)


def _upload(client: OpenAI, store: VectorStore, document: Document) -> str:
    with document.file.open("rb") as handle:
        data = handle.read()
    uploaded = client.files.create(
        file=(file_name(store, document), data, document.content_type or None),
        purpose="assistants",
    )
    return uploaded.id


def _record_processing(
    client: OpenAI, store_id: str, file_id: str, row: VectorStoreFile, lease: _Lease
) -> None:
    """Wait (bounded) for OpenAI to process an attached file, and record how it went."""
    deadline = time.monotonic() + PROCESSING_WAIT_S
    while True:
        item = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if item.status != "in_progress" or time.monotonic() > deadline:
            break
        lease.renew()
        time.sleep(_POLL_S)
    if item.status == "completed":
        status, message = Status.DONE, ""
    elif item.status == "in_progress":
        status, message = Status.RUNNING, "OpenAI is still processing the file."
    else:
        detail = item.last_error.message if item.last_error else item.status
        status, message = Status.FAILED, f"OpenAI could not process the file: {detail}"
    with transaction.atomic():
        VectorStoreFile.objects.filter(pk=row.pk).update(
            status=status, status_message=message, updated_at=timezone.now()
        )


# Deleting what is already gone is what these steps want: a 404 is success.


def _detach(client: OpenAI, store_id: str, file_id: str) -> None:
    with contextlib.suppress(openai.NotFoundError):
        client.vector_stores.files.delete(file_id, vector_store_id=store_id)


def _delete_file(client: OpenAI, file_id: str) -> None:
    with contextlib.suppress(openai.NotFoundError):
        client.files.delete(file_id)


def _teardown_remote(store: VectorStore, lease: _Lease) -> None:
    """Delete this store's files and the store itself at OpenAI."""
    client = _client(store)
    if store.openai_id:
        try:
            attached = [item.id for item in client.vector_stores.files.list(store.openai_id)]
        except openai.NotFoundError:
            attached = []
        for file_id in attached:
            lease.renew()
            _detach(client, store.openai_id, file_id)
    for remote in list(_ours(client, store)):
        lease.renew()
        _delete_file(client, remote.file_id)
    if store.openai_id:
        lease.renew()
        with contextlib.suppress(openai.NotFoundError):
            client.vector_stores.delete(store.openai_id)


def vector_store_teardown(*, store_id: int) -> None:
    """Remove a store that no agent needs any more, at OpenAI and then here."""
    store = VectorStore.objects.filter(pk=store_id).first()
    if store is None:
        return
    lease = _Lease(store)
    lease.acquire()
    try:
        _set_status(store, Status.RUNNING, "Removing the vector store at OpenAI.")
        _teardown_remote(store, lease)
    except openai.OpenAIError as exc:
        error = llm_error_from_openai(exc)
        failure = SyncFailed(f"OpenAI: {error}", retryable=error.retryable)
        _set_status(store, Status.FAILED, str(failure))
        lease.release()
        raise failure from exc
    except SyncFailed as exc:
        _set_status(store, Status.FAILED, str(exc))
        lease.release()
        raise
    store.delete()
