"""The matching rule's ticket action rendered for the event (bridge.rendering.actions:
CompiledTicket.render over the rule's context), as route_event renders it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pytest_benchmark.fixture import BenchmarkFixture

from bench.micro.workload import Product
from bench.product import PROVIDER
from bridge.rendering.actions import event_context, rule_context
from bridge.tickets import ActionKind, Contact, TicketAction
from bridge.trial import as_stored

RULE = "payment-succeeded"


def test_render_ticket(benchmark: BenchmarkFixture, product: Callable[[int], Product]) -> None:
    service = product(10).service
    (new,) = product(10).new_events(1, now=time.time())
    event = as_stored(new)
    context = event_context(event, vars=service.config.vars, now=datetime.now(UTC))
    ticket = service.rules[RULE].ticket

    def render(base: dict[str, Any]) -> TicketAction:
        return ticket.render(rule_context(base, RULE))

    action: TicketAction = benchmark(render, context)

    assert action.action is ActionKind.CREATE_TICKET and action.provider == PROVIDER
    assert action.contact == Contact(
        name="Ana Lima", email="ana.lima@example.com", identifier="cus_benchAAAAAAAA"
    )
    assert action.subject == "Payment pi_3PbenchAAAAAAAAAAAAAAAA"
    assert action.message is not None and action.message.text == "129900 clp from Ana Lima"
    assert action.metadata == {"order": "ORD-2026-000123"}
    assert action.correlate == f"bench:{event.id}"
