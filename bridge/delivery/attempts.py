"""One attempt at a delivery, without I/O: the job to hand the adapter, and what the adapter's
outcome means for the delivery and its provider (DESIGN §3.2).

    claim --prepare--> Job | Outcome (nothing to send)
    outcome --decide--> AttemptResult (done, skipped, pending to retry, dead; on a 401/403
                        pending with a pause of the provider, written with the attempt)
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

from bridge.config import Config, RetryPolicy
from bridge.delivery.retry import next_attempt_at
from bridge.providers.base import Job, Outcome, OutcomeKind
from bridge.records import Attempt, AttemptResult, Claim, DeliveryStatus, HoldState, ProviderHold
from bridge.rendering.actions import event_context, rule_context
from bridge.tickets import ActionKind, OnExisting, OnMissing, TicketRef

INTERRUPTED = "interrupted"  # the outcome logged for an attempt cut short by a shutdown


def prepare(
    claim: Claim, *, config: Config, now: float, with_context: bool = False
) -> Job | Outcome:
    """The job for the adapter, or the outcome when there is nothing to send. The event's
    payload is parsed into the job's template context only `with_context` (a provider that
    renders templates when it delivers): the routing step has parsed it already."""
    delivery = claim.delivery
    if delivery.provider not in config.providers:
        return Outcome(
            kind=OutcomeKind.PERMANENT,
            message=f"provider {delivery.provider!r} is not configured any more",
        )
    if delivery.action is None:
        return Outcome(kind=OutcomeKind.PERMANENT, message="the delivery has no action")
    action = delivery.action
    if action.action is ActionKind.CREATE_TICKET and claim.ticket_open:
        if action.on_existing is OnExisting.SKIP:
            return Outcome(
                kind=OutcomeKind.SKIPPED, message="a ticket is already open for this correlate key"
            )
        if action.on_existing is OnExisting.UPDATE:
            # the open ticket is updated; if the helpdesk closed or lost it meanwhile, the
            # adapter creates one after all, as the rule asked
            action = replace(action, action=ActionKind.UPDATE_TICKET, on_missing=OnMissing.CREATE)
    context = {}
    if with_context:
        if claim.event is None:  # its provider came to render by a reload after the claim
            return Outcome(kind=OutcomeKind.RETRYABLE, message="claimed without its event")
        at = datetime.fromtimestamp(now, UTC)
        context = rule_context(event_context(claim.event, vars=config.vars, now=at), delivery.rule)
    return Job(
        delivery_id=delivery.id,
        attempt=delivery.attempts + 1,
        action=action,
        ticket_ref=TicketRef.from_json(claim.ticket_ref) if claim.ticket_ref else None,
        ticket_open=claim.ticket_open,
        event_id=delivery.event_id,
        context=context,
    )


def decide(
    claim: Claim,
    outcome: Outcome,
    *,
    config: Config,
    started: float,
    now: float,
    rng: random.Random,
) -> AttemptResult:
    delivery = claim.delivery
    attempt = Attempt(
        delivery_id=delivery.id,
        number=delivery.attempts + 1,
        started_at=started,
        duration=now - started,
        outcome=outcome.kind.value,
        status_code=outcome.status_code,
        error=outcome.message or None,
        response_excerpt=outcome.response_excerpt,
    )
    kind = outcome.kind
    if kind is OutcomeKind.SUCCESS:
        ticket_ref = outcome.ticket_ref.to_json() if outcome.ticket_ref else None
        return AttemptResult(
            attempt=attempt,
            status=DeliveryStatus.DONE,
            ticket_ref=ticket_ref,
            ticket_open=outcome.ticket_open,
        )
    if kind is OutcomeKind.SKIPPED:
        return _final(attempt, DeliveryStatus.SKIPPED, outcome.message)
    policy = _policy(config, delivery.provider)
    if kind is OutcomeKind.UNAUTHORIZED:
        # the credentials are wrong for every delivery of the provider: pause it rather than
        # spend this delivery's tries; it goes again when the pause ends
        hold = ProviderHold(
            provider=delivery.provider,
            state=HoldState.PAUSED,
            since=now,
            until=now + policy.auth_pause,
            reason=f"{outcome.message} (delivery {delivery.id})",
        )
        return AttemptResult(
            attempt=attempt,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            last_error=outcome.message,
            spends_try=False,
            hold=hold,
        )
    if kind is OutcomeKind.RETRYABLE:
        tries = delivery.tries + 1
        at = next_attempt_at(
            tries=tries,
            queued_at=delivery.queued_at,
            now=now,
            policy=policy,
            retry_after=outcome.retry_after,
            rng=rng,
        )
        if at is None:
            return _final(
                attempt, DeliveryStatus.DEAD, f"gave up after {tries} tries: {outcome.message}"
            )
        return AttemptResult(
            attempt=attempt,
            status=DeliveryStatus.PENDING,
            next_attempt_at=at,
            last_error=outcome.message,
        )
    return _final(attempt, DeliveryStatus.DEAD, outcome.message)


def interrupted(claim: Claim, *, started: float, now: float) -> AttemptResult:
    """An attempt cut short by a shutdown: the delivery goes again at once, no try spent.
    The provider may have received the call; see the README on the one repeat window."""
    message = "interrupted by a shutdown before the provider answered"
    return AttemptResult(
        attempt=Attempt(
            delivery_id=claim.delivery.id,
            number=claim.delivery.attempts + 1,
            started_at=started,
            duration=now - started,
            outcome=INTERRUPTED,
            error=message,
        ),
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        last_error=message,
        spends_try=False,
    )


def _final(attempt: Attempt, status: DeliveryStatus, message: str) -> AttemptResult:
    return AttemptResult(attempt=attempt, status=status, last_error=message)


def _policy(config: Config, provider: str) -> RetryPolicy:
    found = config.providers.get(provider)
    return found.retry if found else config.defaults.retry
