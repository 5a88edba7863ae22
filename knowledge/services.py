"""Writes for knowledge: documents and their indexing, sync requests, conversation resets.

Every change that needs background work (extracting and indexing a document, syncing an
agent's OpenAI vector store) queues a Celery task with ``transaction.on_commit``, so a
task never runs against rows that were rolled back or not yet visible.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from agents.models import Agent, LLMProvider, ResetPolicy
from conversations.models import Conversation, ConversationStatus
from knowledge.chunking import ChunkDraft, chunk_blocks
from knowledge.extraction import (
    MIME_TYPES,
    ExtractionError,
    Kind,
    UnsupportedFile,
    extract,
    identify,
)
from knowledge.models import Chunk, Document, Status, VectorStore

log = logging.getLogger(__name__)


class DuplicateDocument(ValidationError):
    """The same content (by SHA-256) is already stored as ``existing``."""

    def __init__(self, existing: Document) -> None:
        super().__init__(
            f"This file is already uploaded as “{existing.title}” (document {existing.pk}).",
            code="duplicate",
        )
        self.existing = existing


@dataclass(frozen=True)
class Upload:
    """An uploaded file that passed the checks: its bytes and what they are."""

    name: str
    data: bytes
    kind: Kind
    sha256: str

    @property
    def content_type(self) -> str:
        return MIME_TYPES[self.kind]


def document_inspect_upload(*, file: File[bytes]) -> Upload:
    """Check an upload's size and type (by content) and hash it; raises ValidationError."""
    name = PurePath(file.name or "document").name
    limit = settings.KNOWLEDGE_MAX_DOCUMENT_BYTES
    if file.size is not None and file.size > limit:
        raise ValidationError(
            f"{name} is {file.size / 1048576:.1f} MB; the limit is {limit // 1048576} MB.",
            code="too_large",
        )
    file.seek(0)
    data = file.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(
            f"{name} is larger than the {limit // 1048576} MB limit.", code="too_large"
        )
    try:
        kind = identify(data, name)
    except UnsupportedFile as exc:
        raise ValidationError(str(exc), code="unsupported") from exc
    return Upload(name=name, data=data, kind=kind, sha256=hashlib.sha256(data).hexdigest())


def _default_title(name: str) -> str:
    stem = PurePath(name).stem.replace("_", " ").replace("-", " ").strip()
    return (stem[:1].upper() + stem[1:])[:200] or "Untitled document"


@transaction.atomic
def document_save(
    *,
    document: Document,
    upload: Upload | None = None,
    agents: Sequence[Agent] | None = None,
) -> Document:
    """Create or update ``document``: its fields as set, a new file, its agents.

    A new or changed file resets the document to *pending* and queues its indexing; a
    change of agents queues a sync of the OpenAI vector stores concerned; open
    conversations of the agents whose knowledge changed are marked for reset (by their
    policy). Raises :class:`DuplicateDocument` if another document has the same content.
    """
    creating = document.pk is None
    if creating and upload is None:
        raise ValidationError("A new document needs a file.", code="required")
    before = set() if creating else set(document.agents.values_list("pk", flat=True))
    replaced_file = ""
    stored_now = ""
    if upload is not None and upload.sha256 != document.sha256:
        duplicate = Document.objects.filter(sha256=upload.sha256).exclude(pk=document.pk).first()
        if duplicate is not None:
            raise DuplicateDocument(duplicate)
        replaced_file = document.file.name if not creating and document.file else ""
        document.file.save(get_valid_filename(upload.name), ContentFile(upload.data), save=False)
        stored_now = document.file.name or ""
        document.original_name = upload.name[:255]
        document.kind = upload.kind.value
        document.content_type = upload.content_type
        document.size = len(upload.data)
        document.sha256 = upload.sha256
        document.status = Status.PENDING
        document.status_message = "Waiting to be indexed."
        document.indexed_at = None
    try:
        changed_agents = _save_document_row(document, agents, before, bool(stored_now))
    except BaseException:
        # Django has no "on rollback" hook: remove the copy this failed save just stored.
        if stored_now:
            _delete_stored_file(stored_now, unless_referenced=False)
        raise
    if stored_now:
        document_id = document.pk
        transaction.on_commit(lambda: _queue_index(document_id))
        if replaced_file:
            transaction.on_commit(lambda: _delete_stored_file(replaced_file))
    elif changed_agents:
        vector_store_request_sync(agent_ids=changed_agents)
    agents_mark_for_reset_on_change(agent_ids=changed_agents)
    return document


def _save_document_row(
    document: Document, agents: Sequence[Agent] | None, before: set[int], content_changed: bool
) -> set[int]:
    """Validate and save the row and its agents; the agents whose knowledge changed."""
    if not document.title.strip():
        document.title = _default_title(document.original_name)
    document.full_clean(exclude=["file", "agents"], validate_unique=False)
    try:
        with transaction.atomic():
            document.save()
    except IntegrityError as exc:
        # Two uploads of the same content raced past the duplicate check.
        existing = Document.objects.filter(sha256=document.sha256).exclude(pk=document.pk).first()
        if existing is not None:
            raise DuplicateDocument(existing) from exc
        raise
    if agents is not None:
        document.agents.set(agents)
    after = set(document.agents.values_list("pk", flat=True))
    return (before | after) if content_changed else (before ^ after)


def document_create(
    *, file: File[bytes], title: str = "", agents: Iterable[Agent] = ()
) -> Document:
    """Store a new document from an uploaded file (checked by content) and index it."""
    upload = document_inspect_upload(file=file)
    return document_save(document=Document(title=title), upload=upload, agents=list(agents))


@transaction.atomic
def document_delete(*, document: Document) -> None:
    """Delete a document, its chunks and (after commit) its stored file; resync its agents."""
    agent_ids = set(document.agents.values_list("pk", flat=True))
    stored = document.file.name if document.file else ""
    document.delete()
    if stored:
        transaction.on_commit(lambda: _delete_stored_file(stored))
    vector_store_request_sync(agent_ids=agent_ids)
    agents_mark_for_reset_on_change(agent_ids=agent_ids)


def document_request_index(*, document_ids: Iterable[int]) -> int:
    """Mark documents pending and queue their indexing; returns how many."""
    ids = list(document_ids)
    with transaction.atomic():
        count = Document.objects.filter(pk__in=ids).update(
            status=Status.PENDING,
            status_message="Waiting to be indexed.",
            indexed_at=None,
            updated_at=timezone.now(),
        )
        for document_id in ids:
            transaction.on_commit(lambda pk=document_id: _queue_index(pk))  # type: ignore[misc]
    return count


def document_index(*, document_id: int) -> Document | None:
    """Extract, chunk and index one document; its status says how it went.

    The chunks are replaced in one transaction together with the status, so a document
    is either fully indexed with its current file or not searchable at all. A file that
    cannot be read ends *failed* with a message for the person who uploaded it.
    Returns None if the document no longer exists.
    """
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return None
        document.status = Status.RUNNING
        document.status_message = "Extracting text."
        document.save(update_fields=["status", "status_message", "updated_at"])
    sha256 = document.sha256
    try:
        drafts, pages = _chunks_of(document)
    except ExtractionError as exc:
        return _index_failed(document_id, sha256, str(exc))
    except Exception as exc:
        # The last line of defence of the "never stuck half-way" rule: whatever went
        # wrong is logged with its traceback and shown on the document, not swallowed.
        log.exception("indexing document %s failed", document_id)
        return _index_failed(document_id, sha256, f"Indexing failed unexpectedly: {exc!r}")
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.sha256 != sha256:
            return document  # deleted, or replaced meanwhile: the newer file has its own run
        Chunk.objects.filter(document=document).delete()
        Chunk.objects.bulk_create(
            Chunk(
                document=document,
                index=draft.index,
                text=draft.text,
                page=draft.page,
                section=draft.section,
                word_count=draft.word_count,
            )
            for draft in drafts
        )
        where = f" from {pages} page{'s' if pages != 1 else ''}" if pages else ""
        document.status = Status.DONE
        document.status_message = f"{len(drafts)} chunk{'s' if len(drafts) != 1 else ''}{where}."
        document.indexed_at = timezone.now()
        document.save(update_fields=["status", "status_message", "indexed_at", "updated_at"])
        vector_store_request_sync(agent_ids=document.agents.values_list("pk", flat=True))
    return document


def _chunks_of(document: Document) -> tuple[list[ChunkDraft], int | None]:
    try:
        with document.file.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ExtractionError("The stored file is missing; upload it again.") from exc
    extracted = extract(data, Kind(document.kind or identify(data, document.original_name)))
    return chunk_blocks(extracted.blocks), extracted.pages


def _index_failed(document_id: int, sha256: str, message: str) -> Document | None:
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.sha256 != sha256:
            return document
        Chunk.objects.filter(document=document).delete()
        document.status = Status.FAILED
        document.status_message = message
        document.indexed_at = None
        document.save(update_fields=["status", "status_message", "indexed_at", "updated_at"])
        # The agents' vector stores must not keep serving the old content either.
        vector_store_request_sync(agent_ids=document.agents.values_list("pk", flat=True))
    return document


# --- OpenAI vector stores ---------------------------------------------------------------


def vector_store_request_sync(*, agent_ids: Iterable[int]) -> list[int]:
    """Queue a sync of the vector stores of these agents that use OpenAI or still have one.

    Records the request on the store (so a sync already running goes round once more)
    and queues the task after commit. Returns the agent ids queued.
    """
    ids = set(agent_ids)
    if not ids:
        return []
    now = timezone.now()
    queued: list[int] = []
    with transaction.atomic():
        openai_agents = Agent.objects.filter(pk__in=ids, llm_provider=LLMProvider.OPENAI)
        for agent in openai_agents:
            VectorStore.objects.get_or_create(
                agent=agent,
                defaults={"base_url": agent.llm_base_url, "api_key_env": agent.llm_api_key_env},
            )
        stores = VectorStore.objects.filter(agent_id__in=ids)
        stores.exclude(status=Status.RUNNING).update(
            status=Status.PENDING, status_message="", requested_at=now, updated_at=now
        )
        stores.filter(status=Status.RUNNING).update(requested_at=now, updated_at=now)
        for agent_id in stores.values_list("agent_id", flat=True):
            assert agent_id is not None
            queued.append(agent_id)
            transaction.on_commit(lambda pk=agent_id: _queue_sync(pk))  # type: ignore[misc]
    return sorted(queued)


def _queue_index(document_id: int) -> None:
    from knowledge.tasks import document_index as task  # tasks import this module

    task.delay(document_id)


def _queue_sync(agent_id: int) -> None:
    from knowledge.tasks import vector_store_sync as task

    task.delay(agent_id)


def _delete_stored_file(name: str, *, unless_referenced: bool = True) -> None:
    from django.core.files.storage import default_storage

    if unless_referenced and Document.objects.filter(file=name).exists():
        return
    default_storage.delete(name)


# --- Conversation resets ------------------------------------------------------------------


def conversations_mark_for_reset(
    *,
    agent_ids: Collection[int] | None = None,
    user_ids: Collection[int] | None = None,
    channels: Collection[str] | None = None,
) -> int:
    """Make the next turn of matching open conversations start a fresh provider conversation.

    ``None`` means "any"; an empty collection matches nothing. Only conversations that
    have model state to leave are marked: an OpenAI conversation or ELIZA's memory (both
    are dropped when the conversation is next opened; see ``conversations.stores``).
    Returns how many were marked.
    """
    conversations = Conversation.objects.filter(
        status=ConversationStatus.ACTIVE, reset_requested=False
    ).exclude(provider_conversation_id="", engine_state={})
    if agent_ids is not None:
        conversations = conversations.filter(agent_id__in=agent_ids)
    if user_ids is not None:
        conversations = conversations.filter(user_id__in=user_ids)
    if channels is not None:
        conversations = conversations.filter(channel__in=channels)
    return conversations.update(reset_requested=True, updated_at=timezone.now())


def agents_mark_for_reset_on_change(*, agent_ids: Collection[int]) -> int:
    """After a prompt or knowledge change: mark the open conversations of those of these
    agents whose reset policy asks for it. Returns how many conversations were marked."""
    if not agent_ids:
        return 0
    resetting = Agent.objects.filter(
        Q(pk__in=agent_ids) & Q(reset_policy=ResetPolicy.ON_CHANGE)
    ).values_list("pk", flat=True)
    return conversations_mark_for_reset(agent_ids=list(resetting))
