"""Dry runs: what would this payload do? (`ticketbridge try` and the samples of `check`)

A payload goes through the source's real parser (signature verification skipped), the real
matcher with a full trace, the real templates, and the real provider adapters, whose httpx
client answers from a recorder instead of the network, so the requests shown are exactly the
ones a delivery would send. With `send`, the adapters use the network for real.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.dispatch import Dispatch, dispatch
from bridge.providers.base import Job, Outcome, Provider
from bridge.rendering import rule_context
from bridge.service import Service
from bridge.sources.intake import REDACTED, is_secret_header
from bridge.sources.request import RawRequest
from bridge.store.base import EventStatus, NewEvent, StoredEvent


@dataclass
class Recorder:
    """Collects every request an httpx client sends; as a transport it answers what the
    provider being tried says its API would (Provider.dry_run_answer)."""

    requests: list[httpx.Request] = field(default_factory=list)
    provider: Provider | None = None

    async def on_request(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        if self.provider is None:
            return httpx.Response(200, json={"id": "dry-run"})
        return self.provider.dry_run_answer(request)

    def client(self, *, send: bool) -> httpx.AsyncClient:
        transport = None if send else httpx.MockTransport(self.answer)
        return httpx.AsyncClient(transport=transport, event_hooks={"request": [self.on_request]})


def request_json(request: httpx.Request) -> dict[str, Any]:
    body: Any = None
    if request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = request.content.decode("utf-8", "replace")
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": {
            name: REDACTED if is_secret_header(name) else value
            for name, value in request.headers.items()
        },
        "json": body,
    }


@dataclass(frozen=True, kw_only=True)
class TrialAction:
    rule: str
    provider: str
    action: dict[str, Any] | None
    error: str | None
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
        for index, rendered in enumerate(result.rendered, 1):
            requests: list[dict[str, Any]] = []
            outcome = None
            if rendered.action is not None:
                first = len(recorder.requests)
                job = Job(
                    delivery_id=f"dlv_try{index}",
                    attempt=1,
                    action=rendered.action,
                    ticket_ref=None,
                    ticket_open=None,
                    context=rule_context(result.context, rendered.rule),
                )
                recorder.provider = service.providers[rendered.provider]
                outcome = await recorder.provider.deliver(job)
                requests = [request_json(r) for r in recorder.requests[first:]]
            actions.append(
                TrialAction(
                    rule=rendered.rule,
                    provider=rendered.provider,
                    action=rendered.action.to_json() if rendered.action else None,
                    error=str(rendered.error) if rendered.error else None,
                    requests=requests,
                    outcome=outcome,
                )
            )
        trials.append(Trial(event=event, dispatch=result, actions=actions))
    return trials
