"""The worker's routing step, pure: a stored event -> its context, the matching rules, the
deliveries (bridge.delivery.dispatch.route_event: match, then render each matched rule).

The configuration is bench/product.py's: 10 or 10,000 rules on the `bench` source, only the
last of which matches the load's body, so a linear scan pays for every rule; DESIGN §7 wants
10,000 rules to cost at most twice what 10 cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.micro.workload import Product
from bench.payload import EVENT_TYPE, SOURCE
from bench.product import PROVIDER
from bridge.delivery.dispatch import route_event
from bridge.ids import new_id
from bridge.records import DeliveryStatus, Routing, StoredEvent
from bridge.rendering.actions import event_context
from bridge.routing.matcher import MatchResult
from bridge.trial import as_stored

MATCHING_RULE = "payment-succeeded"  # the last rule of bench/product.py's rules_yaml


def the_event(product: Product) -> StoredEvent:
    (event,) = product.new_events(1, now=time.time())
    return as_stored(event)


def test_event_context(benchmark: BenchmarkFixture, product: Callable[[int], Product]) -> None:
    """What templates and conditions see of the event: its payload parsed again."""
    service = product(10).service
    event = the_event(product(10))
    now = datetime.now(UTC)
    context = benchmark(event_context, event, vars=service.config.vars, now=now)

    assert context["body"]["type"] == EVENT_TYPE and context["source"] == SOURCE
    assert context["event"]["id"] == event.id and context["now"] == now


@pytest.mark.parametrize("rules", [10, 10_000])
def test_match(benchmark: BenchmarkFixture, product: Callable[[int], Product], rules: int) -> None:
    service = product(rules).service
    event = the_event(product(rules))
    context = event_context(event, vars=service.config.vars, now=datetime.now(UTC))
    result: MatchResult = benchmark(service.matcher.match, SOURCE, context)

    assert result.matched == (MATCHING_RULE,)
    body = dict(context["body"], type="bench.unmatched.3")
    assert service.matcher.match(SOURCE, {**context, "body": body}).matched == ("unmatched-3",)


@pytest.mark.parametrize("rules", [10, 10_000])
def test_route_event(
    benchmark: BenchmarkFixture, product: Callable[[int], Product], rules: int
) -> None:
    service = product(rules).service
    event = the_event(product(rules))
    routing: Routing = benchmark(
        route_event, service, event, now=time.time(), new_id=partial(new_id, "dlv")
    )

    assert routing.event_id == event.id and routing.matched_rules == (MATCHING_RULE,)
    (delivery,) = routing.deliveries
    assert delivery.status is DeliveryStatus.PENDING and delivery.provider == PROVIDER
    assert delivery.correlate == f"bench:{event.id}" and delivery.last_error is None
    assert delivery.action is not None
    assert delivery.action.subject == "Payment pi_3PbenchAAAAAAAAAAAAAAAA"
