"""Real senders' requests (sources.md §17 fixtures) through a real server: verify, parse, store.

One server holds every source; each test uses its own event ids so the tests do not depend on
each other's order. The server trusts X-Forwarded-* from 127.0.0.1 only; a client bound to
127.0.0.2 plays an untrusted peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import httpx
import pytest

from tests.helpers import poll, running_server, show_event, write_tree

STRIPE_SECRET = "whsec_test_secret"
STRIPE_OTHER_SECRET = "whsec_other"
GITHUB_SECRET = "gh-fixture-secret"
HUBSPOT_SECRET = "hs-client-secret-fixture"
JOTFORM_TOKEN = "jf-query-token-8f3a91c2"
TWILIO_TOKEN = "fixture_auth_token_0123456789ab"
SECRETS = (
    STRIPE_SECRET,
    STRIPE_OTHER_SECRET,
    GITHUB_SECRET,
    HUBSPOT_SECRET,
    JOTFORM_TOKEN,
    TWILIO_TOKEN,
)
ENV = {
    "STRIPE_SECRET": STRIPE_SECRET,
    "STRIPE_OTHER_SECRET": STRIPE_OTHER_SECRET,
    "GITHUB_SECRET": GITHUB_SECRET,
    "HUBSPOT_SECRET": HUBSPOT_SECRET,
    "JOTFORM_TOKEN": JOTFORM_TOKEN,
    "TWILIO_TOKEN": TWILIO_TOKEN,
}
HUBSPOT2_PUBLIC = "https://helpdesk.example.com/hooks/hubspot2"
TWILIO_PUBLIC = "https://helpdesk.example.com/hooks/twilio/sms"

# -- fixtures of sources.md §17, byte for byte ---------------------------------------------

F1_STRIPE = (
    b'{"id":"evt_1QfxTest0000000001","object":"event","api_version":"2024-06-20",'
    b'"created":1700000000,"data":{"object":{"id":"pi_3QfxTest0000000001",'
    b'"object":"payment_intent","amount":4200,"currency":"eur","customer":"cus_QfxTest001",'
    b'"receipt_email":"ana.lima@example.com","status":"succeeded",'
    b'"metadata":{"order_ref":"WEB-1042"}}},"livemode":false,"pending_webhooks":1,'
    b'"request":{"id":null,"idempotency_key":null},"type":"payment_intent.succeeded"}'
)
F1_SIGNATURE = "t=1700000000,v1=fef06cadf75c84473616c6d552322ef28b259b96b6beec58eb513495fc16a8d0"

F2_GITHUB = (
    b'{"action":"opened","issue":{"id":2001,"number":17,"title":"Contact form broken on Safari",'
    b'"body":"Submitting returns 500.","state":"open",'
    b'"html_url":"https://github.com/acme/site/issues/17","user":{"login":"octocat","id":1}},'
    b'"repository":{"id":99,"full_name":"acme/site","private":false},'
    b'"sender":{"login":"octocat","id":1}}'
)
F2_SIGNATURE = "sha256=0f156cdeda955dd965db63fe7586a1809e179596d815845f4c62b9d60d2ccfc6"
GITHUB_DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

F3_GITHUB_FORM = (
    b"payload=%7B%22action%22%3A%22opened%22%2C%22issue%22%3A%7B%22id%22%3A2001%2C%22number"
    b"%22%3A17%2C%22title%22%3A%22Contact+form+broken+on+Safari%22%2C%22body%22%3A%22Submitting"
    b"+returns+500.%22%2C%22state%22%3A%22open%22%2C%22html_url%22%3A%22https%3A%2F%2Fgithub.com"
    b"%2Facme%2Fsite%2Fissues%2F17%22%2C%22user%22%3A%7B%22login%22%3A%22octocat%22%2C%22id%22"
    b"%3A1%7D%7D%2C%22repository%22%3A%7B%22id%22%3A99%2C%22full_name%22%3A%22acme%2Fsite%22%2C"
    b"%22private%22%3Afalse%7D%2C%22sender%22%3A%7B%22login%22%3A%22octocat%22%2C%22id%22%3A1%7D"
    b"%7D"
)
F3_SIGNATURE = "sha256=82c30f9ede9525d9621d0e165076660d7c7f84a84b527cec511a992a1a45f57b"

F14_TWILIO = (
    b"ToCountry=US&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0"
    b"&From=%2B14155550100&To=%2B14155550199&Body=My+order+%231042+has+not+arrived"
    b"&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef"
    b"&ApiVersion=2010-04-01"
)
F14_SIGNATURE = "bp+utIgmiFp+aaFbjpRz8XoohUo="
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


# -- the servers ---------------------------------------------------------------------------

CONFIG = """
    defaults:
      trusted_proxies: ["127.0.0.1"]
    providers:
      audit: {type: log}
    sources:
      stripe:
        verify: {preset: stripe, secrets: ["${STRIPE_SECRET}", "${STRIPE_OTHER_SECRET}"]}
      github:
        verify: {preset: github, secrets: ["${GITHUB_SECRET}"]}
      github-form:
        verify: {preset: github, secrets: ["${GITHUB_SECRET}"]}
        body: form_json_field:payload
      hubspot:
        verify: {preset: hubspot-v3, secrets: ["${HUBSPOT_SECRET}"]}
        split: true
      hubspot2:
        verify:
          preset: hubspot-v3
          secrets: ["${HUBSPOT_SECRET}"]
          public_url: "HUBSPOT2_PUBLIC"
        split: true
      hubspot3:
        verify: {preset: hubspot-v3, secrets: ["${HUBSPOT_SECRET}"]}
        split: true
      jotform:
        verify: {type: token, location: "query:token", values: ["${JOTFORM_TOKEN}"]}
        body: multipart_json_field:rawRequest
      twilio:
        path: /hooks/twilio/sms
        verify:
          type: twilio
          secrets: ["${TWILIO_TOKEN}"]
          public_url: "TWILIO_PUBLIC"
    rules:
      - name: audit-stripe
        source: stripe
        action: create_ticket
        provider: audit
        ticket: {subject: "Stripe {{ body.type }}"}
      - name: audit-others
        source: [github, github-form, hubspot, jotform, twilio]
        action: create_ticket
        provider: audit
        ticket: {subject: "from {{ source }}"}
""".replace("HUBSPOT2_PUBLIC", HUBSPOT2_PUBLIC).replace("TWILIO_PUBLIC", TWILIO_PUBLIC)


@pytest.fixture(scope="module")
def http():
    # one client for the module: building one per request costs ~0.1 s (its TLS context)
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def untrusted_http():
    # connects from 127.0.0.2: the same machine, but not the trusted proxy 127.0.0.1
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(timeout=10, transport=transport) as client:
        yield client


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("senders")
    root = write_tree(tmp, {"rules/main.yaml": CONFIG, "templates/.keep": ""})
    db = f"sqlite:///{tmp / 'bridge.db'}"
    log = tmp / "server.log"
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, env=ENV, log=log
    ) as url:
        yield url, db, log


# -- helpers -------------------------------------------------------------------------------


def stripe_header(body: bytes, t: int, secret: str = STRIPE_SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def post_stripe(http, url, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return http.post(f"{url}/hooks/stripe", content=body, headers=headers)


def stripe_body(event_id: str) -> bytes:
    return F1_STRIPE.replace(b"evt_1QfxTest0000000001", event_id.encode())


def hubspot_batch(*event_ids: int) -> bytes:
    return json.dumps(
        [
            {
                "eventId": event_id,
                "subscriptionId": 2400123,
                "portalId": 62515,
                "occurredAt": 1700000000000,
                "subscriptionType": "contact.creation",
                "objectId": 5151 + n,
            }
            for n, event_id in enumerate(event_ids)
        ],
        separators=(",", ":"),
    ).encode()


def hubspot_headers(signed_url: str, body: bytes, *, ts: str | None = None) -> dict[str, str]:
    ts = ts or str(int(time.time() * 1000))
    message = b"POST" + signed_url.encode() + body + ts.encode()
    digest = hmac.new(HUBSPOT_SECRET.encode(), message, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
    }


BOUNDARY = "----JotformBoundary7MA4YWxkTrZu0gW"


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def jotform_body(submission_id: str) -> tuple[bytes, str]:
    raw_request = json.dumps(
        {
            "slug": "submit/241234567890/",
            "q3_fullName": {"first": "Ana", "last": "Lima"},
            "q4_email": "ana@example.com",
            "q5_message": "Where is my order?",
        }
    )
    return multipart(
        {"formID": "241234567890", "submissionID": submission_id, "rawRequest": raw_request}
    )


def rejected(response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "signature_invalid", "detail": detail}


# -- Stripe --------------------------------------------------------------------------------


def test_stripe_signed_now_is_accepted_once_then_duplicate(http, server, capsys):
    url, db, _ = server
    signature = stripe_header(F1_STRIPE, int(time.time()))
    first = post_stripe(http, url, F1_STRIPE, signature)
    assert first.status_code == 202, first.text
    event_id = first.json()["event_id"]
    assert first.json() == {"event_id": event_id, "status": "accepted"}

    again = post_stripe(http, url, F1_STRIPE, stripe_header(F1_STRIPE, int(time.time())))
    assert again.status_code == 200, again.text
    assert again.json() == {"event_id": event_id, "status": "duplicate"}

    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d,
        timeout=5,
        what="the stripe event to be delivered to the audit provider",
    )
    assert detail["dedupe_key"] == "evt_1QfxTest0000000001"
    assert detail["body"]["data"]["object"]["amount"] == 4200
    assert detail["headers"]["stripe-signature"] == "[redacted]"
    (delivery,) = detail["deliveries"]
    assert delivery["rule"] == "audit-stripe"
    assert delivery["action"]["subject"] == "Stripe payment_intent.succeeded"


def test_stripe_fixture_header_is_refused_as_stale(http, server):
    url, _, _ = server
    # F-1's header is correct but signed at 1700000000, far outside the 300 s window
    rejected(post_stripe(http, url, F1_STRIPE, F1_SIGNATURE), "timestamp outside tolerance")


def test_stripe_changed_body_byte_is_refused(http, server):
    url, _, _ = server
    body = stripe_body("evt_1QfxTest0000000003")
    signature = stripe_header(body, int(time.time()))
    tampered = body.replace(b'"amount":4200', b'"amount":4201')
    assert len(tampered) == len(body) and tampered != body
    rejected(post_stripe(http, url, tampered, signature), "no signature matched")
    # the untampered body with the same header passes, so it was the byte that failed
    assert post_stripe(http, url, body, signature).status_code == 202


def test_stripe_timestamp_ten_minutes_old_is_refused(http, server):
    url, _, _ = server
    body = stripe_body("evt_1QfxTest0000000004")
    signature = stripe_header(body, int(time.time()) - 600)
    rejected(post_stripe(http, url, body, signature), "timestamp outside tolerance")


def test_stripe_without_the_header_is_refused(http, server):
    url, _, _ = server
    rejected(
        post_stripe(http, url, stripe_body("evt_1QfxTest0000000005"), None),
        "missing header stripe-signature",
    )


def test_stripe_second_secret_of_a_rotation_also_passes(http, server, capsys):
    url, db, _ = server
    body = stripe_body("evt_1QfxTest0000000002")
    now = int(time.time())
    response = post_stripe(http, url, body, stripe_header(body, now, STRIPE_OTHER_SECRET))
    assert response.status_code == 202, response.text
    assert (
        show_event(capsys, db, response.json()["event_id"])["dedupe_key"]
        == "evt_1QfxTest0000000002"
    )
    # the header of a roll: one v1 per secret, the first from a secret we do not hold
    body = stripe_body("evt_1QfxTest0000000006")
    unknown = stripe_header(body, now, "whsec_old_secret").partition(",")[2]
    response = post_stripe(http, url, body, f"{stripe_header(body, now)},{unknown}")
    assert response.status_code == 202, response.text
    response = post_stripe(http, url, body.replace(b"0006", b"0007"), f"t={now},{unknown},v0=00")
    rejected(response, "no signature matched")
    # a secret that is not configured does not
    rejected(
        post_stripe(http, url, body, stripe_header(body, now, "whsec_not_configured")),
        "no signature matched",
    )


# -- GitHub --------------------------------------------------------------------------------


def github_headers(signature: str, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": GITHUB_DELIVERY,
        "X-Hub-Signature-256": signature,
        "User-Agent": "GitHub-Hookshot/044aadd",
    }


def test_github_json_fixture_is_stored_with_the_delivery_id_as_dedupe_key(http, server, capsys):
    url, db, _ = server
    response = http.post(
        f"{url}/hooks/github",
        content=F2_GITHUB,
        headers=github_headers(F2_SIGNATURE, "application/json"),
    )
    assert response.status_code == 202, response.text
    detail = show_event(capsys, db, response.json()["event_id"])
    assert detail["source"] == "github"
    assert detail["dedupe_key"] == GITHUB_DELIVERY
    assert detail["headers"]["x-github-event"] == "issues"
    assert detail["headers"]["x-hub-signature-256"] == "[redacted]"
    assert detail["body"]["issue"]["title"] == "Contact form broken on Safari"


def test_github_form_fixture_stores_the_decoded_payload(http, server, capsys):
    url, db, _ = server
    response = http.post(
        f"{url}/hooks/github-form",
        content=F3_GITHUB_FORM,
        headers=github_headers(F3_SIGNATURE, "application/x-www-form-urlencoded"),
    )
    assert response.status_code == 202, response.text
    detail = show_event(capsys, db, response.json()["event_id"])
    assert detail["source"] == "github-form"
    assert detail["body"]["issue"]["number"] == 17
    assert detail["body"]["repository"]["full_name"] == "acme/site"
    assert detail["dedupe_key"] == GITHUB_DELIVERY


def test_github_tampered_bodies_are_refused(http, server):
    url, _, _ = server
    tampered_json = F2_GITHUB.replace(b'"number":17', b'"number":18')
    rejected(
        http.post(
            f"{url}/hooks/github",
            content=tampered_json,
            headers=github_headers(F2_SIGNATURE, "application/json"),
        ),
        "no signature matched",
    )
    tampered_form = F3_GITHUB_FORM.replace(b"%3A17%2C", b"%3A18%2C")
    assert tampered_form != F3_GITHUB_FORM
    rejected(
        http.post(
            f"{url}/hooks/github-form",
            content=tampered_form,
            headers=github_headers(F3_SIGNATURE, "application/x-www-form-urlencoded"),
        ),
        "no signature matched",
    )
    # the JSON fixture's signature does not fit the form fixture (different signed bytes)
    rejected(
        http.post(
            f"{url}/hooks/github-form",
            content=F3_GITHUB_FORM,
            headers=github_headers(F2_SIGNATURE, "application/x-www-form-urlencoded"),
        ),
        "no signature matched",
    )


# -- HubSpot -------------------------------------------------------------------------------


def test_hubspot_batch_is_split_and_deduplicated_per_element(http, server, capsys):
    url, db, _ = server
    endpoint = f"{url}/hooks/hubspot"
    body = hubspot_batch(2000001, 2000002, 2000003)
    first = http.post(endpoint, content=body, headers=hubspot_headers(endpoint, body))
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["status"] == "accepted"
    assert answer["duplicates"] == []
    ids = answer["event_ids"]
    assert len(ids) == len(set(ids)) == 3
    stored = [show_event(capsys, db, event_id) for event_id in ids]
    assert [d["dedupe_key"] for d in stored] == ["2000001", "2000002", "2000003"]
    assert [d["body"]["eventId"] for d in stored] == [2000001, 2000002, 2000003]

    body = hubspot_batch(2000001, 2000002, 2000003, 2000004)
    second = http.post(endpoint, content=body, headers=hubspot_headers(endpoint, body))
    assert second.status_code == 202, second.text
    answer = second.json()
    assert answer["status"] == "accepted"
    assert len(answer["event_ids"]) == 1
    assert answer["event_ids"][0] not in ids
    assert answer["duplicates"] == ids
    assert show_event(capsys, db, answer["event_ids"][0])["body"]["eventId"] == 2000004

    # everything seen before: 200 duplicate
    body = hubspot_batch(2000002, 2000004)
    third = http.post(endpoint, content=body, headers=hubspot_headers(endpoint, body))
    assert third.status_code == 200, third.text
    assert third.json() == {
        "status": "duplicate",
        "event_ids": [],
        "duplicates": [ids[1], answer["event_ids"][0]],
    }

    # an empty batch stores nothing and is not a duplicate of anything
    empty = http.post(endpoint, content=b"[]", headers=hubspot_headers(endpoint, b"[]"))
    assert empty.status_code == 202, empty.text
    assert empty.json() == {"status": "accepted", "event_ids": [], "duplicates": []}


def test_hubspot_stale_millisecond_timestamp_is_refused(http, server):
    url, _, _ = server
    endpoint = f"{url}/hooks/hubspot"
    body = hubspot_batch(2000011)
    stale = str(int((time.time() - 600) * 1000))
    rejected(
        http.post(endpoint, content=body, headers=hubspot_headers(endpoint, body, ts=stale)),
        "timestamp outside tolerance",
    )


def test_hubspot_public_url_is_what_is_signed(http, server):
    url, _, _ = server
    endpoint = f"{url}/hooks/hubspot2"
    body = hubspot_batch(2000021)
    internal = http.post(endpoint, content=body, headers=hubspot_headers(endpoint, body))
    rejected(internal, "no signature matched")
    public = http.post(endpoint, content=body, headers=hubspot_headers(HUBSPOT2_PUBLIC, body))
    assert public.status_code == 202, public.text
    assert len(public.json()["event_ids"]) == 1


def test_hubspot_public_url_gets_the_request_query_string(http, server):
    url, _, _ = server
    body = hubspot_batch(2000022)
    signed = f"{HUBSPOT2_PUBLIC}?portal=62515"
    response = http.post(
        f"{url}/hooks/hubspot2?portal=62515", content=body, headers=hubspot_headers(signed, body)
    )
    assert response.status_code == 202, response.text
    rejected(
        http.post(
            f"{url}/hooks/hubspot2?portal=99999",
            content=hubspot_batch(2000023),
            headers=hubspot_headers(signed, hubspot_batch(2000023)),
        ),
        "no signature matched",
    )


def test_hubspot_forwarded_url_from_a_trusted_proxy_is_what_is_signed(http, server):
    url, _, _ = server
    endpoint = f"{url}/hooks/hubspot3"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    body = hubspot_batch(2000031)
    response = http.post(
        endpoint,
        content=body,
        headers={
            **hubspot_headers("https://hooks.example.com/hooks/hubspot3", body),
            **forwarded,
        },
    )
    assert response.status_code == 202, response.text
    # with forwarded headers from a trusted peer, the URL the server saw no longer fits
    body = hubspot_batch(2000032)
    rejected(
        http.post(endpoint, content=body, headers={**hubspot_headers(endpoint, body), **forwarded}),
        "no signature matched",
    )
    # the last value of each header is the one the (trusted) proxy added
    body = hubspot_batch(2000033)
    response = http.post(
        endpoint,
        content=body,
        headers={
            **hubspot_headers("https://hooks.example.com:8443/hooks/hubspot3", body),
            "X-Forwarded-Proto": "http, https",
            "X-Forwarded-Host": "spoofed.example.net, hooks.example.com",
            "X-Forwarded-Port": "8443",
        },
    )
    assert response.status_code == 202, response.text


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(untrusted_http, server):
    url, _, _ = server
    endpoint = f"{url}/hooks/hubspot3"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    body = hubspot_batch(3000001)
    response = untrusted_http.post(
        endpoint,
        content=body,
        headers={**hubspot_headers("https://hooks.example.com/hooks/hubspot3", body), **forwarded},
    )
    rejected(response, "no signature matched")
    # the URL the server itself saw is what counts for this peer
    response = untrusted_http.post(
        endpoint, content=body, headers={**hubspot_headers(endpoint, body), **forwarded}
    )
    assert response.status_code == 202, response.text


# -- Jotform -------------------------------------------------------------------------------


def test_jotform_multipart_raw_request_is_stored_as_json_with_the_token_redacted(
    http, server, capsys
):
    url, db, _ = server
    body, content_type = jotform_body("5812345678901234567")
    response = http.post(
        f"{url}/hooks/jotform",
        params={"token": JOTFORM_TOKEN, "form": "contact"},
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    detail = show_event(capsys, db, response.json()["event_id"])
    assert detail["body"]["q3_fullName"] == {"first": "Ana", "last": "Lima"}
    assert detail["body"]["q4_email"] == "ana@example.com"
    assert detail["query"] == {"token": "[redacted]", "form": "contact"}
    assert JOTFORM_TOKEN not in json.dumps(detail)


def test_jotform_wrong_or_missing_token_is_refused(http, server):
    url, _, _ = server
    body, content_type = jotform_body("5812345678901234568")
    headers = {"Content-Type": content_type}
    rejected(
        http.post(
            f"{url}/hooks/jotform",
            params={"token": JOTFORM_TOKEN + "x"},
            content=body,
            headers=headers,
        ),
        "token did not match",
    )
    rejected(
        http.post(f"{url}/hooks/jotform", content=body, headers=headers),
        "missing query parameter token",
    )


# -- Twilio --------------------------------------------------------------------------------


def test_twilio_fixture_is_accepted_with_the_signature_redacted(http, server, capsys):
    url, db, _ = server
    response = http.post(
        f"{url}/hooks/twilio/sms",
        content=F14_TWILIO,
        headers={"Content-Type": FORM_TYPE, "X-Twilio-Signature": F14_SIGNATURE},
    )
    assert response.status_code == 202, response.text
    detail = show_event(capsys, db, response.json()["event_id"])
    assert detail["source"] == "twilio"
    assert detail["body"]["MessageSid"] == "SM0123456789abcdef0123456789abcdef"
    assert detail["body"]["Body"] == "My order #1042 has not arrived"
    assert detail["headers"]["x-twilio-signature"] == "[redacted]"
    assert F14_SIGNATURE not in json.dumps(detail)


def twilio_signature(signed_url: str, body: bytes) -> str:
    params = sorted(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    message = signed_url + "".join(name + value for name, value in params)
    digest = hmac.new(TWILIO_TOKEN.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_twilio_signature_helper_reproduces_the_fixture():
    assert twilio_signature(TWILIO_PUBLIC, F14_TWILIO) == F14_SIGNATURE


def test_twilio_tampered_body_internal_url_or_no_signature_is_refused(http, server):
    url, _, _ = server
    # correctly signed, but for the URL this server sees instead of the configured public one
    internal = f"{url}/hooks/twilio/sms"
    rejected(
        http.post(
            internal,
            content=F14_TWILIO,
            headers={
                "Content-Type": FORM_TYPE,
                "X-Twilio-Signature": twilio_signature(internal, F14_TWILIO),
            },
        ),
        "no signature matched",
    )
    tampered = F14_TWILIO.replace(b"Body=My+order", b"Body=My+ordex")
    assert tampered != F14_TWILIO
    rejected(
        http.post(
            f"{url}/hooks/twilio/sms",
            content=tampered,
            headers={"Content-Type": FORM_TYPE, "X-Twilio-Signature": F14_SIGNATURE},
        ),
        "no signature matched",
    )
    rejected(
        http.post(
            f"{url}/hooks/twilio/sms", content=F14_TWILIO, headers={"Content-Type": FORM_TYPE}
        ),
        "missing header x-twilio-signature",
    )


# -- secrets -------------------------------------------------------------------------------


def test_no_refusal_and_no_log_line_reveals_a_configured_secret(http, server):
    url, _, log = server
    now = int(time.time())
    stripe = stripe_body("evt_1QfxTest0000000009")
    hubspot = hubspot_batch(2000091)
    jotform, jotform_type = jotform_body("5812345678901234569")
    refusals = [
        post_stripe(http, url, stripe, stripe_header(stripe, now, "whsec_wrong")),
        post_stripe(http, url, stripe, f"t={now},v1=00"),
        post_stripe(http, url, stripe, f"t={now}"),
        http.post(
            f"{url}/hooks/github",
            content=F2_GITHUB + b" ",
            headers=github_headers(F2_SIGNATURE, "application/json"),
        ),
        http.post(
            f"{url}/hooks/hubspot",
            content=hubspot,
            headers=hubspot_headers("https://wrong.example/hooks/hubspot", hubspot),
        ),
        http.post(
            f"{url}/hooks/jotform",
            params={"token": "nope"},
            content=jotform,
            headers={"Content-Type": jotform_type},
        ),
        http.post(
            f"{url}/hooks/twilio/sms",
            content=F14_TWILIO + b"&Extra=1",
            headers={"Content-Type": FORM_TYPE, "X-Twilio-Signature": F14_SIGNATURE},
        ),
    ]
    for response in refusals:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "signature_invalid"
        for secret in SECRETS:
            assert secret not in response.text
    logged = log.read_text()
    assert '"status": 401' in logged or '"status":401' in logged
    for secret in SECRETS:
        assert secret not in logged
