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
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.config import RateLimit


class EventStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # stored; not yet routed, or deliveries still pending
    DONE = "done"
    UNMATCHED = "unmatched"
    FAILED = "failed"  # some delivery is dead


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    WAITING = "waiting"  # behind an earlier action of the same correlate key
    IN_FLIGHT = "in_flight"
    DONE = "done"
    SKIPPED = "skipped"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {DeliveryStatus.DONE, DeliveryStatus.SKIPPED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED}
)


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    id: str
    source: str
    received_at: float
    headers: Mapping[str, str]  # lower-case names, already redacted where secret
    query: Mapping[str, str]
    payload: str  # the parsed body as JSON text (for a split source, the element)
    raw: bytes | None  # the raw body as received (None when not kept)
    content_type: str | None
    dedupe_key: str | None


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    event_id: str  # the new event's id, or the first event's id for a duplicate
    duplicate: bool


@dataclass(frozen=True, kw_only=True)
class StoredEvent:
    id: str
    source: str
    received_at: float
    headers: Mapping[str, str]
    query: Mapping[str, str]
    payload: str
    content_type: str | None
    dedupe_key: str | None
    status: EventStatus
    routed_at: float | None = None
    matched_rules: tuple[str, ...] = ()
    trace: Sequence[Mapping[str, Any]] = ()
    has_raw: bool = False


@dataclass(frozen=True, kw_only=True)
class NewDelivery:
    id: str
    event_id: str
    rule: str
    provider: str
    action: Mapping[str, Any] | None  # TicketAction.to_json(); None when rendering failed
    correlate: str | None
    status: DeliveryStatus = DeliveryStatus.PENDING  # DEAD for a render error
    last_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Routing:
    """The result of routing one event: what the worker's routing step stores at once."""

    event_id: str
    matched_rules: tuple[str, ...]
    trace: Sequence[Mapping[str, Any]]
    deliveries: Sequence[NewDelivery]
    # a replay: the event's dead deliveries are cancelled, superseded by the new ones
    supersede_dead: bool = False
    # the worker's routing of an event it claimed: stored only if no other worker (whose
    # routing lease ran out meanwhile) routed the event first; a replay stores regardless
    only_if_unrouted: bool = False


@dataclass(frozen=True, kw_only=True)
class Attempt:
    delivery_id: str
    number: int
    started_at: float
    duration: float  # seconds
    outcome: str  # success | retryable | permanent | ...
    status_code: int | None = None
    error: str | None = None  # the provider's message or the error class, redacted
    response_excerpt: str | None = None


@dataclass(frozen=True, kw_only=True)
class Delivery:
    id: str
    event_id: str
    rule: str
    provider: str
    action: Mapping[str, Any] | None
    correlate: str | None
    status: DeliveryStatus
    attempts: int  # attempts made, ever
    tries: int  # attempts since it was last queued (the retry policy counts these)
    created_at: float
    queued_at: float  # created, or last re-queued by a retry
    next_attempt_at: float | None
    last_error: str | None
    ticket_ref: Mapping[str, str] | None
    attempt_log: Sequence[Attempt] = field(default_factory=tuple)
    # waiting: the delivery just before it on its key; dead: the one whose death killed it
    blocked_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A delivery handed to one worker until `lease_until`."""

    delivery: Delivery
    event: StoredEvent
    lease_token: str
    # what the correlate map knows of (provider, correlate), if anything
    ticket_ref: Mapping[str, str] | None = None
    ticket_open: bool | None = None


@dataclass(frozen=True, kw_only=True)
class AttemptResult:
    """What one attempt decided; finish_attempt stores it."""

    attempt: Attempt
    status: DeliveryStatus  # DONE, SKIPPED, DEAD, or PENDING to retry at next_attempt_at
    next_attempt_at: float | None = None
    last_error: str | None = None
    ticket_ref: Mapping[str, str] | None = None  # written to the correlate map on DONE
    ticket_open: bool | None = None  # the ticket's state after this action, when known
    spends_try: bool = True  # False: not counted against the retry budget (paused, interrupted)
    hold: ProviderHold | None = None  # put on the provider in the same transaction


class HoldState(enum.StrEnum):
    PAUSED = "paused"  # the provider refused our credentials (401/403)
    CIRCUIT_OPEN = "circuit_open"  # too many retryable failures in a row


#: how long a pause that lasts "until resumed" is written to last
UNTIL_RESUMED = 100 * 365 * 86400.0


@dataclass(frozen=True, kw_only=True)
class ProviderHold:
    """Nothing is sent to `provider` until `until` (or until the hold is released)."""

    provider: str
    state: HoldState
    since: float
    until: float
    reason: str

    @property
    def until_resumed(self) -> bool:
        """An operator's pause with no end: it lasts until someone resumes the provider."""
        return self.until - self.since >= UNTIL_RESUMED


@dataclass(frozen=True, kw_only=True)
class EventDetail:
    event: StoredEvent
    deliveries: Sequence[Delivery]  # each with its attempt_log
    holds: Mapping[str, ProviderHold] = field(default_factory=dict)  # of its providers, by name


@dataclass(frozen=True, kw_only=True)
class QueueStats:
    # (provider, status) -> how many deliveries; every status that has any
    deliveries: Mapping[tuple[str, DeliveryStatus], int]
    unrouted: int  # events stored but not routed yet
    # the received_at of the oldest event with work left (unrouted, or an unfinished
    # delivery), or None when nothing is left to do
    oldest_unfinished: float | None


@dataclass(frozen=True, kw_only=True)
class Activity:
    start: float  # the bucket covers [start, start + bucket)
    received: int  # events received in it
    delivered: int  # deliveries that ended done in it (by their successful attempt's end)


@dataclass(frozen=True, kw_only=True)
class PurgeCounts:
    events: int
    dedupe_keys: int


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
    ) -> list[Claim]:
        """Due deliveries (pending with next_attempt_at <= now, or in flight with a lapsed
        lease), oldest first, never two of one (provider, correlate) key out of order, none
        of a held provider; at most `limit` in all and `per_provider[name]` of a named one.
        A provider in `rates` gets only as many as its token bucket (one per provider in the
        store, shared by every process) pays for, taken in the same transaction."""

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
