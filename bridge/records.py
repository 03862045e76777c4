"""The records bridge keeps: events, deliveries, attempts, provider holds, and the counts
operators read. Frozen data with Enum statuses, made by the receiver and the worker, kept by the
store (bridge.store), read by the CLI, the admin and the metrics.

Times are float epoch seconds; ids are made by the caller (bridge.ids.new_id).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.config.model import Fold
from bridge.tickets import TicketAction


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
    action: TicketAction | None  # None when rendering failed
    correlate: str | None
    status: DeliveryStatus = DeliveryStatus.PENDING  # DEAD for a render error
    last_error: str | None = None
    fold: Fold | None = None  # its rule folds bursts on its key (bridge/folding.py)


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
    action: TicketAction | None  # None when rendering failed
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
    moved_from: str | None = None  # the delivery of another provider this one replaces
    folded: Sequence[str] = ()  # a note of storm folding: the events it lists
    folded_into: str | None = None  # an event's delivery skipped: the note that lists it


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A delivery handed to one worker until `lease_until`."""

    delivery: Delivery
    received_at: float  # when its event arrived
    lease_token: str
    # the event, for a provider that renders its request when it delivers (claim_due's
    # `events_for`); the others never read it, so their claims do not load it
    event: StoredEvent | None = None
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
    fallback: FallBack | None = None  # instead of dying or retrying: sent to another provider


@dataclass(frozen=True, kw_only=True)
class FallBack:
    """Send deliveries to provider `to` instead, saying `why` in a note."""

    to: str
    why: str


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
        # half the span, not all of it: `since + UNTIL_RESUMED - since` need not round back exactly
        return self.until - self.since >= UNTIL_RESUMED / 2


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
