"""Dry runs: what would this payload do? (`ticketbridge try` and the samples of `check`)

A payload goes through the source's real parser (signature verification skipped), the real
matcher with a full trace, the real templates, and the real provider adapters, whose httpx
client (bridge.recorder) answers from each provider's stub helpdesk instead of the network:
a helpdesk that has never seen the customer, so the requests shown are the ones a first
delivery sends, in its order, each with the stubbed answer it got. With `send`, the adapters
use the network for real. Each action gets a fresh delivery id (`dlv_try_...`, made like the
worker's), so a helpdesk that honours the http provider's Idempotency-Key takes every
`try --send` as new.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.delivery.dispatch import Dispatch, dispatch
from bridge.ids import new_id
from bridge.providers.base import Job, Outcome
from bridge.recorder import Recorder
from bridge.records import EventStatus, NewEvent, StoredEvent
from bridge.rendering.actions import rule_context
from bridge.service import Service
from bridge.sources.request import RawRequest

#: the prefix of a trial's delivery ids: dlv_try_<time><random>, unique on every run
DELIVERY_PREFIX = "dlv_try"


@dataclass(frozen=True, kw_only=True)
class TrialAction:
    rule: str
    provider: str
    action: dict[str, Any] | None
    error: str | None
    delivery_id: str | None
    requests: list[dict[str, Any]]
    outcome: Outcome | None


@dataclass(frozen=True, kw_only=True)
class Trial:
    event: StoredEvent
    dispatch: Dispatch
    actions: list[TrialAction]

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": list(self.dispatch.match.matched),
            "trace": [entry.to_json() for entry in self.dispatch.match.trace],
            "actions": [
                {
                    "rule": a.rule,
                    "provider": a.provider,
                    "action": a.action["action"] if a.action else None,
                    "ticket": a.action,
                    "error": a.error,
                    "delivery_id": a.delivery_id,
                    "requests": a.requests,
                    **(
                        {"outcome": {"kind": a.outcome.kind.value, "message": a.outcome.message}}
                        if a.outcome
                        else {}
                    ),
                }
                for a in self.actions
            ],
        }


def as_stored(event: NewEvent) -> StoredEvent:
    return StoredEvent(
        id=event.id,
        source=event.source,
        received_at=event.received_at,
        headers=event.headers,
        query=event.query,
        payload=event.payload,
        content_type=event.content_type,
        dedupe_key=event.dedupe_key,
        status=EventStatus.ACCEPTED,
    )


async def run_trial(
    service: Service,
    source: str,
    request: RawRequest,
    *,
    recorder: Recorder,
    clock: Callable[[], float] = time.time,
) -> list[Trial]:
    """One Trial per event the request makes (several for a split batch). RejectedRequest
    propagates when the payload would be refused; KeyError for an unknown source."""
    now = clock()
    counter = itertools.count(1)
    intake = service.sources[source].intake(
        request, now=now, new_id=lambda: f"evt_try{next(counter)}", verify=False
    )
    trials = []
    for event in map(as_stored, intake.events):
        result = dispatch(service, event, now=now, full_trace=True)
        actions = []
        for rendered in result.rendered:
            requests: list[dict[str, Any]] = []
            outcome = None
            delivery_id = None
            if rendered.action is not None:
                delivery_id = new_id(DELIVERY_PREFIX, now=now)
                job = Job(
                    delivery_id=delivery_id,
                    attempt=1,
                    action=rendered.action,
                    ticket_ref=None,
                    ticket_open=None,
                    event_id=event.id,
                    context=rule_context(result.context, rendered.rule),
                )
                provider = service.providers[rendered.provider]
                recorder.begin(provider)
                outcome = await provider.deliver(job)
                requests = recorder.delivery(failure=outcome.message or None)
            actions.append(
                TrialAction(
                    rule=rendered.rule,
                    provider=rendered.provider,
                    action=rendered.action.to_json() if rendered.action else None,
                    error=str(rendered.error) if rendered.error else None,
                    delivery_id=delivery_id,
                    requests=requests,
                    outcome=outcome,
                )
            )
        trials.append(Trial(event=event, dispatch=result, actions=actions))
    return trials
