"""The database side of a live conversation, for async callers (sockets, streaming views).

Each function does its ORM work in synchronous calls run off the event loop, so a socket
never blocks other sockets while it reads or writes; replies finishing together are
written together (see :class:`ExchangeWriter`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.base import ContentFile
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Field, Max
from django.utils import timezone

from agents.llm import ChatMessage, ConversationContext, LLMConfig, Passage
from agents.models import Agent, LLMProvider
from agents.selectors import agent_llm_config
from conversations.events import MONITOR_GROUP
from conversations.models import (
    WEB_CHANNELS,
    Channel,
    Conversation,
    ConversationStatus,
    EndReason,
    Role,
    Turn,
    TurnStatus,
)
from conversations.replies import Answer
from conversations.services import (
    conversation_close,
    conversation_get_or_start,
    conversation_reopen,
    conversation_start,
    turn_cut,
    turn_event,
)
from knowledge.selectors import knowledge_search, vector_store_id_for
from voiceapp import metrics

log = logging.getLogger(__name__)

#: The database cannot be reached (down, restarting, connection lost): a channel tells its
#: client ``unavailable`` and the client may try again; nothing of the turn is stored.
DATABASE_DOWN = (OperationalError, InterfaceError)


@dataclass
class LiveConversation:
    """What a live channel needs of a stored conversation to answer in it."""

    conversation_id: str
    session_id: str
    system_prompt: str
    llm: LLMConfig
    context: ConversationContext
    agent_id: int | None = None
    channel: str = ""  # a Channel value; labels this conversation's metrics
    # Turns stored in it, as far as this socket knows (None: not counted). Turns stored
    # from elsewhere (a call on the same page) make the stored count differ.
    turns: int | None = None


@dataclass
class UserTurn:
    text: str
    prosody: dict[str, float] = field(default_factory=dict)
    speech_time: dict[str, int] | None = None
    vad_end_at: dt.datetime | None = None
    stt_ms: int | None = None


def _llm_config(agent: Agent) -> LLMConfig:
    """The agent's provider settings, with its OpenAI vector store for ``file_search``."""
    return agent_llm_config(agent=agent, vector_store_id=vector_store_id_for(agent=agent))


_llm_config_in_db = database_sync_to_async(_llm_config)


async def llm_config(agent: Agent) -> LLMConfig:
    """:func:`_llm_config` for async callers; only OpenAI agents need the database."""
    if agent.llm_provider != LLMProvider.OPENAI:
        return agent_llm_config(agent=agent)
    config: LLMConfig = await _llm_config_in_db(agent)
    return config


def _context(conversation: Conversation) -> ConversationContext:
    # A requested reset starts the model afresh: no OpenAI conversation, no ELIZA memory.
    # The next stored exchange saves the fresh state and clears the request.
    if conversation.reset_requested:
        return ConversationContext(engine_state={}, provider_conversation_id="")
    return ConversationContext(
        engine_state=dict(conversation.engine_state),
        provider_conversation_id=conversation.provider_conversation_id,
    )


def _live(conversation: Conversation, agent: Agent, channel: str = "") -> LiveConversation:
    """``channel``: the one serving it now (a call resumes a page's typed conversation)."""
    return LiveConversation(
        conversation_id=str(conversation.pk),
        session_id=conversation.external_id or str(conversation.pk),
        system_prompt=conversation.prompt_version.text,
        llm=_llm_config(agent),
        context=_context(conversation),
        agent_id=agent.pk,
        channel=channel or conversation.channel,
    )


def _open(
    agent: Agent, channel: Channel, session_id: str | None, user: User | AnonymousUser | None
) -> LiveConversation:
    if session_id:
        conversation, _ = conversation_get_or_start(
            agent=agent, channel=channel, external_id=session_id, user=user
        )
    else:
        conversation = conversation_start(agent=agent, channel=channel, user=user)
    conversation = Conversation.objects.select_related("prompt_version").get(pk=conversation.pk)
    live = _live(conversation, agent)
    if not session_id:
        live.turns = 0
    return live


open_conversation = database_sync_to_async(_open)


def stored_history(conversation_id: str, *, last: int | None = None) -> list[ChatMessage]:
    """What the model should see of the stored turns: what was said, and of a reply cut
    short what was heard. ``last``: only that many of the latest messages."""
    rows = (
        Turn.objects.filter(conversation_id=conversation_id, role__in=[Role.USER, Role.ASSISTANT])
        .order_by("-index")
        .values_list("role", "text", "heard_text")
    )
    latest = list(rows[:last] if last is not None else rows)
    return [
        ChatMessage(role="user" if role == Role.USER else "assistant", content=heard or text)
        for role, text, heard in reversed(latest)
        if heard or text
    ]


def transcript_for_page(conversation_id: str) -> list[dict[str, str]]:
    """The stored turns as the page shows them after a reload: typed and spoken alike."""
    return [
        {"role": role, "text": heard or text, "channel": channel}
        for role, text, heard, channel in Turn.objects.filter(conversation_id=conversation_id)
        .order_by("index")
        .values_list("role", "text", "heard_text", "channel")
        if role in (Role.USER, Role.ASSISTANT) and (heard or text)
    ]


def _resume(
    agent: Agent, channel: Channel, conversation_id: str, user: User | AnonymousUser | None
) -> tuple[LiveConversation, list[ChatMessage]] | None:
    """Reopen a conversation after a reconnect, with the history the model should see.

    Only a conversation of this agent qualifies, on this channel (on the web page, typed
    and spoken turns share one conversation: either web channel); one that belongs to a
    user only to that user. Anything else is None (start a new one).
    """
    channels = WEB_CHANNELS if channel in WEB_CHANNELS else (channel,)
    try:
        conversation = Conversation.objects.select_related("prompt_version").get(
            pk=uuid.UUID(conversation_id),
            agent=agent,
            channel__in=channels,
            status__in=(ConversationStatus.ACTIVE, ConversationStatus.ENDED),
        )
    except (ValueError, Conversation.DoesNotExist):
        return None
    if conversation.user_id is not None and (
        not isinstance(user, User) or user.pk != conversation.user_id
    ):
        return None
    conversation_reopen(conversation=conversation)
    live = _live(conversation, agent, channel)
    live.turns = conversation.turns.count()
    return live, stored_history(str(conversation.pk))


resume_conversation = database_sync_to_async(_resume)


def _catch_up(live: LiveConversation) -> list[ChatMessage] | None:
    """Before a typed turn on the web page: a call on the same page may have added turns
    since this socket loaded the conversation (moving the model's state on), or ended
    it. Reopens an ended conversation; when turns were added elsewhere, takes the stored
    model state and returns the stored history (None when nothing changed)."""
    conversation = Conversation.objects.get(pk=live.conversation_id)
    conversation_reopen(conversation=conversation)
    stored = conversation.turns.count()
    if stored == live.turns:
        return None
    live.turns = stored
    live.context = _context(conversation)
    return stored_history(str(conversation.pk))


catch_up = database_sync_to_async(_catch_up)


async def close_conversation(live: LiveConversation, reason: EndReason) -> None:
    """The socket serving ``live`` has closed: its conversation ends (until resumed). A
    database that cannot be reached is logged: the socket is gone either way."""
    try:
        await database_sync_to_async(conversation_close)(
            conversation_id=live.conversation_id, reason=reason
        )
    except DATABASE_DOWN as exc:
        log.warning("conversation %s not marked ended: %s", live.conversation_id, exc)


@dataclass
class TurnKnowledge:
    """The passages retrieved for one user turn, and the references the turn records."""

    passages: list[Passage] = field(default_factory=list)
    refs: list[dict[str, Any]] = field(default_factory=list)


def _prepare_turn(live: LiveConversation, text: str) -> TurnKnowledge:
    reset = Conversation.objects.filter(pk=live.conversation_id, reset_requested=True).exists()
    if reset:
        live.context.provider_conversation_id = ""
        live.context.engine_state = {}
    assert live.agent_id is not None
    found = knowledge_search(agent_id=live.agent_id, question=text)
    return TurnKnowledge(
        passages=[chunk.passage() for chunk in found], refs=[chunk.as_ref() for chunk in found]
    )


_prepare_turn_in_db = database_sync_to_async(_prepare_turn)


async def prepare_turn(live: LiveConversation, text: str) -> TurnKnowledge:
    """Before answering ``text``: apply a reset requested since the conversation was
    opened (the turn starts a fresh provider conversation), and retrieve the agent's
    passages for it. ELIZA agents use neither, and cost no database call here."""
    if live.agent_id is None or live.llm.provider == LLMProvider.ELIZA:
        return TurnKnowledge()
    knowledge: TurnKnowledge = await _prepare_turn_in_db(live, text)
    return knowledge


@dataclass
class Exchange:
    """One answered message, waiting to be stored: the user's turn and the reply."""

    live: LiveConversation
    user: UserTurn | None  # None for a turn the agent starts (a spoken greeting)
    answer: Answer
    knowledge_refs: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, int | None] = field(default_factory=dict)  # the reply's, by field
    user_audio: ContentFile[bytes] | None = None
    reply_audio: ContentFile[bytes] | None = None
    reply_index: int | None = None  # set once stored: the reply's turn index


def _write_exchanges(exchanges: list[Exchange]) -> list[Turn]:
    """Store exchanges, whole, in one transaction; returns the turns written, in order.

    Each conversation's rows are locked while its next indexes are chosen, so turns
    written by several processes never collide; all the turns go in one INSERT.
    """
    ids = sorted({exchange.live.conversation_id for exchange in exchanges})
    with transaction.atomic():
        # Sorted ids: two processes lock the same rows in the same order, never deadlock.
        locked = list(
            Conversation.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        last = dict(
            Turn.objects.filter(conversation_id__in=locked)
            .values_list("conversation_id")
            .annotate(last=Max("index"))
            .values_list("conversation_id", "last")
        )
        next_index = {str(pk): value + 1 for pk, value in last.items()}
        turns: list[Turn] = []
        states: dict[str, LiveConversation] = {}
        for exchange in exchanges:
            conversation_id = exchange.live.conversation_id
            index = next_index.get(conversation_id, 0)
            states[conversation_id] = exchange.live
            user, answer = exchange.user, exchange.answer
            if user is not None:
                turn = Turn(
                    conversation_id=conversation_id,
                    index=index,
                    role=Role.USER,
                    channel=exchange.live.channel,
                    text=user.text,
                    heard_text=user.text,
                    prosody=user.prosody,
                    speech_time=user.speech_time,
                    vad_end_at=user.vad_end_at,
                    stt_ms=user.stt_ms,
                )
                _attach_audio(turn, exchange.user_audio)
                turns.append(turn)
                index += 1
            turn = Turn(
                conversation_id=conversation_id,
                index=index,
                role=Role.ASSISTANT,
                channel=exchange.live.channel,
                text=answer.text,
                heard_text=answer.heard_text if answer.cancelled else answer.text,
                interrupted=answer.cancelled,
                status=TurnStatus.FAILED if answer.error else TurnStatus.COMPLETE,
                error=answer.error,
                llm_first_token_ms=answer.first_token_ms,
                knowledge_refs=exchange.knowledge_refs,
                **exchange.timings,
            )
            _attach_audio(turn, exchange.reply_audio)
            turns.append(turn)
            exchange.reply_index = index
            if exchange.live.turns is not None:
                exchange.live.turns += 1 if user is None else 2
            next_index[conversation_id] = index + 1
        Turn.objects.bulk_create(turns)
        _save_states(states)
    return turns


def _attach_audio(turn: Turn, audio: ContentFile[bytes] | None) -> None:
    # The file is written before the row; a failed transaction leaves an unreferenced
    # file behind at worst, never a row pointing at nothing.
    if audio is not None:
        turn.audio.save(audio.name or "turn.wav", audio, save=False)


_STATE_FIELDS = ("engine_state", "provider_conversation_id", "reset_requested", "updated_at")


def _save_states(states: dict[str, LiveConversation]) -> None:
    """Write each conversation's engine state with one prepared UPDATE, executed many times.

    ``bulk_update`` builds one CASE expression per field through the ORM, which costs
    more than the write itself for the few columns changed here.
    """
    meta = Conversation._meta
    connection = transaction.get_connection()
    fields = [cast("Field[Any, Any]", meta.get_field(name)) for name in _STATE_FIELDS]
    pk = meta.pk
    assert pk is not None
    now = timezone.now()
    rows = []
    for conversation_id, live in states.items():
        values = (live.context.engine_state, live.context.provider_conversation_id, False, now)
        row = [f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)]
        rows.append([*row, pk.get_db_prep_value(uuid.UUID(conversation_id), connection)])
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(pk.column)} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_write = database_sync_to_async(_write_exchanges)
turn_cut_in_db = database_sync_to_async(turn_cut)


class ExchangeWriter:
    """Group commit for one event loop: exchanges that finish together are stored together.

    A socket awaits its own exchange, so a reply's end is only sent once its turns are
    committed; but while one transaction is being written, every exchange that finishes
    meanwhile waits for the next one, and is written in a single INSERT with the others.
    Under load this turns hundreds of small transactions into a few large ones. The
    flush task lives only while there is something to write.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Exchange, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def write(self, exchange: Exchange) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((exchange, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a cancelled socket must not cancel a write that others share.
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                turns = await _write([exchange for exchange, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    metrics.error("store.turn_write")
                    batch[0][1].set_exception(exc)
                    continue
                # One bad exchange must not fail the others: store them one by one.
                for exchange, future in batch:
                    try:
                        turns = await _write([exchange])
                    except Exception as single:
                        metrics.error("store.turn_write")
                        future.set_exception(single)
                    else:
                        _count_recorded([exchange])
                        future.set_result(None)
                        self._publish(turns)
                continue
            _count_recorded([exchange for exchange, _ in batch])
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self._publish(turns)

    def _publish(self, turns: list[Turn]) -> None:
        """Tell monitors about ``turns`` beside the write path, never in its way.

        The turns are stored; telling live monitors is best effort. A slow or absent Redis
        must not hold up the next replies' writes, so publishing runs in its own task,
        bounded in time; the writer keeps a reference until it is done.
        """
        task = asyncio.create_task(_publish_quietly(turns))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)


def _count_recorded(exchanges: list[Exchange]) -> None:
    for exchange in exchanges:
        answer = exchange.answer
        status = "interrupted" if answer.cancelled else "failed" if answer.error else "complete"
        metrics.turn_recorded(
            channel=exchange.live.channel,
            status=status,
            first_token_ms=answer.first_token_ms,
            fallback=answer.used_fallback,
        )


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExchangeWriter] = (
    weakref.WeakKeyDictionary()
)


async def record_exchange(
    live: LiveConversation,
    user: UserTurn | None,
    answer: Answer,
    knowledge_refs: list[dict[str, Any]] | None = None,
) -> None:
    """Store the user's turn and the reply, with the engine state, all or nothing."""
    await write_exchange(Exchange(live, user, answer, knowledge_refs or []))


async def write_exchange(exchange: Exchange) -> None:
    """Hand ``exchange`` to this event loop's group-commit writer; return once committed."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = ExchangeWriter()
    await writer.write(exchange)


PUBLISH_TIMEOUT_S = 2.0


async def _publish_quietly(turns: list[Turn]) -> None:
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await publish_turns(turns)
    except Exception:
        # Any failure of the channel layer (Redis down, restarting, slow) only costs live
        # monitors an update; it is logged and counted, and the turns are stored.
        metrics.error("monitor.publish")
        log.warning("telling monitors about %d stored turns failed", len(turns), exc_info=True)


async def publish_turns(turns: list[Turn]) -> None:
    """Tell operators' monitor sockets (in any process) about newly stored turns."""
    layer = get_channel_layer()
    if layer is None:
        return
    for turn in turns:
        await layer.group_send(MONITOR_GROUP, {"type": "monitor.event", "event": turn_event(turn)})
