"""The Django side of a voice session: where its finished turns are stored."""

from __future__ import annotations

from django.core.files.base import ContentFile

from agents.speech.audio import float_to_pcm16_bytes, pcm16_wav
from conversations.realtime.session import Retrieved, SpokenReply, TurnMetrics, Utterance
from conversations.stores import (
    Exchange,
    LiveConversation,
    UserTurn,
    prepare_turn,
    turn_cut_in_db,
    write_exchange,
)
from voiceapp.metrics import voice_turn

USER_AUDIO_RATE = 16_000


def wav_file(pcm: bytes, sample_rate: int, name: str) -> ContentFile[bytes]:
    """A mono 16-bit WAV file of ``pcm`` (s16le), ready for a FileField."""
    return ContentFile(pcm16_wav(pcm, sample_rate), name=name)


async def retrieve_for(live: LiveConversation, text: str) -> Retrieved:
    """The agent's knowledge for ``text`` (nothing for ELIZA agents, at no cost)."""
    found = await prepare_turn(live, text)
    return Retrieved(passages=found.passages, refs=found.refs)


class VoiceTurnStore:
    """Implements ``VoiceStore`` for one conversation through the group-commit writer."""

    def __init__(self, live: LiveConversation) -> None:
        self.live = live

    async def record(
        self, *, user: Utterance | None, reply: SpokenReply, metrics: TurnMetrics
    ) -> int | None:
        """Store the exchange; returns the reply's turn index (the reference ``cut`` takes)."""
        # Observed whether or not the write succeeds: the caller heard this latency.
        voice_turn(
            stt_ms=metrics.stt_ms,
            llm_first_token_ms=metrics.llm_first_token_ms,
            tts_first_audio_ms=metrics.tts_first_audio_ms,
            voice_to_voice_ms=metrics.voice_to_voice_ms,
        )
        user_turn = (
            UserTurn(text=user.text, vad_end_at=metrics.vad_end_at, stt_ms=metrics.stt_ms)
            if user is not None
            else None
        )
        user_audio = None
        if user is not None and user.audio is not None:
            pcm = float_to_pcm16_bytes(user.audio)
            user_audio = wav_file(pcm, USER_AUDIO_RATE, "user.wav")
        reply_audio = (
            wav_file(bytes(reply.audio), reply.sample_rate, "reply.wav") if reply.audio else None
        )
        exchange = Exchange(
            live=self.live,
            user=user_turn,
            answer=reply.answer,
            timings={
                "tts_first_audio_ms": metrics.tts_first_audio_ms,
                "voice_to_voice_ms": metrics.voice_to_voice_ms,
            },
            user_audio=user_audio,
            reply_audio=reply_audio,
            knowledge_refs=reply.knowledge_refs,
        )
        await write_exchange(exchange)
        return exchange.reply_index

    async def cut(self, stored: object, *, heard_text: str) -> None:
        assert isinstance(stored, int)
        await turn_cut_in_db(
            conversation_id=self.live.conversation_id, index=stored, heard_text=heard_text
        )
