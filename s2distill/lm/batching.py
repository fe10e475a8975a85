"""Batch the calls of many concurrently running programs into one backend call.

Methods are plain per-example programs, `(example, lm) -> Trace` (DESIGN principle 3), but a
backend is fastest when it sees many requests at once. The runner runs programs in worker
threads; each program's `generate` blocks here until every running program is waiting on the
model, then one of them hands the whole batch to the backend. Programs keep their sequential,
readable shape, and a two-call method's second calls are batched across examples too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from s2distill.lm.base import LM
from s2distill.types import Completion, Request


class RunCancelled(RuntimeError):
    """Raised in programs still running when their run is interrupted."""


class _Waiting:
    """One program's call, and the event that wakes that program alone once it is answered.

    An event per call, not one condition that every program waits on: a shared condition's
    `notify_all` woke every waiting thread after each batch, and each then queued for the shared
    lock the flushing thread still held: a thundering herd, 16% of the GIL-holding samples in a
    py-spy profile of benchmarks/scale.py at 2,000 inputs and 64 workers, the largest single line."""

    __slots__ = ("done", "error", "requests", "result")

    def __init__(self, requests: Sequence[Request]):
        self.requests = list(requests)
        self.result: list[list[Completion]] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class BatchingLM:
    """An LM front that merges the requests of concurrently running programs."""

    def __init__(self, inner: LM, *, programs: int, concurrency: int):
        """`programs` will run in all, at most `concurrency` at a time."""
        self.inner = inner
        self.name = inner.name
        self._lock = threading.Lock()
        self._remaining = programs
        self._concurrency = concurrency
        self._waiting: list[_Waiting] = []
        self._flushing = False
        self._closed = False

    def close(self) -> None:
        """Refuse all further calls (the run was interrupted); waiting programs get an error."""
        with self._lock:
            self._closed = True
            for slot in self._waiting:
                slot.error = RunCancelled("the run was interrupted")
                slot.done.set()
            self._waiting = []

    @contextmanager
    def program(self) -> Iterator[None]:
        """Wrap one program's run; its end lets a batch go without it."""
        try:
            yield
        finally:
            with self._lock:
                self._remaining -= 1
                self._flush_if_all_waiting()

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        slot = _Waiting(requests)
        with self._lock:
            if self._closed:
                raise RunCancelled("the run was interrupted")
            self._waiting.append(slot)
            self._flush_if_all_waiting()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _flush_if_all_waiting(self) -> None:
        """With the lock held: if every running program waits, run their batch in this thread.

        Programs running = min(concurrency, programs not yet finished): counting them up front, not
        as threads start, keeps the first batch from leaving before the other programs arrive.
        """
        if self._flushing or not self._waiting or len(self._waiting) < min(self._concurrency, self._remaining):
            return
        batch, self._waiting = self._waiting, []
        self._flushing = True
        self._lock.release()  # programs that finish meanwhile only update counters
        try:
            flat = [r for slot in batch for r in slot.requests]
            try:
                outputs = self.inner.generate(flat)
                error = None
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting program
                outputs, error = [], exc
        finally:
            self._lock.acquire()
            self._flushing = False
        position = 0
        for slot in batch:
            if error is not None:
                slot.error = error
            else:
                slot.result = outputs[position : position + len(slot.requests)]
                position += len(slot.requests)
            slot.done.set()
        self._flush_if_all_waiting()  # requests that arrived during the flush
