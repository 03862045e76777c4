"""Prometheus metrics: bridge.metrics on its own, and GET /metrics of a real server."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bridge.exceptions import StoreError
from bridge.metrics import Metrics, Received
from bridge.records import DeliveryStatus, HoldState, ProviderHold, QueueStats
from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, write_tree

NOW = 1_700_000_000.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class StubStore:
    """The two reads /metrics makes, answered from fixed data (or failing)."""

    def __init__(
        self,
        stats: QueueStats | None = None,
        holds: dict[str, ProviderHold] | None = None,
    ) -> None:
        self.stats = stats
        self.holds = holds or {}

    async def queue_stats(self) -> QueueStats:
        if self.stats is None:
            raise StoreError("database is locked")
        return self.stats

    async def provider_holds(self) -> dict[str, ProviderHold]:
        return self.holds


def hold(provider: str, state: HoldState, until: float) -> ProviderHold:
    return ProviderHold(provider=provider, state=state, since=NOW - 10, until=until, reason="x")


EMPTY = QueueStats(deliveries={}, unrouted=0, oldest_unfinished=None)


def scrape(metrics: Metrics, store: StubStore) -> Samples:
    return parse(asyncio.run(metrics.exposition(store)).decode())  # type: ignore[arg-type]


# -- bridge.metrics --------------------------------------------------------------------------


def test_configured_names_start_at_zero_and_counts_add_up():
    metrics = Metrics(sources=["shop"], providers=["helpdesk"], clock=lambda: NOW)
    metrics.received("shop", Received.ACCEPTED, 3)
    metrics.received("shop", Received.DUPLICATE, 0)
    metrics.received("", Received.REJECTED)
    metrics.attempted("helpdesk", "retryable")
    metrics.attempted("helpdesk", "success")
    metrics.finished("helpdesk", DeliveryStatus.DONE, latency=0.2)
    metrics.finished("helpdesk", DeliveryStatus.PENDING)  # not final: not counted
    metrics.finished("helpdesk", DeliveryStatus.DEAD)
    samples = scrape(metrics, StubStore(EMPTY))
    received = "ticketbridge_events_received_total"
    assert value(samples, received, source="shop", outcome="accepted") == 3
    assert value(samples, received, source="shop", outcome="duplicate") == 0
    assert value(samples, received, source="shop", outcome="unavailable") == 0
    assert value(samples, received, source="", outcome="rejected") == 1
    attempts = "ticketbridge_attempts_total"
    assert value(samples, attempts, provider="helpdesk", outcome="retryable") == 1
    assert value(samples, attempts, provider="helpdesk", outcome="success") == 1
    assert value(samples, attempts, provider="helpdesk", outcome="interrupted") == 0
    deliveries = "ticketbridge_deliveries_total"
    assert value(samples, deliveries, provider="helpdesk", outcome="done") == 1
    assert value(samples, deliveries, provider="helpdesk", outcome="dead") == 1
    assert value(samples, deliveries, provider="helpdesk", outcome="skipped") == 0
    latency = "ticketbridge_delivery_latency_seconds"
    assert value(samples, latency + "_count", provider="helpdesk") == 1
    assert value(samples, latency + "_bucket", provider="helpdesk", le="0.1") == 0
    assert value(samples, latency + "_bucket", provider="helpdesk", le="0.25") == 1
    assert value(samples, latency + "_bucket", provider="helpdesk", le="3600.0") == 1


def test_each_instance_counts_apart():
    first, second = Metrics(sources=["shop"]), Metrics(sources=["shop"])
    first.received("shop", Received.ACCEPTED)
    received = "ticketbridge_events_received_total"
    samples = scrape(second, StubStore(EMPTY))
    assert value(samples, received, source="shop", outcome="accepted") == 0
    samples = scrape(first, StubStore(EMPTY))
    assert value(samples, received, source="shop", outcome="accepted") == 1


def test_gauges_are_read_from_the_store_at_scrape_time():
    stats = QueueStats(
        deliveries={
            ("helpdesk", DeliveryStatus.PENDING): 2,
            ("helpdesk", DeliveryStatus.DEAD): 1,
            ("helpdesk", DeliveryStatus.DONE): 7,
            ("crm", DeliveryStatus.PENDING): 1,
            ("crm", DeliveryStatus.IN_FLIGHT): 4,
        },
        unrouted=3,
        oldest_unfinished=NOW - 120,
    )
    holds = {
        "helpdesk": hold("helpdesk", HoldState.PAUSED, NOW + 60),
        "crm": hold("crm", HoldState.CIRCUIT_OPEN, NOW - 1),  # over
        "gone": hold("gone", HoldState.PAUSED, NOW + 60),  # not configured
    }
    metrics = Metrics(providers=["helpdesk", "crm", "chat"], clock=lambda: NOW)
    samples = scrape(metrics, StubStore(stats, holds))
    assert value(samples, "ticketbridge_store_up") == 1
    depth = "ticketbridge_queue_depth"
    assert value(samples, depth, status="pending") == 3
    assert value(samples, depth, status="waiting") == 0
    assert value(samples, depth, status="in_flight") == 4
    assert value(samples, depth, status="dead") == 1
    assert value(samples, depth, status="done") is None
    stored = "ticketbridge_deliveries_stored"
    assert value(samples, stored, provider="helpdesk", status="done") == 7
    assert value(samples, "ticketbridge_unrouted_events") == 3
    assert value(samples, "ticketbridge_oldest_pending_age_seconds") == 120
    paused, circuit = "ticketbridge_provider_paused", "ticketbridge_provider_circuit_open"
    assert value(samples, paused, provider="helpdesk") == 1
    assert value(samples, paused, provider="crm") == 0
    assert value(samples, paused, provider="chat") == 0
    assert value(samples, paused, provider="gone") is None
    assert value(samples, circuit, provider="crm") == 0
    assert value(samples, circuit, provider="helpdesk") == 0


def test_circuit_open_and_nothing_left_to_do():
    holds = {"crm": hold("crm", HoldState.CIRCUIT_OPEN, NOW + 5)}
    metrics = Metrics(providers=["crm"], clock=lambda: NOW)
    samples = scrape(metrics, StubStore(EMPTY, holds))
    assert value(samples, "ticketbridge_provider_circuit_open", provider="crm") == 1
    assert value(samples, "ticketbridge_provider_paused", provider="crm") == 0
    assert value(samples, "ticketbridge_oldest_pending_age_seconds") == 0


def test_a_store_that_does_not_answer_leaves_the_process_counters():
    metrics = Metrics(sources=["shop"], providers=["helpdesk"])
    metrics.received("shop", Received.UNAVAILABLE)
    samples = scrape(metrics, StubStore(None))
    assert value(samples, "ticketbridge_store_up") == 0
    received = "ticketbridge_events_received_total"
    assert value(samples, received, source="shop", outcome="unavailable") == 1
    assert not any(name == "ticketbridge_queue_depth" for name, _ in samples)


# -- GET /metrics of a real server -----------------------------------------------------------

SHOP_TOKEN = "shop-token-5e1f0a"
HELPDESK_TOKEN = "helpdesk-token-77c2"
LOCKED_TOKEN = "locked-token-0d9e"
WRONG_TOKEN = "wrong-token-a41b"

CONFIG = """
    providers:
      helpdesk:
        type: http
        url: "FAKE/tickets"
        headers: {Authorization: "Bearer ${HELPDESK_TOKEN}"}
      locked:
        type: http
        url: "FAKE/locked"
        headers: {Authorization: "Bearer ${LOCKED_TOKEN}"}
    sources:
      shop:
        verify: {type: token, location: "header:x-shop-token", values: ["${SHOP_TOKEN}"]}
        dedupe_key: body.id
    rules:
      - name: order-ticket
        source: shop
        when: {body.kind: order}
        action: create_ticket
        provider: helpdesk
        ticket: {subject: "Order {{ body.id }}"}
      - name: vip-ticket
        source: shop
        when: {body.kind: vip}
        action: create_ticket
        provider: locked
        ticket: {subject: "VIP {{ body.id }}"}
"""


@pytest.fixture
def helpdesk():
    with FakeProvider().running() as fake:
        yield fake


@pytest.fixture
def server(tmp_path, helpdesk):
    root = write_tree(
        tmp_path,
        {"rules/main.yaml": CONFIG.replace("FAKE", helpdesk.url), "templates/.keep": ""},
    )
    env = {"SHOP_TOKEN": SHOP_TOKEN, "HELPDESK_TOKEN": HELPDESK_TOKEN, "LOCKED_TOKEN": LOCKED_TOKEN}
    log = tmp_path / "server.log"
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{tmp_path / 'bridge.db'}",
        env=env,
        log=log,
    ) as url:
        yield url, log


def post(http: httpx.Client, url: str, body: dict[str, str], token: str = SHOP_TOKEN):
    return http.post(f"{url}/hooks/shop", json=body, headers={"X-Shop-Token": token})


def scrape_server(http: httpx.Client, url: str) -> Samples:
    response = http.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return parse(response.text)


def test_metrics_count_what_the_server_received_and_delivered(server, helpdesk):
    url, _ = server
    with httpx.Client(timeout=10) as http:
        assert post(http, url, {"id": "A-1", "kind": "order"}).status_code == 202
        assert post(http, url, {"id": "A-1", "kind": "order"}).status_code == 200
        assert post(http, url, {"id": "A-2", "kind": "x"}, token=WRONG_TOKEN).status_code == 401
        assert http.post(f"{url}/hooks/no-such-source", json={}).status_code == 404
        poll(lambda: helpdesk.tickets, what="the helpdesk ticket")
        done = "ticketbridge_deliveries_total"
        samples = poll(
            lambda: (
                (s := scrape_server(http, url))
                and value(s, done, provider="helpdesk", outcome="done") == 1
                and s
            ),
            what="the delivery counted",
        )
        received = "ticketbridge_events_received_total"
        assert value(samples, received, source="shop", outcome="accepted") == 1
        assert value(samples, received, source="shop", outcome="duplicate") == 1
        assert value(samples, received, source="shop", outcome="rejected") == 1
        assert value(samples, received, source="", outcome="rejected") == 1
        assert not any(dict(labels).get("source") == "no-such-source" for _, labels in samples)
        attempts = "ticketbridge_attempts_total"
        assert value(samples, attempts, provider="helpdesk", outcome="success") == 1
        latency = "ticketbridge_delivery_latency_seconds_count"
        assert value(samples, latency, provider="helpdesk") == 1
        assert value(samples, "ticketbridge_store_up") == 1
        assert value(samples, "ticketbridge_queue_depth", status="pending") == 0
        assert value(samples, "ticketbridge_provider_paused", provider="locked") == 0

        # the locked provider refuses our credentials: paused, its delivery pending
        helpdesk.answer_next(401, {"message": "bad key"})
        assert post(http, url, {"id": "V-1", "kind": "vip"}).status_code == 202
        paused = "ticketbridge_provider_paused"
        samples = poll(
            lambda: (
                (s := scrape_server(http, url)) and value(s, paused, provider="locked") == 1 and s
            ),
            what="the provider paused",
        )
        assert value(samples, attempts, provider="locked", outcome="unauthorized") == 1
        assert value(samples, paused, provider="helpdesk") == 0
        assert value(samples, "ticketbridge_queue_depth", status="pending") == 1
        assert (
            value(samples, "ticketbridge_deliveries_total", provider="locked", outcome="done") == 0
        )
        assert value(samples, "ticketbridge_oldest_pending_age_seconds") >= 0
