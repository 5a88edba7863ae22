"""Knowledge documents that agents answer from, the chunks they are split into, and their
copies in OpenAI vector stores.

The full-text index over chunks is not a Django field: it lives beside the table, kept in
step by the database itself (migration ``0002``): an FTS5 table with triggers on SQLite,
a generated ``tsvector`` column with a GIN index on PostgreSQL. See ``knowledge.search``.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from agents.models import Agent


class Status(models.TextChoices):
    """Progress of one piece of background work (indexing, a sync)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class DocumentKind(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (DOCX)"
    TXT = "txt", "Plain text"
    MARKDOWN = "md", "Markdown"
    HTML = "html", "HTML"


class Document(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to="documents/%Y/%m/", help_text="The original, as uploaded.")
    original_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=8, choices=DocumentKind.choices, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, unique=True, help_text="Identifies duplicates.")
    agents = models.ManyToManyField(Agent, related_name="documents", blank=True)
    status = models.CharField(
        "indexing", max_length=16, choices=Status.choices, default=Status.PENDING
    )
    status_message = models.TextField(blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        indexes = [models.Index(fields=["status"], name="doc_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status=Status.DONE) | Q(indexed_at__isnull=False),
                name="knowledge_document_done_has_indexed_at",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A retrievable passage of a document, with where it came from.

    SQLite keeps the FTS5 index in step through triggers on this table; a migration that
    makes Django rebuild the table on SQLite drops them, so such a migration must
    recreate them (``knowledge.search.sqlite.install``); a test checks they exist.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    section = models.CharField(max_length=255, blank=True)
    word_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["document", "index"]
        constraints = [
            models.UniqueConstraint(fields=["document", "index"], name="chunks_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.document} §{self.index}"


class VectorStore(models.Model):
    """The OpenAI vector store that holds one agent's documents for ``file_search``.

    ``key`` names everything this store owns at OpenAI (the store's metadata and every
    uploaded file's name), so a sync that was killed half-way can find what it made
    before it could record it. The credentials are remembered by name, as on the agent,
    so a store can still be removed after its agent has moved to another provider.
    """

    agent = models.OneToOneField(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="vector_store"
    )
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    openai_id = models.CharField("OpenAI vector store id", max_length=255, blank=True)
    base_url = models.URLField(blank=True)
    api_key_env = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_message = models.TextField(blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # Held by the sync that is running; it lapses by itself if that worker dies.
    lease_token = models.CharField(max_length=36, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["openai_id"],
                condition=~Q(openai_id=""),
                name="knowledge_vector_store_unique_openai_id",
            )
        ]

    def __str__(self) -> str:
        return f"vector store of {self.agent}" if self.agent else f"detached store {self.key}"


class VectorStoreFile(models.Model):
    """One document as uploaded to one agent's vector store: what was sent, and how it went."""

    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="files")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="openai_files")
    openai_file_id = models.CharField("OpenAI file id", max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="The content uploaded.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["store", "document"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "document"], name="knowledge_store_file_unique_document"
            ),
            models.UniqueConstraint(
                fields=["store", "openai_file_id"],
                condition=~Q(openai_file_id=""),
                name="knowledge_store_file_unique_openai_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document} in {self.store}"
