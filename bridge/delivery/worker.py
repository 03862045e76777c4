"""The worker: route stored events, claim due deliveries, deliver, decide what comes next.

    stored event --route--> deliveries --claim (lease)--> provider.deliver (one attempt)
        --> done | skipped | pending again (backoff, Retry-After, paused) | dead

The retry loop lives here and only here (STYLE habit 3): adapters make one attempt and say
what came of it (attempts.py decides what that means). Each provider is paced apart
(limits.py: concurrency, circuit breaker; the store's token buckets), so one slow or failing
provider never takes the room of another. Leases of running attempts are renewed; on stop,
attempts still running after the grace period are released for a later try.

The receiver wakes the worker the moment an event is stored; other processes' work is found
by polling the store at least every `poll_interval` seconds.

In `serve` the receiver comes first (defer_to): while it answers a burst (bridge.gate.BUSY_AT
requests or more in flight), the worker waits before each step, for at most
RECEIVER_FIRST_WAIT, for it to be quiet, and routes and starts only a slice of work per step,
handing the loop back between events. A burst of webhooks is answered at the receiver's own
rate, and its backlog is drained right after at the worker's; a steady flow is routed as it
comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from bridge.delivery.attempts import INTERRUPTED, decide, interrupted, prepare
from bridge.delivery.dispatch import route_event
from bridge.delivery.fallback import fallback_for, held_fallback
from bridge.delivery.limits import Pace
from bridge.exceptions import StoreError, StoreUnavailable
from bridge.ids import new_id
from bridge.metrics import Metrics
from bridge.providers.base import Outcome, OutcomeKind
from bridge.records import AttemptResult, Claim, DeliveryStatus, HoldState, ProviderHold, Routing
from bridge.service import Service
from bridge.store.base import Store
from bridge.times import hold_until

log = logging.getLogger("bridge.worker")

HOUSEKEEPING_EVERY = 3600.0  # seconds between forgetting expired dedupe keys and old bodies
TENDING_EVERY = 60.0  # seconds between looks at what autovacuum would do (its nap time)
UNCONFIGURED_ROOM = 8  # deliveries of providers no longer configured, claimed at once (to die)
FALLBACK_EVERY = 5.0  # seconds between looks for providers held long enough to fall back
ROUTE_BATCH = 64  # events routed in one step
BUSY_SLICE = 8  # events routed, and deliveries started, in one step during a burst
RECEIVER_FIRST_WAIT = 0.25  # the longest a step waits for the receiver to be quiet


class Worker:
    def __init__(
        self,
        *,
        service: Service,
        store: Store,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        poll_interval: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.poll_interval = poll_interval
        self.metrics = metrics or Metrics()
        now = clock()
        self._paces: dict[str, Pace] = {}
        self._starved: dict[str, float] = {}  # provider -> when its bucket has a token again
        self._running: dict[asyncio.Task[None], Claim] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._between_steps = asyncio.Event()  # run() is not in a step (or not running at all)
        self._between_steps.set()
        self._renew_at = now
        self._housekeep_at = now
        self._tend_at = now
        self._tending: asyncio.Task[None] | None = None  # a VACUUM may take minutes
        self._fallback_at = now
        self._receiver_quiet: asyncio.Event | None = None
        self.use(service)

    def use(self, service: Service) -> None:
        """Route and deliver with `service` from the next step on (a reloaded configuration):
        a provider's pace keeps its deliveries in flight; one that went keeps its pace only
        for those (they hold it)."""
        self.service = service
        defaults = service.config.defaults
        self.lease = defaults.lease
        self.grace = defaults.shutdown_grace
        providers = service.config.providers
        self._paces = {
            name: self._paces[name].reconfigure(provider) if name in self._paces else Pace(provider)
            for name, provider in providers.items()
        }
        # looked for at least twice within the shortest fallback_after
        self._fallback_every = min(
            [FALLBACK_EVERY, *(p.fallback_after / 2 for p in providers.values() if p.fallback)]
        )
        self._rates = {
            name: provider.rate_limit
            for name, provider in providers.items()
            if provider.rate_limit is not None
        }
        # providers that render their request when they deliver: their claims carry the event
        self._rendering = frozenset(
            name for name, provider in service.providers.items() if provider.renders_templates
        )
        self.wake()

    def wake(self) -> None:
        self._wakeup.set()

    def defer_to(self, quiet: asyncio.Event) -> None:
        """Put the receiver first: `quiet` is set while it is not answering a burst."""
        self._receiver_quiet = quiet

    def _receiver_busy(self) -> bool:
        return self._receiver_quiet is not None and not self._receiver_quiet.is_set()

    async def _receiver_first(self) -> None:
        """Wait, at most RECEIVER_FIRST_WAIT, for the receiver to be quiet."""
        if self._receiver_quiet is not None and self._receiver_busy():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._receiver_quiet.wait(), RECEIVER_FIRST_WAIT)

    async def run(self) -> None:
        """Work until stop() is called."""
        log.info("worker started", extra={"action": "worker_start"})
        self.store.listen(self.wake)  # work committed by other processes (PostgreSQL)
        while not self._stopping:
            self._wakeup.clear()
            self._between_steps.clear()
            try:
                await self._receiver_first()
                busy = await self._step()
                timeout = 0.0 if busy else await self._idle_timeout()
            except StoreError as exc:
                log.error("store error", extra={"action": "store_error", "error": str(exc)})
                timeout = self.poll_interval
            finally:
                self._between_steps.set()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; give running attempts `grace` seconds (defaults.shutdown_grace) to
        finish. Any still running then is cancelled, which releases its delivery at once. The
        log says how many it waits for (`worker_drain`) and, last, that it stopped."""
        self._stopping = True
        self.wake()
        if self._tending is not None:
            self._tending.cancel()  # PostgreSQL cancels the VACUUM; the next worker tends
            with contextlib.suppress(asyncio.CancelledError):
                await self._tending
        grace = self.grace if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # a step under way may be claiming: what it claims starts, and is waited for too
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._between_steps.wait(), grace)
        running = set(self._running)
        late: set[asyncio.Task[None]] = set()
        if running:
            log.info(
                f"stopping: {len(running)} attempts in flight get {grace:g}s to finish",
                extra={"action": "worker_drain", "in_flight": len(running), "grace_s": grace},
            )
            _, late = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        log.info(
            "worker stopped",
            extra={
                "action": "worker_stop",
                "finished": len(running) - len(late),
                "released": len(late),
            },
        )

    async def run_until_idle(self, *, limit: float = 10.0) -> None:
        """Route and deliver until nothing will be due within `limit` seconds (retries that
        fall due sooner are waited for): for tests and one-shot runs."""
        deadline = self.clock() + limit
        while self.clock() < deadline:
            busy = await self._step()
            if self._running:
                await asyncio.wait(set(self._running))
            elif not busy:
                wakeup = await self._next_wakeup(self.clock())
                if wakeup > deadline:
                    return
                await asyncio.sleep(max(0.0, wakeup - self.clock()))

    async def _step(self) -> bool:
        """One round: route, claim and start, renew leases, tidy up. True if it did work."""
        busy = await self.route_pending()
        busy = await self.claim_and_start() or busy
        now = self.clock()
        if now >= self._renew_at:
            self._renew_at = now + self.lease / 3
            await self.store.extend_leases(list(self._running.values()), until=now + self.lease)
        if now >= self._housekeep_at:
            self._housekeep_at = now + HOUSEKEEPING_EVERY
            await self._housekeep(now)
        if now >= self._tend_at and (self._tending is None or self._tending.done()):
            # beside the steps, never in one: the leases are renewed meanwhile
            self._tend_at = now + TENDING_EVERY
            self._tending = asyncio.create_task(self._tend_tables(), name="tend-tables")
        if now >= self._fallback_at:
            self._fallback_at = now + self._fallback_every
            busy = await self._fall_back_held(now) or busy
        return busy

    async def _fall_back_held(self, now: float) -> bool:
        """Send the queues of providers held (paused, circuit open) for longer than their
        fallback_after to their fallbacks."""
        providers = self.service.config.providers
        if not any(provider.fallback for provider in providers.values()):
            return False
        moved = 0
        for name, hold in (await self.store.provider_holds()).items():
            fallback = held_fallback(hold, providers, now)
            if fallback is None:
                continue
            count = await self.store.fall_back_provider(name, fallback, now=now)
            moved += count
            if count:
                log.warning(
                    f"{count} deliveries of {name} sent to {fallback.to} instead: {fallback.why}",
                    extra={"action": "fallback", "provider": name, "to": fallback.to},
                )
        return moved > 0

    async def _idle_timeout(self) -> float:
        now = self.clock()
        until = min(self._next_own_deadline(), await self._next_wakeup(now))
        return max(0.0, min(self.poll_interval, until - now))

    async def _next_wakeup(self, now: float) -> float:
        """When there may be something to do: the store's next due time (leaving out the
        providers that cannot start anything now), or when one of those can again."""
        blocked = {name: self._starved.get(name) for name in self._starved}
        for name, pace in self._paces.items():
            if pace.room(now) == 0:
                blocked[name] = pace.free_at(now)
        stored = await self.store.next_wakeup(now=now, skip=list(blocked))
        return min([t for t in (*blocked.values(), stored) if t is not None], default=float("inf"))

    def _next_own_deadline(self) -> float:
        renew = self._renew_at if self._running else float("inf")
        return min(renew, self._housekeep_at)

    async def route_pending(self) -> bool:
        limit = BUSY_SLICE if self._receiver_busy() else ROUTE_BATCH
        events = await self.store.claim_unrouted(now=self.clock(), limit=limit, lease=self.lease)
        now = self.clock()
        routings: list[Routing] = []
        for event in events:
            if routings and self._receiver_busy():
                await asyncio.sleep(0)  # requests that came in are answered between renders
            routed = route_event(self.service, event, now=now, new_id=partial(new_id, "dlv"))
            routings.append(replace(routed, only_if_unrouted=True))
        # saved together, in one transaction and a few statements; the store queues each
        # delivery by its event's arrival all the same. Should the batch fail, each is saved
        # alone, so that one event the store refuses holds up no other.
        try:
            saved = await self.store.save_routings(routings, now=now)
        except StoreUnavailable:
            raise
        except StoreError:
            saved = await asyncio.gather(*(self.store.save_routing(r, now=now) for r in routings))
        for event, routing, kept in zip(events, routings, saved, strict=True):
            if not kept:
                continue  # another worker routed it while this one's lease ran out
            for new in routing.deliveries:
                if new.status is DeliveryStatus.DEAD:  # its action could not be rendered
                    self.metrics.finished(new.provider, new.status)
                    log.error(
                        "delivery dead: its ticket could not be rendered",
                        extra={
                            "action": "dead",
                            "event_id": event.id,
                            "delivery_id": new.id,
                            "rule": new.rule,
                            "provider": new.provider,
                            "error": new.last_error,
                        },
                    )
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
        if self._stopping:
            return False
        now = self.clock()
        rooms = {name: pace.room(now) for name, pace in self._paces.items()}
        limit = sum(rooms.values()) + UNCONFIGURED_ROOM
        if self._receiver_busy():
            limit = min(limit, BUSY_SLICE)
        claims = await self.store.claim_due(
            now=now,
            limit=limit,
            lease=self.lease,
            per_provider=rooms,
            rates=self._rates,
            events_for=self._rendering,
        )
        claimed = Counter(claim.delivery.provider for claim in claims)
        self._starved = {}
        for name, rate in self._rates.items():
            # fewer than it had room for: no more due, or no more tokens (then wake for one)
            if claimed[name] < rooms[name]:
                token_at = await self.store.next_token_at(name, rate, now=now)
                if token_at > now:
                    self._starved[name] = token_at
        for claim in claims:
            pace = self._paces.get(claim.delivery.provider)
            if pace is not None:
                pace.started()
            task = asyncio.create_task(self._deliver(claim, pace))
            self._running[task] = claim
            task.add_done_callback(self._task_done)
        return bool(claims)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "delivery task failed", exc_info=task.exception(), extra={"action": "deliver"}
            )
        self.wake()

    async def _deliver(self, claim: Claim, pace: Pace | None) -> None:
        delivery = claim.delivery
        started = self.clock()
        try:
            outcome = await self._attempt(claim)
        except asyncio.CancelledError:
            # shut down before the provider answered: release the delivery for a later try
            released = interrupted(claim, started=started, now=self.clock())
            await self.store.finish_attempt(claim, released, now=self.clock())
            self.metrics.attempted(delivery.provider, INTERRUPTED)
            log.warning("attempt interrupted", extra=_attempt_facts(claim, released))
            raise
        finally:
            if pace is not None:
                pace.finished()
        now = self.clock()
        result = decide(
            claim, outcome, config=self.service.config, started=started, now=now, rng=self.rng
        )
        fallback = fallback_for(claim, result, self.service.config, now)
        if fallback is not None:
            result = replace(result, fallback=fallback)
        kept = await self.store.finish_attempt(claim, result, now=now)
        self.metrics.attempted(delivery.provider, outcome.kind.value)
        if kept:
            latency = now - claim.received_at
            status = DeliveryStatus.CANCELLED if fallback else result.status
            self.metrics.finished(delivery.provider, status, latency=latency)
        facts = {**_attempt_facts(claim, result), "http_status": outcome.status_code}
        if result.hold is not None and kept:
            _log_hold(result.hold, facts)
        if pace is not None:
            await self._pace_outcome(claim, pace, outcome.kind, facts, now=now)
        if not kept:
            log.warning("attempt outcome dropped: the lease was lost", extra=facts)
        elif fallback is not None:
            log.warning(
                f"sent to {fallback.to} instead: {fallback.why}",
                extra={**facts, "action": "fallback", "to": fallback.to},
            )
        elif result.status is DeliveryStatus.DEAD:
            log.error(f"delivery dead: {result.last_error}", extra=facts)
        else:
            log.info("attempt", extra=facts)

    async def _attempt(self, claim: Claim) -> Outcome:
        provider = self.service.providers.get(claim.delivery.provider)
        job = prepare(
            claim,
            config=self.service.config,
            now=self.clock(),
            with_context=provider is not None and provider.renders_templates,
        )
        if isinstance(job, Outcome):
            return job
        assert provider is not None  # prepare answers an Outcome for a provider not configured
        try:
            return await provider.deliver(job)
        except Exception as exc:  # an adapter bug must not kill the worker
            log.exception(
                "adapter raised", extra={"action": "deliver", "delivery_id": job.delivery_id}
            )
            return Outcome(
                kind=OutcomeKind.PERMANENT, message=f"adapter error: {type(exc).__name__}"
            )

    async def _pace_outcome(
        self, claim: Claim, pace: Pace, kind: OutcomeKind, facts: dict[str, object], *, now: float
    ) -> None:
        """Feed the circuit breaker: retryable failures count, anything the provider answered
        on purpose (success, a 4xx) shows it is up."""
        if kind is not OutcomeKind.RETRYABLE:
            pace.breaker.succeeded()
            return
        if pace.breaker.failed(now) and pace.breaker.open_until is not None:
            provider = claim.delivery.provider
            hold = ProviderHold(
                provider=provider,
                state=HoldState.CIRCUIT_OPEN,
                since=now,
                until=pace.breaker.open_until,
                reason=(
                    f"{pace.breaker.failures} retryable failures in a row, "
                    f"the last: {facts['error']}"
                ),
            )
            await self.store.hold_provider(hold)
            _log_hold(hold, facts)

    async def _housekeep(self, now: float) -> None:
        """Forget dedupe keys past the window, and raw bodies past defaults.keep_bodies."""
        defaults = self.service.config.defaults
        counts = await self.store.purge(before=None, dedupe_before=now - defaults.dedupe_window)
        bodies = 0
        if defaults.keep_bodies is not None:
            bodies = await self.store.drop_bodies(before=now - defaults.keep_bodies)
        if counts.dedupe_keys or bodies:
            log.info(
                "housekeeping",
                extra={
                    "action": "housekeeping",
                    "dedupe_keys": counts.dedupe_keys,
                    "bodies": bodies,
                },
            )

    async def _tend_tables(self) -> None:
        """Where PostgreSQL's autovacuum is off, what it would have done by now
        (bridge.store.autovacuum)."""
        try:
            tended = await self.store.tend_tables()
        except StoreError as exc:
            log.warning(
                "could not tend the tables as autovacuum would",
                extra={"action": "autovacuum", "error": str(exc)},
            )
            return
        if tended:
            done = [
                f"{what} {', '.join(tables)}"
                for what, tables in (("vacuumed", tended.vacuumed), ("analyzed", tended.analyzed))
                if tables
            ]
            log.info(
                f"tables tended as autovacuum would (it is off): {'; '.join(done)}",
                extra={
                    "action": "autovacuum",
                    "vacuumed": list(tended.vacuumed),
                    "analyzed": list(tended.analyzed),
                },
            )


def _log_hold(hold: ProviderHold, attempt: dict[str, object]) -> None:
    """A paused provider or an open circuit, with the attempt that caused it."""
    log.error(
        f"provider {hold.provider} {hold.state.value.replace('_', ' ')}: {hold.reason}",
        extra={
            **attempt,
            "action": "provider_hold",
            "state": hold.state.value,
            "until": hold_until(hold),
            "error": hold.reason,
        },
    )


def _attempt_facts(claim: Claim, result: AttemptResult) -> dict[str, object]:
    """What the log line of an attempt says (DESIGN §4.1: ids, rule, provider, outcome)."""
    delivery = claim.delivery
    return {
        "action": "attempt",
        "event_id": delivery.event_id,
        "delivery_id": delivery.id,
        "rule": delivery.rule,
        "provider": delivery.provider,
        "attempt": result.attempt.number,
        "outcome": result.attempt.outcome,
        "status": result.status.value,
        "duration_ms": round(result.attempt.duration * 1000, 1),
        "error": result.attempt.error,
    }
