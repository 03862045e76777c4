"""The Store interface: everything the receiver, worker and CLI ask of the database.

Two implementations follow it: SQLite (sqlite.py, the embedded default) and PostgreSQL. Times
are float epoch seconds, passed in by the caller (the clock is injected, never read here, except
where a method's doc says so). Ids are made by the caller (bridge.ids.new_id).

Semantics every implementation keeps (tests/store/test_contract.py holds them):
- ingest: all events of one call commit in one transaction, and the call returns only after
  that commit; concurrent calls may share one transaction (group commit). A dedupe key already
  seen for the source within the window answers with the first event's id, stores nothing.
- claim_unrouted / claim_due hand each item to one caller at a time, under a lease; an item
  whose lease ran out can be claimed again (a crashed worker's work is taken over).
- per-key order: a delivery whose (provider, correlate) key has an earlier unfinished delivery
  (pending, waiting, in flight) is stored `waiting` and never claimed; when the earlier one
  ends done or skipped, the next one becomes pending at once; when it ends dead, every later
  queued one of the key goes dead too, `blocked_by` naming it, and retrying it queues them
  again behind it.
- claim_due skips providers under a hold (paused, circuit open) until the hold's `until`, and
  takes a rate-limited provider's tokens in the transaction that claims what they pay for.
- finish_attempt records the attempt, the delivery's new state, the correlate map (on success)
  and the event's status in one transaction, and only if the claim's lease is still held.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence

from bridge.config import RateLimit
from bridge.records import (
    Activity,
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    EventDetail,
    EventStatus,
    FallBack,
    IngestResult,
    NewEvent,
    ProviderHold,
    PurgeCounts,
    QueueStats,
    Routing,
    StoredEvent,
)
from bridge.store.autovacuum import Tended


class Store(abc.ABC):
    """One database behind the service. Every method is a coroutine; none blocks the loop."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any process commits new work (events, deliveries, a retry,
        a provider resumed), while the store is open. PostgreSQL does, by LISTEN/NOTIFY; a
        store that cannot never calls it, and its workers find such work by polling."""
        return None

    # -- the receiver ---------------------------------------------------------------------

    @abc.abstractmethod
    async def ingest(
        self, events: Sequence[NewEvent], *, dedupe_window: float, now: float
    ) -> list[IngestResult]:
        """Store the events of one request durably, in one transaction, before returning."""

    # -- the worker's routing step -----------------------------------------------------

    @abc.abstractmethod
    async def claim_unrouted(self, *, now: float, limit: int, lease: float) -> list[StoredEvent]:
        """Events not yet routed (and not leased by another router), oldest first."""

    @abc.abstractmethod
    async def save_routing(self, routing: Routing, *, now: float) -> bool:
        """Mark the event routed and add its deliveries; also used by replay (which adds
        deliveries to an event routed before). The event's status follows its deliveries:
        unmatched when it has none. With `only_if_unrouted`, an event already routed is left
        as it is (False is returned); else True."""

    @abc.abstractmethod
    async def save_routings(self, routings: Sequence[Routing], *, now: float) -> list[bool]:
        """save_routing of several events (one routing each) in one transaction, for about
        the statements of one: what save_routing would return for each, in order. Any
        error fails them all."""

    # -- the worker's delivery step ----------------------------------------------------

    @abc.abstractmethod
    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        per_provider: Mapping[str, int] | None = None,
        rates: Mapping[str, RateLimit] | None = None,
        events_for: Collection[str] = (),
    ) -> list[Claim]:
        """Due deliveries (pending with next_attempt_at <= now, or in flight with a lapsed
        lease), oldest first, never two of one (provider, correlate) key out of order, none
        of a held provider; at most `limit` in all and `per_provider[name]` of a named one.
        A provider in `rates` gets only as many as its token bucket (one per provider in the
        store, shared by every process) pays for, taken in the same transaction. Claims of
        the providers in `events_for` carry their events."""

    @abc.abstractmethod
    async def next_token_at(self, provider: str, rate: RateLimit, *, now: float) -> float:
        """When the provider's bucket holds a whole token again (`now` if it does)."""

    @abc.abstractmethod
    async def extend_leases(self, claims: Sequence[Claim], *, until: float) -> None:
        """Keep holding these claims until `until` (the worker renews what it is running)."""

    @abc.abstractmethod
    async def finish_attempt(self, claim: Claim, result: AttemptResult, *, now: float) -> bool:
        """Store the attempt and its consequences; False when the lease was lost meanwhile
        (nothing is written then)."""

    @abc.abstractmethod
    async def next_wakeup(self, *, now: float, skip: Sequence[str] = ()) -> float | None:
        """The earliest time something will be due (a retry, a lease running out, a hold
        ending), or None; deliveries of held providers and of those in `skip` left out."""

    # -- provider holds --------------------------------------------------------------------

    @abc.abstractmethod
    async def hold_provider(self, hold: ProviderHold) -> None:
        """Hold the provider back (replacing any hold it has)."""

    @abc.abstractmethod
    async def release_provider(self, provider: str) -> bool:
        """End the provider's hold now; False when it had none."""

    @abc.abstractmethod
    async def provider_holds(self) -> dict[str, ProviderHold]:
        """Every recorded hold, by provider (those whose `until` passed included)."""

    @abc.abstractmethod
    async def fall_back_provider(self, provider: str, fallback: FallBack, *, now: float) -> int:
        """Send deliveries queued for `provider` to `fallback.to` instead, in their keys'
        order, each with a note saying why (some at a time: call again while it returns
        more than 0); later routings of the keys follow them there."""

    # -- reading and steering ------------------------------------------------------------

    @abc.abstractmethod
    async def list_events(
        self,
        *,
        source: str | None = None,
        status: EventStatus | None = None,
        limit: int = 50,
        before: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[StoredEvent]:
        """Newest first; `before` is an event id to page from (exclusive); `since` and
        `until` bound received_at (since <= received_at < until)."""

    @abc.abstractmethod
    async def queue_stats(self) -> QueueStats:
        """How many deliveries there are by provider and status, and how old the oldest
        unfinished work is (for /metrics and the admin overview)."""

    @abc.abstractmethod
    async def activity(self, *, since: float, until: float, bucket: float) -> list[Activity]:
        """Events received and deliveries done per `bucket` seconds in [since, until), one
        entry per bucket (zeros included), oldest first."""

    @abc.abstractmethod
    async def get_event(self, event_id: str) -> EventDetail | None: ...

    @abc.abstractmethod
    async def get_raw(self, event_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery with its attempt log, or None."""

    @abc.abstractmethod
    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        provider: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Newest first."""

    @abc.abstractmethod
    async def retry_delivery(self, delivery_id: str, *, now: float) -> bool:
        """Queue a dead, skipped or cancelled delivery again with its stored action and a
        fresh retry budget (never a done one: that would make a second ticket), with the
        deliveries its death killed waiting behind it (a delivery killed by another's death
        is retried from that one); False when there is no such delivery or it cannot be
        retried."""

    @abc.abstractmethod
    async def purge(
        self, *, before: float | None, dedupe_before: float | None = None
    ) -> PurgeCounts:
        """Delete events received before `before` (with their deliveries and attempts) once
        all their deliveries are final (no events when None), and dedupe keys recorded
        before `dedupe_before` (default: `before`)."""

    @abc.abstractmethod
    async def drop_bodies(self, *, before: float) -> int:
        """Forget the raw bodies of events received before `before` (defaults.keep_bodies);
        how many were dropped."""

    async def tend_tables(self) -> Tended:
        """Where PostgreSQL's autovacuum is off, do what it would have done by now: VACUUM
        the tables with many dead rows, ANALYZE those that changed much (bridge.store.
        autovacuum); what was done. Other stores need neither."""
        return Tended()
