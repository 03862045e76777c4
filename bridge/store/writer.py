"""Group commit: concurrent writes share one transaction, on both databases.

A write is a step factory (a function returning a fresh step: a batch that fails may be run
again). One task takes a queued write, drains whatever else is queued (up to `max_batch`) and
hands the batch to the driver's `commit`, which runs the steps in one transaction and answers
each one's value or error; the callers' futures are settled only then: nothing is
acknowledged before it is durable. How a driver keeps one bad write from failing the others
is its own (SQLite: a savepoint per step on its writer thread; PostgreSQL: the batch again,
one transaction per step, after a failure).

A caller that gave up (cancelled) is skipped, though its write may still be committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store.steps import Step

T = TypeVar("T")

log = logging.getLogger(__name__)

Write: TypeAlias = Callable[[], Step[T]]
Outcome: TypeAlias = tuple[Any, BaseException | None]  # (value, None) or (None, error)
Commit: TypeAlias = Callable[[Sequence[Write[Any]]], Awaitable[list[Outcome]]]


@dataclass(frozen=True, eq=False)
class _Queued(Generic[T]):
    write: Write[T]
    future: asyncio.Future[T]


class GroupCommitWriter:
    def __init__(self, commit: Commit, *, max_batch: int, name: str) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit = commit
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Queued[Any] | None] = asyncio.Queue()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._work(), name=name)

    async def run(self, write: Write[T]) -> T:
        """Run the step in the next transaction; return once that transaction committed."""
        if self._stopping:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(write, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued so far, then stop."""
        if self._stopping:
            raise StoreError("the writer is already stopping")
        self._stopping = True
        self._queue.put_nowait(None)
        await self._task

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Queued[Any]] = []
            item = await self._queue.get()
            while True:
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if not batch:
                continue
            try:
                outcomes = await self._commit([queued.write for queued in batch])
            except Exception as exc:  # a bug here must not kill the task and hang callers
                log.exception("the store's writer failed", extra={"action": "store.write"})
                outcomes = failed(len(batch), StoreError(f"the write failed unexpectedly: {exc}"))
            for queued, (value, error) in zip(batch, outcomes, strict=True):
                if queued.future.done():  # the caller was cancelled
                    continue
                if error is not None:
                    queued.future.set_exception(error)
                else:
                    queued.future.set_result(value)


def failed(count: int, error: BaseException) -> list[Outcome]:
    """The outcomes of a batch that failed as a whole: one exception object per caller
    (tracebacks are per raise)."""
    outcomes: list[Outcome] = []
    for _ in range(count):
        try:
            copy = type(error)(*error.args)
            copy.__cause__ = error.__cause__
        except Exception:
            copy = error
        outcomes.append((None, copy))
    return outcomes
