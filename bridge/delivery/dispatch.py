"""The routing step (DESIGN §3.1b), pure: a stored event -> matched rules, trace, deliveries.

A rule whose ticket fails to render still gets a delivery, stored dead with the template,
line and message, so the event is never lost and can be replayed once the template is fixed.
The message is stored with every configured secret masked, as a provider's answer is: it may
quote a value of the event, and `show`, the admin and `replay` print it as stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.exceptions import RenderError
from bridge.records import DeliveryStatus, NewDelivery, Routing, StoredEvent
from bridge.redaction import mask
from bridge.rendering.actions import event_context, rule_context
from bridge.routing.matcher import MatchResult
from bridge.service import Service
from bridge.tickets import TicketAction


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """One matched rule's outcome: the action, or why it could not be rendered."""

    rule: str
    provider: str
    action: TicketAction | None
    error: RenderError | None


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    context: dict[str, Any]  # the event's template context (without `rule`)
    match: MatchResult
    rendered: tuple[Rendered, ...]


def dispatch(
    service: Service, event: StoredEvent, *, now: float, full_trace: bool = False
) -> Dispatch:
    """Match the event against its source's rules and render every matching rule's action."""
    context = event_context(event, vars=service.config.vars, now=datetime.fromtimestamp(now, UTC))
    match = service.matcher.match(event.source, context, full_trace=full_trace)
    rendered = []
    for name in match.matched:
        rule = service.rules[name]
        try:
            action: TicketAction | None = rule.ticket.render(rule_context(context, name))
            error = None
        except RenderError as exc:
            action, error = None, exc
        rendered.append(
            Rendered(rule=name, provider=rule.config.provider, action=action, error=error)
        )
    return Dispatch(context=context, match=match, rendered=tuple(rendered))


def route_event(
    service: Service, event: StoredEvent, *, now: float, new_id: Callable[[], str]
) -> Routing:
    result = dispatch(service, event, now=now)
    deliveries = [
        NewDelivery(
            id=new_id(),
            event_id=event.id,
            rule=r.rule,
            provider=r.provider,
            action=r.action,
            correlate=r.action.correlate if r.action else None,
            status=DeliveryStatus.PENDING if r.action else DeliveryStatus.DEAD,
            last_error=mask(str(r.error), service.config.secrets) if r.error else None,
            fold=service.rules[r.rule].config.fold,
        )
        for r in result.rendered
    ]
    return Routing(
        event_id=event.id,
        matched_rules=result.match.matched,
        trace=[entry.to_json() for entry in result.match.trace],
        deliveries=deliveries,
    )
