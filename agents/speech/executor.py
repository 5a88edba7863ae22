"""A bounded thread pool for CPU inference, kept off the event-loop thread.

CTranslate2 (faster-whisper) and onnxruntime (Piper, Silero) release the GIL while they
compute, so plain threads run in parallel. On the project's 2-core machines the measured
optimum is two concurrent calls of one intra-op thread each; more concurrency only adds
latency. So the pool is small and its queue is bounded: when it is full a caller gets
:class:`Overloaded` at once (visible back-pressure it can report or retry) instead of every
session's latency growing without limit.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .base import SpeechError, SpeechErrorKind

P = ParamSpec("P")
T = TypeVar("T")


class Overloaded(SpeechError):
    """The pool's queue is full; the job was not accepted."""

    def __init__(self, pool_name: str, max_queue: int) -> None:
        super().__init__(
            f"inference pool {pool_name!r} is overloaded: {max_queue} jobs are already waiting",
            kind=SpeechErrorKind.OVERLOADED,
            retryable=True,
        )
        self.pool_name = pool_name


class InferencePool:
    """Runs blocking inference calls on a few worker threads, with a bounded wait queue.

    ``max_workers`` jobs run at once; up to ``max_queue`` more wait for a worker. A job
    submitted beyond that raises :class:`Overloaded` immediately. ``queue_depth`` (waiting)
    and ``in_flight`` (running) are exact at any moment and cheap to read for metrics.
    """

    def __init__(self, max_workers: int, max_queue: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if max_queue < 0:
            raise ValueError(f"max_queue must not be negative, not {max_queue}")
        self.name = name
        self.max_workers = max_workers
        self.max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix=f"{name}-worker")
        self._lock = threading.Lock()
        self._admitted = 0  # accepted and not yet finished: waiting + running
        self._running = 0
        self._rejected = 0
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Jobs accepted but not yet started."""
        with self._lock:
            return self._admitted - self._running

    @property
    def in_flight(self) -> int:
        """Jobs running on a worker now."""
        with self._lock:
            return self._running

    @property
    def rejected(self) -> int:
        """Jobs refused with :class:`Overloaded` since the pool was made."""
        with self._lock:
            return self._rejected

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)`` and return a future for its result.

        Must be called from a running event loop. Raises :class:`Overloaded` at once when the
        queue is full. Cancelling the returned future before the job starts removes it from
        the queue; a job that has started runs to its end (threads cannot be interrupted).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise SpeechError(
                    f"inference pool {self.name!r} is shut down",
                    kind=SpeechErrorKind.UNAVAILABLE,
                )
            if self._admitted >= self.max_workers + self.max_queue:
                self._rejected += 1
                raise Overloaded(self.name, self.max_queue)
            self._admitted += 1
        job: Future[T] = self._executor.submit(self._call, functools.partial(fn, *args, **kwargs))
        job.add_done_callback(self._forget_if_cancelled)
        return asyncio.wrap_future(job, loop=loop)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker thread and return its result."""
        return await self.submit(fn, *args, **kwargs)

    def shutdown(self, *, wait: bool = True) -> None:
        """Refuse new jobs, drop waiting ones and (optionally) wait for running ones."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def _call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn()
        finally:
            # Both counters drop together so queue_depth never reads a finished job as waiting.
            with self._lock:
                self._running -= 1
                self._admitted -= 1

    def _forget_if_cancelled(self, job: Future[T]) -> None:
        # A job cancelled while waiting never reaches _call, so it is released here instead.
        if job.cancelled():
            with self._lock:
                self._admitted -= 1

    def __repr__(self) -> str:
        return (
            f"<InferencePool {self.name!r} workers={self.max_workers} "
            f"in_flight={self.in_flight} queue_depth={self.queue_depth}/{self.max_queue}>"
        )


def available_cores() -> int:
    """CPU cores this process may use (respects container CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_default_pool: InferencePool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> InferencePool:
    """The process-wide pool shared by the local STT and TTS providers.

    One pool for both, so the total number of concurrent inference calls matches the cores
    (one single-threaded call per core) whatever mix of STT and TTS is asked for. Its queue
    holds four jobs per worker: beyond that, waiting would cost more than the 1-2 s a voice
    turn can afford, and refusing is the honest answer.
    """
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            workers = available_cores()
            _default_pool = InferencePool(workers, 4 * workers, "speech")
        return _default_pool
