"""A fake helpdesk: a Starlette app that records every request and answers from a script.

Run it with `FakeProvider.running()`: a real uvicorn server on a free 127.0.0.1 port, in a
background thread, for end-to-end tests of the worker's HTTP deliveries.

Beyond answering from `script`, it can play the faults a delivery guarantee is tested against:

- `idempotent=True` honours `Idempotency-Key` the way Stripe does: the first request of a key
  that gets a 2xx answer creates a ticket (`created[key]`); a later request with that key gets
  the same answer again, creates nothing and is listed in `repeats`. A failed answer (any
  non-2xx) is not remembered, so a retry of it is a fresh try. Requests with one key are
  answered one after the other, so a second sender of a key still being answered waits for
  that answer and then gets it as a repeat (never a second ticket).
- `hold()` keeps every request that arrives (and those already waiting) unanswered until
  `release()`: a provider that is down or hanging. Requests are recorded when they arrive, so
  `requests` and `held` show what is waiting.
- `delay` answers every request that many seconds late: a slow provider.
- `outage_until` (a time.monotonic() value): until then every request is answered
  `outage_answer` (500 with Retry-After unless changed) and makes nothing: a helpdesk down.

Every `Received` carries `received_at` (time.monotonic() on arrival).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving

Answer = tuple[int, dict[str, str], Any]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float = 0.0  # time.monotonic() when the request arrived


@dataclass
class FakeProvider:
    requests: list[Received] = field(default_factory=list)
    # answers to give, in order; when empty, 201 {"id": "T-<n>"}
    script: list[Answer] = field(default_factory=list)
    url: str = ""
    # honour Idempotency-Key (see the module docstring)
    idempotent: bool = False
    # seconds to wait before answering each request
    delay: float = 0.0
    # until this time.monotonic(), every request gets outage_answer
    outage_until: float = 0.0
    outage_answer: Answer = (500, {"Retry-After": "5"}, {"message": "down for maintenance"})
    # every request that made a ticket (a 2xx answer that was not a repeat), in answer order
    tickets: list[Received] = field(default_factory=list)
    # Idempotency-Key -> the request that made the ticket for it
    created: dict[str, Received] = field(default_factory=dict)
    # requests answered from an earlier answer to their Idempotency-Key (idempotent mode)
    repeats: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: threading.Event = field(default_factory=threading.Event)
    _held: int = 0
    _unanswered: int = 0
    _answers: dict[str, Answer] = field(default_factory=dict)
    _key_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._open.set()

    def answer_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.script.append((status, headers or {}, body))

    def hold(self) -> None:
        """Answer nothing until release(): requests wait (they are recorded on arrival)."""
        self._open.clear()

    def release(self) -> None:
        """Answer every held request, and the ones to come, at once."""
        self._open.set()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """hold() for the block, release() after it (also when the block fails)."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    @property
    def held(self) -> int:
        """How many requests are waiting for release() right now."""
        with self._lock:
            return self._held

    @property
    def unanswered(self) -> int:
        """How many requests arrived and have no answer yet (held, delayed, or queued behind
        an earlier request with the same Idempotency-Key)."""
        with self._lock:
            return self._unanswered

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        arrived = time.monotonic()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        received = Received(request.method, request.url.path, dict(request.headers), body, arrived)
        key = received.headers.get("idempotency-key") if self.idempotent else None
        with self._lock:
            self.requests.append(received)
            number = len(self.requests)
            scripted = self.script.pop(0) if self.script else None
            self._unanswered += 1
        try:
            if key is None:
                return await self._answer(received, number, scripted, key=None)
            # one request per key at a time (all handlers run on the fake's one event loop)
            lock = self._key_locks.setdefault(key, asyncio.Lock())
            async with lock:
                return await self._answer(received, number, scripted, key=key)
        finally:
            with self._lock:
                self._unanswered -= 1

    async def _answer(
        self, received: Received, number: int, scripted: Answer | None, *, key: str | None
    ) -> Response:
        await self._wait_until_open()
        if self.delay:
            await asyncio.sleep(self.delay)
        if time.monotonic() < self.outage_until:
            status, headers, payload = self.outage_answer
            return JSONResponse(payload, status_code=status, headers=headers)
        with self._lock:
            earlier = self._answers.get(key) if key is not None else None
            if earlier is not None:
                self.repeats.append(received)
                answer = earlier
            else:
                answer = scripted or (201, {}, {"id": f"T-{number}"})
                if 200 <= answer[0] < 300:
                    self.tickets.append(received)
                    if key is not None:
                        self._answers[key] = answer
                    self.created.setdefault(
                        key or received.headers.get("idempotency-key", f"#{number}"), received
                    )
        status, headers, payload = answer
        return JSONResponse(
            payload if payload is not None else {}, status_code=status, headers=headers
        )

    async def _wait_until_open(self) -> None:
        # asyncio-friendly: poll the flag instead of blocking the fake's event loop (or
        # parking a worker thread per held request)
        if self._open.is_set():
            return
        with self._lock:
            self._held += 1
        try:
            while not self._open.is_set():
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self._held -= 1

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeProvider]:
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
                )
            ]
        )
        with serving(app, what="the fake provider") as url:
            self.url = url
            try:
                yield self
            finally:
                # held requests must not keep the fake's server from shutting down
                self.release()
