"""The load's body: a 2,159-byte Stripe-like JSON event, signed the way GitHub signs
(`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, the `github` preset).

The signature is made by bridge/sources/signing.py through the configured source's own
verifier, so what the load sends is what the product checks. GitHub signs only the body, so
one signature serves every request; the delivery id varies per request (in the wrk script).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

SIZE = 2159
SECRET = "bench-webhook-secret"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"
SOURCE = "bench"
EVENT_TYPE = "payment_intent.succeeded"


def body(size: int = SIZE) -> bytes:
    """A Stripe-like event of exactly `size` bytes (compact JSON, padded in `description`)."""
    event = {
        "id": "evt_3PbenchAAAAAAAAAAAAAAAA",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1732219867,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_benchAAAAAAAA", "idempotency_key": "bench-key-0001"},
        "type": EVENT_TYPE,
        "data": {
            "object": {
                "id": "pi_3PbenchAAAAAAAAAAAAAAAA",
                "object": "payment_intent",
                "amount": 129900,
                "amount_received": 129900,
                "currency": "clp",
                "customer": "cus_benchAAAAAAAA",
                "receipt_email": "ana.lima@example.com",
                "status": "succeeded",
                "payment_method_types": ["card"],
                "billing_details": {
                    "name": "Ana Lima",
                    "email": "ana.lima@example.com",
                    "phone": "+56 9 1234 5678",
                    "address": {
                        "city": "Santiago",
                        "country": "CL",
                        "line1": "Av. Providencia 1234",
                        "line2": "Depto 56",
                        "postal_code": "7500000",
                        "state": "RM",
                    },
                },
                "metadata": {"order_id": "ORD-2026-000123", "channel": "web"},
                "charges": {"object": "list", "has_more": False, "total_count": 1},
                "description": "",
            }
        },
    }
    compact = json.dumps(event, separators=(",", ":")).encode()
    pad = size - len(compact)
    if pad < 0:
        raise ValueError(f"the event is already {len(compact)} bytes, over {size}")
    event["data"]["object"]["description"] = "x" * pad  # type: ignore[index]
    data = json.dumps(event, separators=(",", ":")).encode()
    assert len(data) == size
    return data


def signed_headers(rules: Path, templates: Path, data: bytes) -> dict[str, str]:
    """The headers the `bench` source's sender sends with `data`, signature included
    (without the per-request delivery id, which the load sets)."""
    return signer(rules, templates)(data)


def signer(rules: Path, templates: Path) -> Callable[[bytes], dict[str, str]]:
    """What signs a body as the `bench` source's sender does (its headers, without the
    delivery id), through the configured source's own verifier."""
    from bridge.service import load_service
    from bridge.sources.intake import dedupe_key_of
    from bridge.sources.signing import sender_request

    service = load_service(rules, templates, {SECRET_ENV: SECRET}, httpx.AsyncClient())
    source = service.sources[SOURCE]

    def sign(data: bytes) -> dict[str, str]:
        request = sender_request(
            source.verifier,
            url=f"http://127.0.0.1/hooks/{SOURCE}",
            body=data,
            headers={"x-github-delivery": "set-per-request"},
            body_setting=source.config.body,
            dedupe_key=dedupe_key_of(source.config),
            now=0.0,
            new_id=lambda: "unused",
        )
        headers = request.headers.items()
        return {name: value for name, value in headers if name != "x-github-delivery"}

    return sign
