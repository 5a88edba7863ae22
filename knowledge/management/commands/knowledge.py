"""``manage.py knowledge index|sync``: (re)index documents or sync OpenAI vector stores.

The work runs here, in this process, with a progress bar; it is the same service code
the Celery tasks run, so the results are recorded on the documents and stores as usual.
"""

from __future__ import annotations

from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents.models import Agent, LLMProvider
from knowledge import openai_sync, services
from knowledge.models import Document, Status, VectorStore


class Command(BaseCommand):
    help = "Index documents again, or sync agents' OpenAI vector stores, with progress."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        index = actions.add_parser("index", help="extract, chunk and index documents")
        index.add_argument(
            "--only",
            choices=[status.value for status in Status],
            help="only documents in this state (default: all)",
        )
        index.add_argument("--document", type=int, action="append", help="a document id")
        sync = actions.add_parser("sync", help="sync OpenAI vector stores with the documents")
        sync.add_argument("--agent", action="append", help="an agent slug (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        # OutputWrapper is a TextIOBase, which is what rich writes to.
        console = Console(file=cast("IO[str]", self.stdout), width=100)
        if options["action"] == "index":
            self._index(console, options.get("only"), options.get("document"))
        else:
            self._sync(console, options.get("agent"))

    def _progress(self, console: Console) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )

    def _index(self, console: Console, only: str | None, ids: list[int] | None) -> None:
        documents = Document.objects.order_by("pk")
        if only:
            documents = documents.filter(status=only)
        if ids:
            documents = documents.filter(pk__in=ids)
        pks = list(documents.values_list("pk", flat=True))
        failed: list[Document] = []
        with self._progress(console) as progress:
            bar = progress.add_task("Indexing", total=len(pks))
            for pk in pks:
                document = services.document_index(document_id=pk)
                if document is not None and document.status == Status.FAILED:
                    failed.append(document)
                progress.advance(bar)
        for document in failed:
            console.print(
                f"[red]failed[/red] {document.pk} {document.title}: {document.status_message}"
            )
        console.print(f"Indexed {len(pks) - len(failed)} of {len(pks)} documents.")
        if failed:
            raise CommandError(f"{len(failed)} documents could not be indexed.")

    def _sync(self, console: Console, slugs: list[str] | None) -> None:
        agents = Agent.objects.filter(
            Q(llm_provider=LLMProvider.OPENAI) | Q(vector_store__isnull=False)
        ).order_by("slug")
        if slugs:
            agents = agents.filter(slug__in=slugs)
            missing = set(slugs) - set(agents.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"no OpenAI agent with slug {', '.join(sorted(missing))}")
        agent_ids = list(agents.values_list("pk", flat=True))
        # Stores whose agent was deleted: nobody needs them; remove them at OpenAI.
        detached = (
            []
            if slugs
            else list(VectorStore.objects.filter(agent__isnull=True).values_list("pk", flat=True))
        )
        errors: list[str] = []
        with self._progress(console) as progress:
            bar = progress.add_task("Syncing", total=len(agent_ids) + len(detached))
            for agent_id in agent_ids:
                try:
                    openai_sync.vector_store_sync(agent_id=agent_id)
                except (openai_sync.SyncFailed, openai_sync.SyncBusy) as exc:
                    errors.append(f"agent {Agent.objects.get(pk=agent_id).slug}: {exc}")
                progress.advance(bar)
            for store_id in detached:
                try:
                    openai_sync.vector_store_teardown(store_id=store_id)
                except (openai_sync.SyncFailed, openai_sync.SyncBusy) as exc:
                    errors.append(f"detached store {store_id}: {exc}")
                progress.advance(bar)
        for error in errors:
            console.print(f"[red]failed[/red] {error}")
        done = len(agent_ids) + len(detached) - len(errors)
        console.print(f"Synced {done} of {len(agent_ids) + len(detached)} vector stores.")
        if errors:
            raise CommandError(f"{len(errors)} vector stores could not be synced.")
