"""Reads for conversations and turns."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from agents.models import Agent
from conversations.models import Conversation, Role, Turn, TurnLabel

# --- operator review -----------------------------------------------------------------------


def turn_list_for_review(*, conversation: Conversation) -> QuerySet[Turn]:
    """A conversation's turns in order, with what the review page shows of each, in one query."""
    return (
        Turn.objects.filter(conversation=conversation)
        .select_related("reviewed_by")
        .order_by("index")
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) of ``values``, interpolating linearly between the
    two nearest ranks (numpy's default method): the median of 100, 200, 300, 400 is 250,
    its 95th percentile 385."""
    if not values:
        raise ValueError("the percentile of no values is undefined")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0 to 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class DayLatency:
    """One day of an agent's replies: how many, and how long callers waited for them."""

    day: dt.date
    conversations: int
    replies: int  # assistant turns with a voice-to-voice time
    median_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class AgentDashboard:
    """An agent's conversations over a window of days, for operators."""

    agent: Agent
    first_day: dt.date
    last_day: dt.date
    days: list[DayLatency]  # every day of the window, oldest first, empty ones included
    conversation_count: int
    assistant_turns: int
    interrupted_turns: int
    median_ms: float | None  # over the whole window
    p95_ms: float | None
    label_counts: dict[str, int]  # every TurnLabel value, in the order of its choices

    @property
    def interruption_rate(self) -> float | None:
        """Interrupted assistant turns per assistant turn; None when there were none."""
        if not self.assistant_turns:
            return None
        return self.interrupted_turns / self.assistant_turns


def _local_day(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment).date()


def agent_review_dashboard(
    *, agent: Agent, days: int = 30, today: dt.date | None = None
) -> AgentDashboard:
    """Conversation count, voice-to-voice median and p95 per day, interruption rate and
    label counts of ``agent`` over the ``days`` days ending ``today`` (local dates).

    Percentiles are computed here rather than in the database (SQLite has none), so only
    the window's latency values are read, never whole rows.
    """
    last_day = today or timezone.localdate()
    first_day = last_day - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first_day, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time.min))

    started = Conversation.objects.filter(
        agent=agent, started_at__gte=start, started_at__lt=end
    ).values_list("started_at", flat=True)
    conversations_per_day = Counter(_local_day(moment) for moment in started)

    turns = Turn.objects.filter(
        conversation__agent=agent, created_at__gte=start, created_at__lt=end
    )
    replies = turns.filter(role=Role.ASSISTANT)
    counts = replies.aggregate(
        total=Count("pk"), interrupted=Count("pk", filter=Q(interrupted=True))
    )
    latencies: dict[dt.date, list[float]] = defaultdict(list)
    for created_at, ms in replies.filter(voice_to_voice_ms__isnull=False).values_list(
        "created_at", "voice_to_voice_ms"
    ):
        if ms is not None:  # filtered out above; the type does not know
            latencies[_local_day(created_at)].append(float(ms))
    labelled = dict(
        turns.exclude(label="")
        .values_list("label")
        .annotate(n=Count("pk"))
        .values_list("label", "n")
    )

    window = [first_day + dt.timedelta(days=n) for n in range(days)]
    everything = [ms for values in latencies.values() for ms in values]
    return AgentDashboard(
        agent=agent,
        first_day=first_day,
        last_day=last_day,
        days=[
            DayLatency(
                day=day,
                conversations=conversations_per_day[day],
                replies=len(latencies[day]),
                median_ms=percentile(latencies[day], 50) if latencies[day] else None,
                p95_ms=percentile(latencies[day], 95) if latencies[day] else None,
            )
            for day in window
        ],
        conversation_count=sum(conversations_per_day.values()),
        assistant_turns=counts["total"],
        interrupted_turns=counts["interrupted"],
        median_ms=percentile(everything, 50) if everything else None,
        p95_ms=percentile(everything, 95) if everything else None,
        label_counts={label: labelled.get(label, 0) for label in TurnLabel.values},
    )


# --- the HTTP API: conversations for operators ---------------------------------------------


@dataclass(frozen=True)
class ConversationFilters:
    """What the conversations list is narrowed by; None (and "" for search) means any."""

    agent_slug: str | None = None
    channel: str | None = None
    status: str | None = None
    started_after: dt.datetime | None = None  # inclusive
    started_before: dt.datetime | None = None  # exclusive
    interrupted: bool | None = None  # has (True) or has no (False) interrupted turn
    label: str | None = None  # has a turn with this review label
    search: str = ""  # in a turn's text or heard text, or in the external id


def conversation_list(*, filters: ConversationFilters) -> QuerySet[Conversation]:
    """Conversations matching ``filters``, newest first, each with its ``turn_count``.

    Conditions on turns are subqueries on the conversation's id, so they neither repeat a
    conversation nor change the count of its turns.
    """
    conversations = (
        Conversation.objects.select_related("agent", "prompt_version")
        .annotate(turn_count=Count("turns"))
        .order_by("-started_at", "pk")
    )
    if filters.agent_slug is not None:
        conversations = conversations.filter(agent__slug=filters.agent_slug)
    if filters.channel is not None:
        conversations = conversations.filter(channel=filters.channel)
    if filters.status is not None:
        conversations = conversations.filter(status=filters.status)
    if filters.started_after is not None:
        conversations = conversations.filter(started_at__gte=filters.started_after)
    if filters.started_before is not None:
        conversations = conversations.filter(started_at__lt=filters.started_before)
    if filters.interrupted is not None:
        interrupted = Turn.objects.filter(interrupted=True).values("conversation_id")
        conversations = (
            conversations.filter(pk__in=interrupted)
            if filters.interrupted
            else conversations.exclude(pk__in=interrupted)
        )
    if filters.label is not None:
        labelled = Turn.objects.filter(label=filters.label).values("conversation_id")
        conversations = conversations.filter(pk__in=labelled)
    if filters.search:
        said = Turn.objects.filter(
            Q(text__icontains=filters.search) | Q(heard_text__icontains=filters.search)
        ).values("conversation_id")
        conversations = conversations.filter(
            Q(pk__in=said) | Q(external_id__icontains=filters.search)
        )
    return conversations


def conversation_get(*, conversation_id: str) -> Conversation | None:
    return (
        Conversation.objects.select_related("agent", "prompt_version")
        .filter(pk=conversation_id)
        .first()
    )


def turn_get(*, conversation_id: str, index: int) -> Turn | None:
    return (
        Turn.objects.select_related("reviewed_by")
        .filter(conversation_id=conversation_id, index=index)
        .first()
    )
