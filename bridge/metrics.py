"""Prometheus metrics (DESIGN §4.1): what the process counted, and what the store holds now.

    receiver --received()--> ticketbridge_events_received_total{source, outcome}
    worker   --attempted()--> ticketbridge_attempts_total{provider, outcome}
             --finished()---> ticketbridge_deliveries_total{provider, outcome}
                              ticketbridge_delivery_latency_seconds{provider}
    GET /metrics --exposition(store)--> the counters above, plus gauges read from the store at
                              scrape time (queue depth, oldest pending age, provider holds)

Each Metrics has its own registry (never prometheus_client's global one), so two apps in one
process, as in tests, count apart. Label values come from the configuration or from stored
deliveries, never from a request's URL: an unknown source counts as source "".
"""

from __future__ import annotations

import enum
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from bridge.exceptions import StoreError
from bridge.records import DeliveryStatus, HoldState, ProviderHold, QueueStats
from bridge.store.base import Store

UNKNOWN_SOURCE = ""  # the source label of a request to a path no source is configured for

# from a log provider's few milliseconds to the retry policy's cap of an hour
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


class Received(enum.StrEnum):
    """What came of a webhook: per event id for what was stored, per request otherwise."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # any 4xx: unknown source, bad signature, bad body, ...
    UNAVAILABLE = "unavailable"  # the store did not answer (503)


# attempt outcomes: bridge.providers.base.OutcomeKind, and bridge.delivery.attempts.INTERRUPTED
ATTEMPT_OUTCOMES = ("success", "retryable", "permanent", "unauthorized", "skipped", "interrupted")
FINAL = (DeliveryStatus.DONE, DeliveryStatus.SKIPPED, DeliveryStatus.DEAD)
QUEUED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.WAITING,
    DeliveryStatus.IN_FLIGHT,
    DeliveryStatus.DEAD,
)


class Metrics:
    def __init__(
        self,
        *,
        sources: Iterable[str] = (),
        providers: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`sources` and `providers` are the configured names: their series start at 0, and
        every configured provider has its hold gauges."""
        self.registry = CollectorRegistry()
        self.providers = tuple(providers)
        self.clock = clock
        self._received = Counter(
            "ticketbridge_events_received",
            "Webhook events received, by source and outcome (per event id where stored).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self._attempts = Counter(
            "ticketbridge_attempts",
            "Delivery attempts, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._deliveries = Counter(
            "ticketbridge_deliveries",
            "Deliveries that reached a final state, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "ticketbridge_delivery_latency_seconds",
            "From the event's receipt to the end of the successful attempt, by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for source in sources:
            for received in Received:
                self._received.labels(source, received.value)
        for provider in self.providers:
            for outcome in ATTEMPT_OUTCOMES:
                self._attempts.labels(provider, outcome)
            for status in FINAL:
                self._deliveries.labels(provider, status.value)
            self._latency.labels(provider)

    def received(self, source: str, outcome: Received, count: int = 1) -> None:
        if count:
            self._received.labels(source, outcome.value).inc(count)

    def attempted(self, provider: str, outcome: str) -> None:
        self._attempts.labels(provider, outcome).inc()

    def finished(
        self, provider: str, status: DeliveryStatus, *, latency: float | None = None
    ) -> None:
        """A delivery reached `status` (done, skipped, dead); `latency` for a done one."""
        if status not in FINAL:
            return
        self._deliveries.labels(provider, status.value).inc()
        if status is DeliveryStatus.DONE and latency is not None:
            self._latency.labels(provider).observe(max(0.0, latency))

    async def exposition(self, store: Store) -> bytes:
        """The text exposition: the counters, and the store's gauges (store_up 0 and none of
        them when the store does not answer)."""
        families: list[Metric]
        try:
            stats = await store.queue_stats()
            holds = await store.provider_holds()
        except StoreError:
            families = [_gauge("ticketbridge_store_up", "1 if the store answered.", 0)]
        else:
            families = [
                _gauge("ticketbridge_store_up", "1 if the store answered.", 1),
                *store_families(stats, holds, providers=self.providers, now=self.clock()),
            ]
        return generate_latest(_Scrape(self.registry, families))


def store_families(
    stats: QueueStats,
    holds: dict[str, ProviderHold],
    *,
    providers: Sequence[str],
    now: float,
) -> list[Metric]:
    """The gauges read from the store: a pure function of what it answered."""
    depth: Tally[DeliveryStatus] = Tally()
    by_provider = GaugeMetricFamily(
        "ticketbridge_deliveries_stored",
        "Stored deliveries, by provider and status.",
        labels=["provider", "status"],
    )
    for (provider, status), count in sorted(stats.deliveries.items()):
        depth[status] += count
        by_provider.add_metric([provider, status.value], count)
    queue = GaugeMetricFamily(
        "ticketbridge_queue_depth",
        "Deliveries waiting to be done, or dead, by status (all providers).",
        labels=["status"],
    )
    for status in QUEUED:
        queue.add_metric([status.value], depth[status])
    oldest = stats.oldest_unfinished
    paused = GaugeMetricFamily(
        "ticketbridge_provider_paused",
        "1 while the provider is paused (it refused our credentials, or by hand).",
        labels=["provider"],
    )
    circuit = GaugeMetricFamily(
        "ticketbridge_provider_circuit_open",
        "1 while the provider's circuit breaker is open.",
        labels=["provider"],
    )
    for provider in providers:
        hold = holds.get(provider)
        held = hold.state if hold is not None and hold.until > now else None
        paused.add_metric([provider], int(held is HoldState.PAUSED))
        circuit.add_metric([provider], int(held is HoldState.CIRCUIT_OPEN))
    return [
        queue,
        by_provider,
        _gauge("ticketbridge_unrouted_events", "Events stored and not routed yet.", stats.unrouted),
        _gauge(
            "ticketbridge_oldest_pending_age_seconds",
            "Age of the oldest event with work left (0 when none).",
            max(0.0, now - oldest) if oldest is not None else 0.0,
        ),
        paused,
        circuit,
    ]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _Scrape:
    """One scrape: the registry's metrics, then the families read from the store for it."""

    def __init__(self, registry: CollectorRegistry, families: Sequence[Metric]) -> None:
        self.registry = registry
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.families
