"""How stored things are shown: the event detail of DESIGN §4.1, as JSON and as text.

Used by `ticketbridge show` and `events` (and the admin API later), so what a user sees is
the same everywhere. Headers are redacted again on the way out and configured secrets masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bridge.records import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EventDetail,
    HoldState,
    ProviderHold,
    StoredEvent,
)
from bridge.redaction import mask, redact_headers
from bridge.times import hold_until, iso


def hold_json(hold: ProviderHold | None) -> dict[str, Any]:
    """A provider's state, the same in every admin answer; `hold` None (or over) is active."""
    if hold is None:
        return {"state": "active", "since": None, "until": None, "reason": None}
    return {
        "state": hold.state.value,
        "since": iso(hold.since),
        "until": hold_until(hold),
        "reason": hold.reason,
    }


def retry_refusal(delivery: Delivery) -> str:
    """Why `delivery` cannot be retried: only a dead, skipped or cancelled one can."""
    if delivery.status is DeliveryStatus.DONE:
        why_not = "it was delivered, and sending it again would make a second ticket"
    else:
        why_not = f"it is still {delivery.status.value} and will be sent without a retry"
    return (
        f"delivery {delivery.id} cannot be retried: {why_not}; "
        "only a dead, skipped or cancelled delivery can be retried"
    )


def _body(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "at": iso(attempt.started_at),
        "duration_ms": round(attempt.duration * 1000, 1),
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response": attempt.response_excerpt,
    }


def why(delivery: Delivery, hold: ProviderHold | None, *, now: float) -> str:
    """One sentence on where a delivery stands and why: waiting, paused, retrying, dead."""
    status = delivery.status
    if status is DeliveryStatus.WAITING:
        return (
            f"waiting for {delivery.blocked_by}, an earlier action for the same ticket "
            f"(correlate {delivery.correlate!r}), to finish"
        )
    if status is DeliveryStatus.PENDING and hold is not None and hold.until > now:
        if hold.state is HoldState.PAUSED:
            ends = f"it resumes at {iso(hold.until)}, or" if not hold.until_resumed else "resume it"
            return (
                f"provider {hold.provider} is paused since {iso(hold.since)}: {hold.reason}; "
                f"{ends} now with `ticketbridge resume {hold.provider}`"
            )
        return f"provider {hold.provider}'s circuit is open until {iso(hold.until)}: {hold.reason}"
    if status is DeliveryStatus.PENDING and delivery.folded and not delivery.attempts:
        return (
            f"a note folding {len(delivery.folded)} events for the same ticket, sent when "
            f"its window closes at {iso(delivery.next_attempt_at)}"
        )
    if status is DeliveryStatus.PENDING and delivery.attempts:
        return (
            f"retrying: attempt {delivery.attempts} failed ({delivery.last_error}); "
            f"next attempt at {iso(delivery.next_attempt_at)}"
        )
    if status is DeliveryStatus.PENDING:
        return f"queued for its first attempt at {iso(delivery.next_attempt_at)}"
    if status is DeliveryStatus.IN_FLIGHT:
        return "being delivered now"
    if status is DeliveryStatus.DONE:
        return "delivered"
    return f"{status.value}: {delivery.last_error or 'no reason recorded'}"


def delivery_json(
    delivery: Delivery, hold: ProviderHold | None = None, *, now: float
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "rule": delivery.rule,
        "provider": delivery.provider,
        "action": delivery.action.to_json() if delivery.action else None,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_error": delivery.last_error,
        "ticket_ref": delivery.ticket_ref,
        "waiting_for": delivery.blocked_by,
        "moved_from": delivery.moved_from,
        "folded": list(delivery.folded),
        "folded_into": delivery.folded_into,
        "reason": why(delivery, hold, now=now),
        "attempt_log": [attempt_json(a) for a in delivery.attempt_log],
    }


def event_summary_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "received_at": iso(event.received_at),
        "status": event.status.value,
        "dedupe_key": event.dedupe_key,
        "matched_rules": list(event.matched_rules),
    }


def event_detail_json(detail: EventDetail, *, now: float) -> dict[str, Any]:
    event = detail.event
    return {
        **event_summary_json(event),
        "headers": redact_headers(event.headers.items()),
        "query": dict(event.query),
        "body": _body(event.payload),
        "trace": list(event.trace),
        "deliveries": [
            delivery_json(d, detail.holds.get(d.provider), now=now) for d in detail.deliveries
        ],
    }


def dumps(data: Any, secrets: Iterable[str]) -> str:
    return mask(json.dumps(data, indent=2, ensure_ascii=False), secrets)


def describe_failure(failed: dict[str, Any] | None) -> str:
    if not failed:
        return ""
    actual = (
        "absent" if failed.get("absent") else json.dumps(failed.get("actual"), ensure_ascii=False)
    )
    expected = json.dumps(failed.get("expected"), ensure_ascii=False)
    return f"{failed.get('path')} {failed.get('op')} {expected}, saw {actual}"


def trace_lines(trace: Iterable[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in trace:
        mark = "matched" if entry.get("matched") else "no"
        reason = describe_failure(entry.get("failed")) or entry.get("note") or ""
        lines.append(f"  {mark:>7}  {entry.get('rule')}" + (f"  ({reason})" if reason else ""))
    return lines


def event_detail_text(detail: EventDetail, *, now: float) -> str:
    data = event_detail_json(detail, now=now)
    lines = [
        f"event     {data['id']}",
        f"source    {data['source']}",
        f"received  {data['received_at']}",
        f"status    {data['status']}",
        f"dedupe    {data['dedupe_key'] or '-'}",
        f"matched   {', '.join(data['matched_rules']) or '-'}",
    ]
    if data["trace"]:
        lines.append("trace")
        lines.extend(trace_lines(data["trace"]))
    for d in data["deliveries"]:
        lines.append(
            f"delivery  {d['id']}  rule={d['rule']} provider={d['provider']} "
            f"status={d['status']} attempts={d['attempts']}"
        )
        lines.append(f"          {d['reason']}")
        if d["action"]:
            lines.append("          action:")
            rendered = json.dumps(d["action"], indent=2, ensure_ascii=False)
            lines.extend(f"            {line}" for line in rendered.splitlines())
        if d["ticket_ref"]:
            lines.append(f"          ticket: {json.dumps(d['ticket_ref'])}")
        for a in d["attempt_log"]:
            code = a["status_code"] if a["status_code"] is not None else "-"
            lines.append(
                f"          #{a['number']} {a['at']} {a['outcome']} http={code} "
                f"{a['duration_ms']}ms" + (f" {a['error']}" if a["error"] else "")
            )
    return "\n".join(lines)
