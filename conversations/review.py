"""What the admin's review pages show: turns as operators read them, and charts.

Everything here is presentation, computed from stored turns and selector results; the
templates under ``templates/admin/conversations/`` only lay it out. Charts are plain SVG
drawn on the server, so the pages need no script and no third-party asset.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import forms

from conversations.models import Role, Turn, TurnLabel
from conversations.selectors import AgentDashboard

# --- what was said and what was heard ------------------------------------------------------


@dataclass(frozen=True)
class Said:
    """A turn's text split where the listener stopped hearing it.

    ``heard`` + ``unheard`` is the generated text. When the stored heard text is not a
    prefix of the generated text (word for word, ignoring spacing), ``matches`` is False
    and the page shows both texts whole instead of a cut.
    """

    heard: str
    unheard: str
    matches: bool = True


def split_heard(text: str, heard_text: str) -> Said:
    """Where ``heard_text`` ends in ``text``.

    The heard text is rebuilt from clauses joined by single spaces, so only the
    non-space characters are compared.
    """
    wanted = "".join(heard_text.split())
    if not wanted:
        return Said(heard="", unheard=text.strip())
    matched = 0
    for position, char in enumerate(text):
        if char.isspace():
            continue
        if char != wanted[matched]:
            return Said(heard=heard_text, unheard="", matches=False)
        matched += 1
        if matched == len(wanted):
            return Said(heard=text[: position + 1].strip(), unheard=text[position + 1 :].strip())
    return Said(heard=heard_text, unheard="", matches=False)


# --- emotions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emotion:
    name: str
    score: float

    @property
    def percent(self) -> float:
        """The score as a bar length, 0 to 100."""
        return round(min(max(self.score, 0.0), 1.0) * 100, 1)


def _emotion_name(key: str) -> str:
    # Hume names them "Calmness", "Empathic Pain"; other sources use snake_case.
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def top_emotions(prosody: Mapping[str, Any], n: int = 3) -> list[Emotion]:
    """The ``n`` highest emotion scores, highest first (ties by name)."""
    scores = [
        Emotion(_emotion_name(name), float(score))
        for name, score in prosody.items()
        if isinstance(score, int | float) and not isinstance(score, bool)
    ]
    return sorted(scores, key=lambda e: (-e.score, e.name))[:n]


# --- knowledge used ------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeRef:
    """One retrieved chunk as ``RetrievedChunk.as_ref()`` stored it on the turn."""

    ref: str
    document: str
    page: int | None
    section: str
    score: float | None
    snippet: str

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> KnowledgeRef:
        page, score = stored.get("page"), stored.get("score")
        return cls(
            ref=str(stored.get("ref") or ""),
            document=str(stored.get("document") or stored.get("title") or "Untitled document"),
            page=page if isinstance(page, int) and not isinstance(page, bool) else None,
            section=str(stored.get("section") or ""),
            score=float(score) if isinstance(score, int | float) else None,
            # Refs store no text today; show a snippet when a source records one.
            snippet=str(stored.get("snippet") or stored.get("text") or ""),
        )


def knowledge_refs(stored: object) -> list[KnowledgeRef]:
    if not isinstance(stored, list):
        return []
    return [KnowledgeRef.from_stored(item) for item in stored if isinstance(item, Mapping)]


# --- the latency waterfall of one exchange -------------------------------------------------

_LABEL_W = 118
_BAR_W = 220
_VALUE_W = 74
_ROW_H = 20
_TOP = 16  # room for the axis caption


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    ms: int | None
    x: float
    width: float
    y: float

    @property
    def missing(self) -> bool:
        return self.ms is None

    @property
    def text(self) -> str:
        return "missing" if self.ms is None else f"{self.ms} ms"

    @property
    def text_y(self) -> float:
        return self.y + 13

    @property
    def bar_y(self) -> float:
        return self.y + 3


@dataclass(frozen=True)
class Waterfall:
    """Where one reply's wait went, from the end of speech: the end-of-turn wait (the
    silence the agent waits for), STT, LLM first token, TTS first audio, one bar after the
    other, and the voice-to-voice total measured end to end.

    Stages are durations (see ``conversations.realtime.session``); the total also holds
    what no stage measures (retrieval, waiting for the first clause), so it need not be
    their sum. A missing stage has no bar and the next one starts where the known ones end.
    A greeting answers nobody: its chart is one bar, the time to its first audio.
    """

    stages: list[Stage]
    vad_end_at: dt.datetime | None
    scale_ms: int
    total_x: float | None
    origin: str = "end of speech"
    width: int = _LABEL_W + _BAR_W + _VALUE_W
    label_x: int = _LABEL_W - 6
    bar_left: int = _LABEL_W
    bar_right: int = _LABEL_W + _BAR_W
    value_x: int = _LABEL_W + _BAR_W + 6

    @property
    def height(self) -> int:
        return _TOP + _ROW_H * len(self.stages) + 4

    @property
    def axis_bottom(self) -> int:
        return self.height - 2

    @property
    def description(self) -> str:
        parts = ", ".join(f"{stage.label} {stage.text}" for stage in self.stages)
        return f"Latency waterfall: {parts}"


STAGES = (
    ("wait", "End-of-turn wait"),
    ("stt", "STT"),
    ("llm", "LLM first token"),
    ("tts", "TTS first audio"),
)


def waterfall(
    *, user: Turn | None, reply: Turn, end_of_turn_ms: int | None = None
) -> Waterfall | None:
    """The waterfall of ``reply`` answering ``user`` (the user's turn holds the STT time
    and the end of speech; the reply holds the rest). ``end_of_turn_ms`` is the silence the
    agent waited for before the turn ended (voice calls only; None leaves the stage out).
    None when nothing was timed."""
    if user is None:
        return _greeting(reply)
    values = {
        "wait": end_of_turn_ms,
        "stt": user.stt_ms,
        "llm": reply.llm_first_token_ms,
        "tts": reply.tts_first_audio_ms,
    }
    total = reply.voice_to_voice_ms
    if total is None and all(values[key] is None for key in ("stt", "llm", "tts")):
        return None
    stages_shown = [stage for stage in STAGES if stage[0] != "wait" or end_of_turn_ms is not None]
    known_sum = sum(value for value in values.values() if value is not None)
    scale_ms = max(total or 0, known_sum, 1)
    px_per_ms = _BAR_W / scale_ms

    stages: list[Stage] = []
    offset = 0
    for row, (key, label) in enumerate(stages_shown):
        ms = values[key]
        stages.append(
            Stage(
                key=key,
                label=label,
                ms=ms,
                x=round(_LABEL_W + offset * px_per_ms, 1),
                width=round(_bar_width(ms, px_per_ms), 1),
                y=_TOP + row * _ROW_H,
            )
        )
        offset += ms or 0
    stages.append(
        Stage(
            key="total",
            label="Voice-to-voice",
            ms=total,
            x=float(_LABEL_W),
            width=round(_bar_width(total, px_per_ms), 1),
            y=_TOP + len(stages_shown) * _ROW_H,
        )
    )
    return Waterfall(
        stages=stages,
        vad_end_at=user.vad_end_at,
        scale_ms=scale_ms,
        total_x=round(_LABEL_W + total * px_per_ms, 1) if total is not None else None,
    )


def _greeting(reply: Turn) -> Waterfall | None:
    ms = reply.tts_first_audio_ms
    if ms is None:
        return None
    scale_ms = max(ms, 1)
    bar = Stage(
        key="greeting",
        label="First audio",
        ms=ms,
        x=float(_LABEL_W),
        width=round(_bar_width(ms, _BAR_W / scale_ms), 1),
        y=_TOP,
    )
    return Waterfall(
        stages=[bar], vad_end_at=None, scale_ms=scale_ms, total_x=None, origin="call start"
    )


def _bar_width(ms: int | None, px_per_ms: float) -> float:
    if not ms:
        return 0.0
    return max(ms * px_per_ms, 1.5)  # a 3 ms stage is still visible


# --- turns as the review page shows them ---------------------------------------------------


@dataclass(frozen=True)
class TurnView:
    turn: Turn
    said: Said
    emotions: list[Emotion]
    refs: list[KnowledgeRef]
    waterfall: Waterfall | None
    answers: Turn | None = None  # the user turn a reply answers

    @property
    def anchor(self) -> str:
        return f"turn-{self.turn.index}"


def transcript(turns: Sequence[Turn], *, end_of_turn_ms: int | None = None) -> list[TurnView]:
    """``turns`` (in order) as the review page shows them: each reply is paired with the
    user turn just before it, whose STT time and end of speech its waterfall starts with
    (after ``end_of_turn_ms``, the silence a voice call waits for)."""
    views = []
    for position, turn in enumerate(turns):
        before = turns[position - 1] if position else None
        user = before if before is not None and before.role == Role.USER else None
        is_reply = turn.role == Role.ASSISTANT
        views.append(
            TurnView(
                turn=turn,
                said=split_heard(turn.text, turn.heard_text)
                if turn.interrupted
                else Said(heard=turn.text, unheard="", matches=turn.heard_text == turn.text),
                emotions=top_emotions(turn.prosody if isinstance(turn.prosody, dict) else {}),
                refs=knowledge_refs(turn.knowledge_refs),
                waterfall=waterfall(user=user, reply=turn, end_of_turn_ms=end_of_turn_ms)
                if is_reply
                else None,
                answers=user if is_reply else None,
            )
        )
    return views


# --- labelling -----------------------------------------------------------------------------


LABEL_CHOICES = [("", "— no label —"), *TurnLabel.choices]


class TurnLabelForm(forms.Form):
    """An operator's review of one turn, as posted from the conversation page."""

    label = forms.ChoiceField(choices=LABEL_CHOICES, required=False)
    note = forms.CharField(required=False, max_length=2000, strip=True)


# --- audio with byte ranges ----------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ValueError):
    pass


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks of a ``size``-byte file.

    None means "send the whole file" (no header, or a form this server does not serve
    in part, such as several ranges: RFC 9110 lets a server ignore Range).
    """
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return start, end


# --- the dashboard's charts ----------------------------------------------------------------

_CHART_W = 640
_CHART_H = 200
_CHART_LEFT = 52
_CHART_RIGHT = 8
_CHART_TOP = 12
_CHART_BOTTOM = 24


@dataclass(frozen=True)
class DayBar:
    day: dt.date
    x: float
    width: float
    median_y: float | None
    median_h: float
    p95_y: float | None
    title: str
    conversations: int
    count_y: float
    count_h: float
    label: str  # the date under the axis, on a few days only

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True)
class Tick:
    y: float
    text: str

    @property
    def text_y(self) -> float:
        return self.y + 4


@dataclass(frozen=True)
class LabelBar:
    value: str
    name: str
    count: int
    percent: float  # of all labelled turns


@dataclass(frozen=True)
class DashboardCharts:
    width: int
    height: int
    left: int
    right: int
    bottom: int
    top: int
    bars: list[DayBar]
    ticks: list[Tick]
    count_ticks: list[Tick]
    p95_points: str  # an SVG polyline's points, days without replies left out
    description: str
    count_description: str
    interruption: str  # the rate as a percentage, "—" without replies
    labels: list[LabelBar] = field(default_factory=list)

    @property
    def tick_x(self) -> int:
        return self.left - 6

    @property
    def date_y(self) -> int:
        return self.bottom + 16


def _nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at least ``value`` (an axis maximum)."""
    if value <= 0:
        return 1
    power = 1
    while True:
        for step in (1, 2, 5):
            if step * power >= value:
                return step * power
        power *= 10


def _date_label(n: int, days: int, day: dt.date) -> str:
    """Dates under the axis weekly from the first day, and on the last; none that would
    crowd the last one."""
    if n == days - 1 or (n % 7 == 0 and n < days - 4):
        return f"{day:%b %-d}"
    return ""


def _ms(value: float | None) -> str:
    # Half up, as the templates' floatformat rounds, so a chart's title and the table agree.
    if value is None:
        return "—"
    return f"{Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)} ms"


def dashboard_charts(dashboard: AgentDashboard) -> DashboardCharts:
    """Daily median (bars) and p95 (line) voice-to-voice latency, and conversations per
    day, as geometry for the dashboard's SVG charts."""
    days = dashboard.days
    plot_w = _CHART_W - _CHART_LEFT - _CHART_RIGHT
    plot_h = _CHART_H - _CHART_TOP - _CHART_BOTTOM
    baseline = _CHART_TOP + plot_h
    slot = plot_w / max(len(days), 1)
    top_ms = _nice_ceiling(max((d.p95_ms or 0 for d in days), default=0))
    top_count = _nice_ceiling(max((d.conversations for d in days), default=0))

    def y_of(value: float, top: int) -> float:
        return round(baseline - value / top * plot_h, 1)

    bars = []
    points = []
    for n, day in enumerate(days):
        x = _CHART_LEFT + n * slot
        median_y = y_of(day.median_ms, top_ms) if day.median_ms is not None else None
        p95_y = y_of(day.p95_ms, top_ms) if day.p95_ms is not None else None
        if p95_y is not None:
            points.append(f"{round(x + slot / 2, 1)},{p95_y}")
        count_y = y_of(day.conversations, top_count)
        bars.append(
            DayBar(
                day=day.day,
                x=round(x + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                median_y=median_y,
                median_h=round(baseline - median_y, 1) if median_y is not None else 0,
                p95_y=p95_y,
                title=(
                    f"{day.day:%Y-%m-%d}: median {_ms(day.median_ms)}, p95 {_ms(day.p95_ms)}, "
                    f"{day.replies} replies, {day.conversations} conversations"
                ),
                conversations=day.conversations,
                count_y=count_y,
                count_h=round(baseline - count_y, 1),
                label=_date_label(n, len(days), day.day),
            )
        )
    timed = [d for d in days if d.median_ms is not None]
    description = (
        f"Voice-to-voice latency per day, {dashboard.first_day:%Y-%m-%d} to "
        f"{dashboard.last_day:%Y-%m-%d}: bars are the median, the line the 95th percentile. "
        + (
            "; ".join(
                f"{d.day:%b %-d} median {_ms(d.median_ms)} p95 {_ms(d.p95_ms)}" for d in timed
            )
            if timed
            else "No timed replies."
        )
    )
    total = sum(dashboard.label_counts.values())
    return DashboardCharts(
        width=_CHART_W,
        height=_CHART_H,
        left=_CHART_LEFT,
        right=_CHART_W - _CHART_RIGHT,
        bottom=baseline,
        top=_CHART_TOP,
        bars=bars,
        ticks=[Tick(y_of(top_ms * k / 4, top_ms), f"{round(top_ms * k / 4)} ms") for k in range(5)],
        count_ticks=[
            Tick(y_of(count, top_count), str(count))
            for count in sorted({0, top_count // 2 if top_count % 2 == 0 else 0, top_count})
        ],
        p95_points=" ".join(points),
        interruption="—"
        if dashboard.interruption_rate is None
        else f"{dashboard.interruption_rate * 100:.1f} %",
        description=description,
        count_description=(
            f"Conversations per day: {dashboard.conversation_count} in "
            f"{len(days)} days, at most {max((d.conversations for d in days), default=0)} a day."
        ),
        labels=[
            LabelBar(
                value=value,
                name=str(name),
                count=dashboard.label_counts[value],
                percent=round(100 * dashboard.label_counts[value] / total, 1) if total else 0.0,
            )
            for value, name in TurnLabel.choices
        ],
    )
