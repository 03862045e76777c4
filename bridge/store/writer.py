"""Group commit: concurrent writes share one transaction, on both databases.

A write is a step factory (a function returning a fresh step: a batch that fails may be run
again). One task takes a queued write, drains whatever else is queued (up to `max_batch`) and
hands the batch to the driver's `commit`, which runs the steps in one transaction and answers
each one's value or error; the callers' futures are settled only then: nothing is
acknowledged before it is durable. How a driver keeps one bad write from failing the others
is its own (SQLite: a savepoint per step on its writer thread; PostgreSQL: the batch again,
one transaction per step, after a failure).

Writes of many items (ingests: one item per event) are a Batch: the Batches of one kind queued
together become a single step over all their items, so the events of every request in the
transaction are written together, not one savepoint each. A failure of that step fails each
of those callers.

A caller that gave up (cancelled) is skipped, though its write may still be committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, overload

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store.steps import Step

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (an item)
R = TypeVar("R")  # an item's result

log = logging.getLogger(__name__)

Write: TypeAlias = Callable[[], Step[T]]
Outcome: TypeAlias = tuple[Any, BaseException | None]  # (value, None) or (None, error)
Commit: TypeAlias = Callable[[Sequence[Write[Any]]], Awaitable[list[Outcome]]]


@dataclass(frozen=True, eq=False)
class Batch(Generic[I, R]):
    """A write (call it for its step) of `items` by `step`, which answers one result per item,
    in order. Batches of the same step queued together run as one step over all their items;
    a driver may tell a Batch from other writes (SQLite runs ingests apart)."""

    step: Callable[[Sequence[I]], Step[list[R]]]
    items: Sequence[I]

    def __call__(self) -> Step[list[R]]:
        return self.step(self.items)


@dataclass(frozen=True, eq=False)
class _Queued(Generic[T]):
    write: Write[T] | Batch[Any, Any]
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

    @overload
    async def run(self, write: Batch[I, R]) -> list[R]: ...

    @overload
    async def run(self, write: Write[T]) -> T: ...

    async def run(self, write: Write[T] | Batch[I, R]) -> T | list[R]:
        """Run the step in the next transaction; return once that transaction committed."""
        if self._stopping:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T | list[R]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(write, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued so far, then stop."""
        if self._stopping:
            raise StoreError("the writer is already stopping")
        self._stopping = True
        self._queue.put_nowait(None)
        await self._task

    async def _committed(self, batch: Sequence[_Queued[Any]]) -> list[Outcome]:
        """Each caller's outcome. A merged write that failed of itself (not because the
        database is unavailable) is run again as its callers' writes, one each, so that one
        bad write fails alone, as every other write does."""
        writes, slots = _merged(batch)
        outcomes = await self._commit(writes)
        alone = [
            number
            for number, (index, part) in enumerate(slots)
            if part is not None
            and _own_failure(outcomes[index][1])
            and sum(1 for other, _ in slots if other == index) > 1
        ]
        again: dict[int, Outcome] = {}
        if alone:
            retried = await self._commit([batch[n].write for n in alone])
            again = dict(zip(alone, retried, strict=True))
        shown: list[Outcome] = []
        for number, (index, part) in enumerate(slots):
            value, error = again.get(number) or outcomes[index]
            if number not in again and part is not None and error is None:
                value = value[part]
            shown.append((value, error))
        return shown

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
                outcomes = await self._committed(batch)
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


def _own_failure(error: BaseException | None) -> bool:
    return error is not None and not isinstance(error, StoreUnavailable)


Slot: TypeAlias = tuple[int, slice | None]  # a caller's write, and its part of the results


def _merged(batch: Sequence[_Queued[Any]]) -> tuple[list[Write[Any]], list[Slot]]:
    """The writes to commit for `batch`, the Batches of each step merged into one write (where
    the first of them stood), and for each caller where its outcome is."""
    writes: list[Write[Any]] = []
    slots: list[Slot] = []
    merged: dict[Any, tuple[int, list[Any]]] = {}
    for queued in batch:
        write = queued.write
        if not isinstance(write, Batch):
            slots.append((len(writes), None))
            writes.append(write)
            continue
        if write.step not in merged:
            merged[write.step] = (len(writes), [])
            writes.append(write)  # replaced below by the merged write
        index, items = merged[write.step]
        slots.append((index, slice(len(items), len(items) + len(write.items))))
        items.extend(write.items)
    for step, (index, items) in merged.items():
        writes[index] = Batch(step, items)
    return writes, slots


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
