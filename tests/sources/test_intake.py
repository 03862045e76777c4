"""A configured source end to end without a server: verify, parse, redact, dedupe key."""

# ruff: noqa: E501 - expected messages are kept whole, as `check` prints them

import base64
import hmac
import json
import os

import httpx
import pytest

from bridge.config.validation import load_schema
from bridge.exceptions import ConfigError, RejectedRequest
from bridge.service import load_service
from bridge.sources.presets import PRESETS
from bridge.sources.request import RawRequest
from tests.helpers import write_tree

NOW = 1_700_000_000.0

SOURCES = """
    sources:
      stripe: {verify: {preset: stripe, secrets: [whsec_a]}}
      stripe-own-key: {verify: {preset: stripe, secrets: [whsec_a]}, dedupe_key: body.data.id}
      github: {verify: {preset: github, secrets: [gh]}}
      standard: {verify: {preset: standard, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}
      hubspot: {verify: {preset: hubspot-v3, secrets: [hs]}, split: true}
      slack: {verify: {preset: slack, secrets: [sl]}}
      form-token:
        verify: {type: token, location: "form:secret", values: [s3cret-form-token]}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = write_tree(
        tmp_path_factory.mktemp("intake"),
        {"rules/sources.yaml": SOURCES, "templates/.keep": ""},
    )
    return load_service(root / "rules", root / "templates", os.environ, httpx.AsyncClient())


def take(service, source, body, headers=None, url=None):
    request = RawRequest(
        method="POST",
        url=url or f"http://127.0.0.1/hooks/{source}",
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query=(),
        body=body,
    )
    counter = iter(range(1, 100))
    intake = service.sources[source].intake(request, now=NOW, new_id=lambda: f"evt_{next(counter)}")
    return intake.events


def hex_hmac(key: bytes, message: bytes, digest="sha256") -> str:
    return hmac.new(key, message, digest).hexdigest()


def stripe_headers(body: bytes) -> dict:
    t = str(int(NOW))
    return {"Stripe-Signature": f"t={t},v1={hex_hmac(b'whsec_a', t.encode() + b'.' + body)}"}


def test_stripe_preset_dedupes_on_the_event_id_unless_the_source_says_otherwise(service):
    body = json.dumps({"id": "evt_1", "data": {"id": "obj_9"}}).encode()
    [event] = take(service, "stripe", body, stripe_headers(body))
    assert event.dedupe_key == "evt_1"
    [own] = take(service, "stripe-own-key", body, stripe_headers(body))
    assert own.dedupe_key == "obj_9"


def test_github_preset_dedupes_on_the_delivery_header_and_redacts_the_signature(service):
    body = b'{"action":"opened"}'
    headers = {
        "X-Hub-Signature-256": "sha256=" + hex_hmac(b"gh", body),
        "X-GitHub-Delivery": "72d3162e",
    }
    [event] = take(service, "github", body, headers)
    assert event.dedupe_key == "72d3162e"
    assert event.headers["x-hub-signature-256"] == "[redacted]"


@pytest.mark.parametrize("prefix", ["webhook-", "svix-"])
def test_standard_preset_dedupes_on_the_message_id_under_either_header_family(service, prefix):
    body = b'{"test": 2432232314}'
    headers = {
        f"{prefix}id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        f"{prefix}timestamp": "1700000000",
    }
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = b"msg_p5jXN8AQM9LWM0D4loKWxJek.1700000000." + body
    signature = base64.b64encode(hmac.digest(key, signed, "sha256")).decode()
    headers[f"{prefix}signature"] = f"v1,{signature}"
    [event] = take(service, "standard", body, headers)
    assert event.dedupe_key == "msg_p5jXN8AQM9LWM0D4loKWxJek"


def test_hubspot_batch_splits_with_a_key_per_element(service):
    body = b'[{"eventId":1,"subscriptionType":"a"},{"eventId":2,"subscriptionType":"b"}]'
    url = "http://127.0.0.1/hooks/hubspot"
    ts = str(int(NOW * 1000))
    message = b"POST" + url.encode() + body + ts.encode()
    signature = base64.b64encode(hmac.digest(b"hs", message, "sha256")).decode()
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts}
    events = take(service, "hubspot", body, headers, url=url)
    assert [e.dedupe_key for e in events] == ["1", "2"]
    assert [json.loads(e.payload)["subscriptionType"] for e in events] == ["a", "b"]


def test_preset_without_a_default_key_dedupes_nothing(service):
    body = b"command=%2Fhelp"
    ts = str(int(NOW))
    headers = {
        "X-Slack-Signature": "v0=" + hex_hmac(b"sl", f"v0:{ts}:".encode() + body),
        "X-Slack-Request-Timestamp": ts,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    [event] = take(service, "slack", body, headers)
    assert event.dedupe_key is None
    assert json.loads(event.payload) == {"command": "/help"}


def test_a_form_token_is_checked_then_redacted_from_what_is_stored(service):
    body = b"name=Ana&secret=s3cret-form-token&tag=a&tag=b"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    [event] = take(service, "form-token", body, headers)
    assert json.loads(event.payload) == {"name": "Ana", "secret": "[redacted]", "tag": ["a", "b"]}
    assert event.raw is None
    with pytest.raises(RejectedRequest) as caught:
        take(service, "form-token", b"name=Ana&secret=nope", headers)
    assert (caught.value.status, caught.value.detail) == (401, "token did not match")


def test_the_schema_lists_exactly_the_presets():
    verify = load_schema()["$defs"]["verify"]["properties"]
    assert verify["preset"]["enum"] == sorted(PRESETS)


def config_problems(tmp_path, text):
    root = write_tree(tmp_path, {"rules/main.yaml": text, "templates/.keep": ""})
    with pytest.raises(ConfigError) as caught:
        load_service(root / "rules", root / "templates", {}, httpx.AsyncClient())
    return [str(p).replace(str(tmp_path), "<tmp>") for p in caught.value.problems]


def test_verify_mistakes_found_by_the_schema(tmp_path):
    found = config_problems(
        tmp_path,
        """
        sources:
          a: {verify: {preset: github, secrets: ["${GH_SECRET:-}"]}}
          b: {verify: {preset: stripe, secrets: [x], tolerence: 10}}
          d: {verify: {preset: strype, secrets: [x]}}
        """,
    )
    assert found == [
        "<tmp>/rules/main.yaml:2: sources.a.verify.secrets: no secret left after dropping empty values: a verifier must never accept everything",
        "<tmp>/rules/main.yaml:3: sources.b.verify.tolerence: unknown key 'tolerence' (did you mean 'tolerance'?)",
        "<tmp>/rules/main.yaml:4: sources.d.verify.preset: 'strype' is not one of calendly, formspree, github, hubspot-v3, mercadopago, paddle, shopify, slack, standard, stripe, tally, typeform, webflow",
    ]


def test_verify_mistakes_found_when_compiling(tmp_path):
    found = config_problems(
        tmp_path,
        """
        defaults:
          trusted_proxies: ["10.0.0.0/8", "10.0.0.300"]
        sources:
          c: {verify: {type: hmac, header: X-Sig, secrets: [x], message: "{body}{nonce}"}}
          e: {verify: {type: hmac, header: X-Sig, secrets: [x], message: "{timestamp}.{body}"}}
        """,
    )
    assert found == [
        "<tmp>/rules/main.yaml:2: defaults.trusted_proxies[1]: '10.0.0.300' is not an IP address or network",
        "<tmp>/rules/main.yaml:4: sources.c.verify: message: unknown placeholder {nonce}; use {body}, {timestamp}, {method}, {url}, {header:NAME}, {query:NAME} or {query:NAME|lower}",
        "<tmp>/rules/main.yaml:5: sources.e.verify: message uses {timestamp} but no timestamp_header or timestamp_key",
    ]
