"""Known senders, written down as data: each preset is the `hmac` parameters the sender
signs with (DESIGN §2.2) and the dedupe key its retries share. Facts, sources and test
vectors: sources.md §1-§15 and §20.

A source's `verify` mapping is laid over its preset key by key, so any parameter can be
overridden next to `preset:`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Preset:
    verify: Mapping[str, Any]
    dedupe_key: str | None = None  # a path, or a template when it holds "{{"


# Stripe's own library checks only the past; ours checks both directions (DESIGN §8).
_T_V1 = {"format": "kv", "timestamp_key": "t", "signature_keys": ["v1"], "encoding": "hex"}

PRESETS: Mapping[str, Preset] = {
    "stripe": Preset(
        verify={**_T_V1, "header": "Stripe-Signature", "message": "{timestamp}.{body}"},
        dedupe_key="body.id",
    ),
    "github": Preset(
        verify={"header": "X-Hub-Signature-256", "prefix": "sha256=", "encoding": "hex"},
        dedupe_key="headers.x-github-delivery",
    ),
    "shopify": Preset(
        verify={"header": "X-Shopify-Hmac-Sha256", "encoding": "base64"},
        dedupe_key="headers.x-shopify-event-id",
    ),
    "typeform": Preset(
        verify={"header": "Typeform-Signature", "prefix": "sha256=", "encoding": "base64"},
        dedupe_key="body.event_id",
    ),
    "tally": Preset(
        verify={"header": "Tally-Signature", "encoding": "base64"},
        dedupe_key="body.eventId",
    ),
    "calendly": Preset(
        verify={
            **_T_V1,
            "header": "Calendly-Webhook-Signature",
            "message": "{timestamp}.{body}",
            "tolerance": 180,
        },
    ),
    "formspree": Preset(
        verify={**_T_V1, "header": "Formspree-Signature", "message": "{timestamp}.{body}"},
    ),
    "paddle": Preset(
        verify={
            "header": "Paddle-Signature",
            "format": "kv",
            "pair_sep": ";",
            "timestamp_key": "ts",
            "signature_keys": ["h1"],
            "message": "{timestamp}:{body}",
            "encoding": "hex",
            "tolerance": 5,  # Paddle's SDKs allow 5 s
        },
        dedupe_key="body.event_id",
    ),
    "slack": Preset(
        verify={
            "header": "X-Slack-Signature",
            "prefix": "v0=",
            "timestamp_header": "X-Slack-Request-Timestamp",
            "message": "v0:{timestamp}:{body}",
            "encoding": "hex",
        },
    ),
    "webflow": Preset(
        verify={
            "header": "X-Webflow-Signature",
            "timestamp_header": "X-Webflow-Timestamp",
            "timestamp_unit": "ms",
            "message": "{timestamp}:{body}",
            "encoding": "hex",
        },
        dedupe_key="body.payload.id",
    ),
    "hubspot-v3": Preset(
        verify={
            "header": "X-HubSpot-Signature-v3",
            "timestamp_header": "X-HubSpot-Request-Timestamp",
            "timestamp_unit": "ms",
            "message": "{method}{url}{body}{timestamp}",
            "encoding": "base64",
        },
        dedupe_key="body.eventId",  # per element of the batch (split: true)
    ),
    "mercadopago": Preset(
        verify={
            **_T_V1,
            "header": "x-signature",
            "timestamp_key": "ts",
            "message": "id:{query:data.id|lower};request-id:{header:x-request-id};ts:{timestamp};",
            # Mercado Pago publishes no window and may keep `ts` across its retries (hours
            # apart): off by default so retries are not refused; set `tolerance` to enforce one
            "tolerance": 0,
        },
        dedupe_key="body.id",
    ),
    "standard": Preset(
        verify={
            "header": ["webhook-signature", "svix-signature"],
            "format": "kv",
            "pair_sep": " ",
            "kv_sep": ",",
            "signature_keys": ["v1"],
            "timestamp_header": ["webhook-timestamp", "svix-timestamp"],
            "message": "{header:webhook-id|svix-id}.{timestamp}.{body}",
            "encoding": "base64",
            "secret_encoding": "whsec_base64",
        },
        dedupe_key="{{ headers.get('webhook-id') or headers.get('svix-id') or '' }}",
    ),
}


def expand(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A `verify` mapping with its preset's parameters filled in (an `hmac` unless it says
    otherwise); ValueError for an unknown preset."""
    name = settings.get("preset")
    if name is None:
        return dict(settings)
    preset = PRESETS.get(str(name))
    if preset is None:
        raise ValueError(f"unknown preset {name!r}; use one of: {', '.join(sorted(PRESETS))}")
    if settings.get("type", "hmac") != "hmac":
        raise ValueError(f"preset {name!r} is an hmac scheme; drop `type` or make it hmac")
    own = {key: value for key, value in settings.items() if key != "preset"}
    return {"type": "hmac", **preset.verify, **own}


def default_dedupe_key(settings: Mapping[str, Any]) -> str | None:
    preset = PRESETS.get(str(settings.get("preset")))
    return preset.dedupe_key if preset else None
