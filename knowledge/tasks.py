"""Celery tasks for knowledge: thin, idempotent, keyed by ids, safe to run twice.

They are queued by ``knowledge.services`` with ``transaction.on_commit``. ``acks_late``
(also the project default) means a task whose worker dies is delivered again; every
task here leaves the same end state however often it runs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from celery import Task, shared_task

from knowledge import openai_sync, services

log = logging.getLogger(__name__)

# Retries of a failed OpenAI sync: 10 s, 20 s, 40 s, … capped at 10 minutes.
SYNC_MAX_RETRIES = 8


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with jitter, so that many stores do not retry in step."""
    base: float = min(600.0, 10.0 * 2**retries)
    return base + random.uniform(0, base / 4)


# Celery has no type information here (see pyproject's mypy overrides), hence the
# ignores on its decorator: the task functions themselves are fully typed.


@shared_task(acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def document_index(document_id: int) -> None:
    """Extract, chunk and index one document (its status records the outcome)."""
    services.document_index(document_id=document_id)


@shared_task(  # type: ignore[untyped-decorator]
    bind=True, acks_late=True, ignore_result=True, max_retries=SYNC_MAX_RETRIES
)
def vector_store_sync(self: Task, agent_id: int) -> None:
    """Bring one agent's OpenAI vector store in step with its documents."""
    eager = bool(self.request.is_eager)
    try:
        openai_sync.vector_store_sync(agent_id=agent_id)
    except openai_sync.SyncBusy as busy:
        if eager:
            # No worker to come back later; the running sync sees the request it
            # missed (the store's requested_at) and goes round once more.
            log.info("sync of agent %s skipped: %s", agent_id, busy)
            return
        raise self.retry(countdown=busy.retry_in + random.uniform(0, 2)) from busy
    except openai_sync.SyncFailed as failure:
        # Already recorded on the store, where staff see it.
        if failure.retryable and not eager:
            raise self.retry(
                exc=failure, countdown=backoff_seconds(self.request.retries)
            ) from failure
        log.warning("sync of agent %s failed: %s", agent_id, failure)


@shared_task(acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def vector_store_teardown(store_id: int) -> None:
    """Remove a vector store no agent needs any more (at OpenAI, then the row)."""
    try:
        openai_sync.vector_store_teardown(store_id=store_id)
    except (openai_sync.SyncBusy, openai_sync.SyncFailed) as exc:
        log.warning("removing vector store %s failed: %s", store_id, exc)


@shared_task(acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def conversations_reset(
    agent_ids: Sequence[int] | None = None,
    user_ids: Sequence[int] | None = None,
    channels: Sequence[str] | None = None,
) -> int:
    """Start fresh provider conversations on the next turn (by agents, users, channels;
    None: all)."""
    count = services.conversations_mark_for_reset(
        agent_ids=agent_ids, user_ids=user_ids, channels=channels
    )
    log.info("marked %d conversations for reset", count)
    return count
