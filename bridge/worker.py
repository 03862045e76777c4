"""The worker: route stored events, claim due deliveries, deliver, decide what comes next.

    stored event --route--> deliveries --claim (lease)--> provider.deliver (one attempt)
        --> done | skipped | pending again (backoff, Retry-After) | dead

The retry loop lives here and only here (STYLE habit 3): adapters make one attempt and say
what came of it. The receiver wakes the worker the moment an event is stored; other
processes' work is found by polling the store at least every `poll_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from bridge.dispatch import route_event
from bridge.exceptions import StoreError
from bridge.ids import new_id
from bridge.logs import mask
from bridge.providers.base import Job, Outcome, OutcomeKind
from bridge.rendering import event_context, rule_context
from bridge.retry import next_attempt_at
from bridge.service import Service
from bridge.store.base import Attempt, AttemptResult, Claim, DeliveryStatus, Store
from bridge.tickets import ActionKind, OnExisting, TicketAction, TicketRef

log = logging.getLogger("bridge.worker")


class Worker:
    def __init__(
        self,
        *,
        service: Service,
        store: Store,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lease: float = 300.0,
        max_in_flight: int = 64,
        poll_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits = {
            name: asyncio.Semaphore(p.concurrency) for name, p in service.config.providers.items()
        }

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Work until stop() is called."""
        log.info("worker started", extra={"action": "worker_start"})
        while not self._stopping:
            self._wakeup.clear()
            try:
                busy = await self.route_pending()
                busy = await self.claim_and_start() or busy
                timeout = await self._idle_timeout() if not busy else 0.0
            except StoreError as exc:
                log.error("store error", extra={"action": "store_error", "error": str(exc)})
                timeout = self.poll_interval
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give in-flight deliveries `grace` seconds to finish. Any still
        running then is cancelled and its lease lapses, so it is retried later."""
        self._stopping = True
        self.wake()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def run_until_idle(self, *, limit: float = 10.0) -> None:
        """Route and deliver until nothing will be due within `limit` seconds (retries that
        fall due sooner are waited for): for tests and one-shot runs."""
        deadline = self.clock() + limit
        while self.clock() < deadline:
            busy = await self.route_pending()
            busy = await self.claim_and_start() or busy
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            elif not busy:
                wakeup = await self.store.next_wakeup()
                if wakeup is None or wakeup > deadline:
                    return
                await asyncio.sleep(max(0.0, wakeup - self.clock()))

    async def _idle_timeout(self) -> float:
        wakeup = await self.store.next_wakeup()
        if wakeup is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, wakeup - self.clock()))

    async def route_pending(self) -> bool:
        events = await self.store.claim_unrouted(now=self.clock(), limit=64, lease=60.0)
        for event in events:
            now = self.clock()
            routing = route_event(self.service, event, now=now, new_id=partial(new_id, "dlv"))
            await self.store.save_routing(routing, now=now)
            log.info(
                "routed",
                extra={
                    "action": "route",
                    "event_id": event.id,
                    "source": event.source,
                    "rules": list(routing.matched_rules),
                    "deliveries": [d.id for d in routing.deliveries],
                },
            )
        return bool(events)

    async def claim_and_start(self) -> bool:
        room = self.max_in_flight - len(self._tasks)
        if room <= 0 or self._stopping:
            return False
        claims = await self.store.claim_due(now=self.clock(), limit=room, lease=self.lease)
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        return bool(claims)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "delivery task failed", exc_info=task.exception(), extra={"action": "deliver"}
            )
        self.wake()

    async def _deliver(self, claim: Claim) -> None:
        delivery = claim.delivery
        started = self.clock()
        limit = self._limits.get(delivery.provider)
        if limit is None:  # a provider removed from the config since the delivery was made
            limit = self._limits[delivery.provider] = asyncio.Semaphore(1)
        async with limit:
            outcome = await self._attempt(claim)
        now = self.clock()
        result = self._decide(claim, outcome, started=started, now=now)
        kept = await self.store.finish_attempt(claim, result, now=now)
        log.info(
            "attempt",
            extra={
                "action": "attempt",
                "event_id": delivery.event_id,
                "delivery_id": delivery.id,
                "rule": delivery.rule,
                "provider": delivery.provider,
                "attempt": delivery.attempts + 1,
                "outcome": outcome.kind.value,
                "status": result.status.value,
                "http_status": outcome.status_code,
                "duration_ms": round((now - started) * 1000, 1),
                "error": outcome.message or None,
                "lease_lost": not kept or None,
            },
        )

    async def _attempt(self, claim: Claim) -> Outcome:
        delivery = claim.delivery
        provider = self.service.providers.get(delivery.provider)
        if provider is None:
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                message=f"provider {delivery.provider!r} is not configured any more",
            )
        if delivery.action is None:
            return Outcome(kind=OutcomeKind.PERMANENT, message="the delivery has no action")
        action = TicketAction.from_json(delivery.action)
        ref = TicketRef.from_json(claim.ticket_ref) if claim.ticket_ref else None
        if action.action is ActionKind.CREATE_TICKET and claim.ticket_open:
            if action.on_existing is OnExisting.SKIP:
                return Outcome(
                    kind=OutcomeKind.SKIPPED,
                    message="a ticket is already open for this correlate key",
                )
            if action.on_existing is OnExisting.UPDATE:
                action = replace(action, action=ActionKind.UPDATE_TICKET)
        context = rule_context(
            event_context(claim.event, vars=self.service.config.vars, now=_utc(self.clock())),
            delivery.rule,
        )
        job = Job(
            delivery_id=delivery.id,
            attempt=delivery.attempts + 1,
            action=action,
            ticket_ref=ref,
            ticket_open=claim.ticket_open,
            context=context,
        )
        try:
            return await provider.deliver(job)
        except Exception as exc:  # an adapter bug must not kill the worker
            log.exception("adapter raised", extra={"action": "deliver", "delivery_id": delivery.id})
            return Outcome(
                kind=OutcomeKind.PERMANENT, message=f"adapter error: {type(exc).__name__}"
            )

    def _decide(
        self, claim: Claim, outcome: Outcome, *, started: float, now: float
    ) -> AttemptResult:
        delivery = claim.delivery
        # what a provider answers is stored and shown: a provider echoing a credential back
        # must not put it in the attempt log
        secrets = self.service.config.secrets
        outcome = replace(
            outcome,
            message=mask(outcome.message, secrets),
            response_excerpt=mask(outcome.response_excerpt, secrets)
            if outcome.response_excerpt
            else None,
        )
        attempt = Attempt(
            delivery_id=delivery.id,
            number=delivery.attempts + 1,
            started_at=started,
            duration=now - started,
            outcome=outcome.kind.value,
            status_code=outcome.status_code,
            error=outcome.message or None,
            response_excerpt=outcome.response_excerpt,
        )
        if outcome.kind is OutcomeKind.SUCCESS:
            return AttemptResult(
                attempt=attempt,
                status=DeliveryStatus.DONE,
                ticket_ref=outcome.ticket_ref.to_json() if outcome.ticket_ref else None,
                ticket_open=outcome.ticket_open,
            )
        if outcome.kind is OutcomeKind.SKIPPED:
            return AttemptResult(
                attempt=attempt, status=DeliveryStatus.SKIPPED, last_error=outcome.message
            )
        if outcome.kind is OutcomeKind.RETRYABLE:
            provider = self.service.config.providers.get(delivery.provider)
            policy = provider.retry if provider else self.service.config.defaults.retry
            at = next_attempt_at(
                tries=delivery.tries + 1,
                queued_at=delivery.queued_at,
                now=now,
                policy=policy,
                retry_after=outcome.retry_after,
                rng=self.rng,
            )
            if at is not None:
                return AttemptResult(
                    attempt=attempt,
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=at,
                    last_error=outcome.message,
                )
            message = f"gave up after {delivery.tries + 1} tries: {outcome.message}"
            return AttemptResult(attempt=attempt, status=DeliveryStatus.DEAD, last_error=message)
        return AttemptResult(
            attempt=attempt, status=DeliveryStatus.DEAD, last_error=outcome.message
        )


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)
