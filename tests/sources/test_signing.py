"""Signing as the sender would (`ticketbridge send`): every request the signer makes passes the
real verifier, and it reproduces every official vector and fixture of sources.md byte for byte."""

import base64
import itertools
import json
import urllib.parse
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exceptions import RejectedRequest
from bridge.sources.presets import PRESETS, default_dedupe_key
from bridge.sources.registry import build_verifier
from bridge.sources.signatures import HmacVerifier
from bridge.sources.signing import (
    Outgoing,
    content_type_for,
    delivery_headers,
    sender_request,
    sign,
)
from bridge.sources.twilio import TwilioVerifier
from bridge.sources.verifiers import BasicVerifier
from tests.sources.vectors import VECTORS

NOW = 1_750_000_000.0
URL = "http://127.0.0.1:8000/hooks/x"
BODY = b'{"id":"evt_1","event_id":"e1","eventId":1,"data":{"id":"PAY-77"},"payload":{"id":"p1"}}'
FORM = "application/x-www-form-urlencoded"
WHSEC = "whsec_" + base64.b64encode(b"a standard webhooks secret").decode()


def fresh_ids():
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def signed(verify, *, body=BODY, url=URL, headers=None, body_setting=None, now=NOW, dedupe=None):
    verifier = build_verifier(verify)
    return sender_request(
        verifier,
        url=url,
        body=body,
        headers=headers or {},
        body_setting=body_setting,
        dedupe_key=dedupe if dedupe is not None else default_dedupe_key(verify),
        now=now,
        new_id=fresh_ids(),
    )


def verifies(verify, request, *, now=NOW):
    build_verifier(verify).verify(request.as_received(), now=now)


def refusal(verify, request, *, now=NOW):
    with pytest.raises(RejectedRequest) as caught:
        build_verifier(verify).verify(request.as_received(), now=now)
    assert caught.value.status == 401
    return caught.value.detail


def secret_for(preset, text="s3cret"):
    if PRESETS[preset].verify.get("secret_encoding") == "whsec_base64":
        return "whsec_" + base64.b64encode(text.encode()).decode()
    return text


# --- every preset -----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_signs_what_its_verifier_accepts_and_only_with_its_secret(preset):
    verify = {"preset": preset, "secrets": [secret_for(preset), secret_for(preset, "old")]}
    request = signed(verify)
    verifies(verify, request)
    # the first secret signed: a verifier holding only the second one refuses
    assert refusal({**verify, "secrets": [secret_for(preset, "old")]}, request) == (
        "no signature matched"
    )
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"


TIMED = sorted(
    name
    for name, preset in PRESETS.items()
    if {"timestamp_key", "timestamp_header"} & set(preset.verify)
    and preset.verify.get("tolerance") != 0
)


def test_the_timed_presets_are_the_ones_with_a_replay_window():
    timed = ["calendly", "formspree", "hubspot-v3", "paddle", "slack", "standard", "stripe"]
    assert [*timed, "webflow"] == TIMED


@pytest.mark.parametrize("preset", TIMED)
def test_every_timed_preset_gets_a_fresh_timestamp(preset):
    verify = {"preset": preset, "secrets": [secret_for(preset)]}
    request = signed(verify)
    verifies(verify, request, now=NOW + 1)
    # signed at NOW, so ten minutes later it is out of any preset's window
    assert refusal(verify, request, now=NOW + 600) == "timestamp outside tolerance"


@pytest.mark.parametrize(
    ("preset", "header"),
    [
        ("github", "x-github-delivery"),
        ("shopify", "x-shopify-event-id"),
        ("standard", "webhook-id"),
        ("mercadopago", "x-request-id"),
    ],
)
def test_a_per_delivery_header_is_fresh_unless_given(preset, header):
    verify = {"preset": preset, "secrets": [secret_for(preset)]}
    assert signed(verify).headers[header] == "id-1"
    given = signed(verify, headers={header.upper(): "mine-42"})
    assert given.headers[header] == "mine-42"
    verifies(verify, given)


def test_standard_webhooks_with_a_given_svix_id_signs_that_id():
    verify = {"preset": "standard", "secrets": [WHSEC]}
    request = signed(verify, headers={"svix-id": "msg_given"})
    assert "webhook-id" not in request.headers
    verifies(verify, request)
    other = replace(request, headers={**request.headers, "svix-id": "msg_other"})
    assert refusal(verify, other) == "no signature matched"


def test_presets_whose_dedupe_key_is_in_the_body_get_no_invented_header():
    for preset in ("stripe", "typeform", "tally", "paddle", "webflow", "calendly"):
        verify = {"preset": preset, "secrets": ["s"]}
        assert delivery_headers(build_verifier(verify), default_dedupe_key(verify)) == ()


def test_a_dedupe_key_on_a_header_of_a_non_preset_source_is_filled_too():
    verifier = build_verifier({"type": "token", "location": "header:x-t", "values": ["v"]})
    assert delivery_headers(verifier, "headers.X-Request-Id") == (("x-request-id",),)
    assert delivery_headers(verifier, "body.id") == ()
    assert delivery_headers(verifier, "{{ headers['x-a'] }}") == ()


def test_mercadopago_signs_the_body_data_id_as_the_query_parameter():
    verify = {"preset": "mercadopago", "secrets": ["mp"]}
    request = signed(verify)
    assert urllib.parse.urlsplit(request.url).query == "data.id=PAY-77"
    verifies(verify, request)
    # a data.id in the URL wins over the body's
    own = signed(verify, url=f"{URL}?data.id=AB1&type=payment")
    assert urllib.parse.urlsplit(own.url).query == "data.id=AB1&type=payment"
    verifies(verify, own)
    with pytest.raises(ValueError, match="query parameter data.id"):
        signed(verify, body=b'{"id":"x"}')


# --- the official vectors and fixtures, reproduced -----------------------------------------


def written_by_signer(verifier):
    """The signature (or credentials) header the signer writes first, then all it writes."""
    if isinstance(verifier, HmacVerifier):
        return verifier.headers[0], {*verifier.headers, *verifier.timestamp_headers}
    assert isinstance(verifier, TwilioVerifier | BasicVerifier)
    name = "x-twilio-signature" if isinstance(verifier, TwilioVerifier) else "authorization"
    return name, {name}


REPRODUCIBLE = [
    v
    for v in VECTORS
    # one signature, made with the first secret (a rotation header holds several)
    if v.secret == v.secrets[0] and not v.name.endswith("-rotation")
]


@pytest.mark.parametrize("vector", REPRODUCIBLE, ids=lambda v: v.name)
def test_the_signer_reproduces_every_official_vector_and_fixture(vector):
    verifier = build_verifier(vector.verify)
    wrote, writes = written_by_signer(verifier)
    # the URL the request was sent to: the signed one, unless public_url says what was signed
    url = vector.url if "public_url" in vector.verify else (vector.signed_url or vector.url)
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "bodySHA256"]
    unsigned = Outgoing(
        url=urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))),
        headers={k: v for k, v in vector.headers.items() if k not in writes},
        body=vector.body,
    )
    request = sign(verifier, unsigned, now=vector.now)
    assert request.headers[wrote] == vector.headers[vector.signature_header]
    assert request.url == url
    if isinstance(verifier, HmacVerifier) and verifier.timestamp_headers:
        # the timestamp goes in its own header, the same one the sender wrote
        assert request.headers[verifier.timestamp_headers[0]] == vector.ts
    verifies(vector.verify, request, now=vector.now)


# --- the other verification types -----------------------------------------------------------


def test_hmac_of_every_shape():
    verify = {
        "type": "hmac",
        "secrets": [base64.b64encode(b"raw key bytes").decode()],
        "secret_encoding": "base64",
        "algorithm": "sha512",
        "header": "X-Sig",
        "format": "kv",
        "pair_sep": ";",
        "kv_sep": ":",
        "signature_keys": ["s1", "s2"],
        "timestamp_key": "at",
        "prefix": "b64-",
        "encoding": "base64",
        "message": "{method} {url} {header:X-Account} {query:q|lower} {timestamp} {body}",
        "timestamp_unit": "ms",
        "public_url": "https://hooks.example.com/in",
    }
    request = signed(verify, url=f"{URL}?q=ABC", headers={"X-Account": "acme"})
    value = request.headers["x-sig"]
    assert value.startswith(f"at:{int(NOW * 1000)};s1:b64-")
    verifies(verify, request)
    assert refusal({**verify, "public_url": None}, request) == "no signature matched"


def test_hmac_that_reads_a_header_invents_one_only_where_none_is_given():
    verify = {"type": "hmac", "secrets": ["k"], "header": "X-Sig", "message": "{header:X-A}.{body}"}
    assert signed(verify).headers["x-a"] == "id-1"
    assert signed(verify, headers={"x-a": "given"}).headers["x-a"] == "given"


@pytest.mark.parametrize("location", ["header:X-Form-Token", "query:token", "form:secret"])
def test_token_goes_where_location_says(location):
    verify = {"type": "token", "location": location, "values": ["tok-1", "tok-2"]}
    form = b"name=Ana&email=ana%40example.com"
    request = signed(verify, body=form, body_setting="form")
    verifies(verify, request)
    assert refusal({**verify, "values": ["tok-2"]}, request) == "token did not match"
    kind, _, name = location.partition(":")
    if kind == "header":
        assert request.headers[name.lower()] == "tok-1"
    elif kind == "query":
        assert urllib.parse.urlsplit(request.url).query == "token=tok-1"
    else:
        assert request.body == b"secret=tok-1&" + form
    assert request.headers["content-type"] == FORM


def test_token_in_a_multipart_form_field():
    verify = {"type": "token", "location": "form:secret", "values": ["tok-1"]}
    body = b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nAna\r\n--XyZ--\r\n'
    request = signed(verify, body=body)
    assert request.headers["content-type"] == "multipart/form-data; boundary=XyZ"
    assert request.body.endswith(body)
    verifies(verify, request)


def test_token_in_a_form_field_of_a_json_body_cannot_be_sent():
    verify = {"type": "token", "location": "form:secret", "values": ["tok-1"]}
    with pytest.raises(ValueError, match="must be a form") as caught:
        signed(verify, body=b'{"a":1}')
    assert "tok-1" not in str(caught.value)


def test_basic_sends_the_username_with_the_first_password():
    verify = {"type": "basic", "username": "hooks", "passwords": ["pw-1", "pw-2"]}
    request = signed(verify)
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"hooks:pw-1").decode()
    verifies(verify, request)
    assert refusal({**verify, "passwords": ["pw-2"]}, request) == "credentials did not match"


TWILIO_FORM = b"MessageSid=SM1&From=%2B14155550100&Body=Hello+there&NumMedia=0"


def test_twilio_signs_the_url_it_posts_to_with_the_form_parameters():
    verify = {"type": "twilio", "secrets": ["auth-token"]}
    request = signed(verify, body=TWILIO_FORM, url=f"{URL}?x=1")
    assert request.url == f"{URL}?x=1"
    verifies(verify, request)
    assert refusal({**verify, "secrets": ["other"]}, request) == "no signature matched"


def test_twilio_signs_the_public_url_when_the_source_has_one():
    public = "https://helpdesk.example.com/hooks/sms"
    verify = {"type": "twilio", "secrets": ["auth-token"], "public_url": public}
    request = signed(verify, body=TWILIO_FORM)
    verifies(verify, request)
    assert refusal({"type": "twilio", "secrets": ["auth-token"]}, request) == (
        "no signature matched"
    )


def test_twilio_json_body_goes_by_its_bodysha256():
    verify = {"type": "twilio", "secrets": ["auth-token"]}
    request = signed(verify, body=b'{"a": 1}')
    assert "bodySHA256=" in urllib.parse.urlsplit(request.url).query
    verifies(verify, request)
    changed = Outgoing(url=request.url, headers=request.headers, body=b'{"a": 2}')
    assert refusal(verify, changed) == "body does not match its bodySHA256"


def test_twilio_sha256_signature_settings_are_honoured():
    verify = {"type": "twilio", "secrets": ["auth-token"]}
    settings_header = {"X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256"}
    request = signed(verify, body=TWILIO_FORM, headers=settings_header)
    verifies(verify, request)
    stripped = {k: v for k, v in request.headers.items() if not k.endswith("settings")}
    sha1 = Outgoing(url=request.url, headers=stripped, body=request.body)
    assert refusal(verify, sha1) == "no signature matched"


def test_none_sends_the_body_as_it_is():
    request = signed({"type": "none"}, body=b"anything", body_setting="json")
    assert request == Outgoing(
        url=URL, headers={"content-type": "application/json"}, body=b"anything"
    )


def test_a_header_the_signer_writes_cannot_be_given():
    with pytest.raises(ValueError, match="stripe-signature is what the signer writes"):
        signed({"preset": "stripe", "secrets": ["s"]}, headers={"Stripe-Signature": "t=1"})
    with pytest.raises(ValueError, match="query parameter token is what the signer writes"):
        signed({"type": "token", "location": "query:token", "values": ["t"]}, url=f"{URL}?token=x")


# --- content type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "body", "expected"),
    [
        ("json", b"a=b", "application/json"),
        ("form", b"{}", FORM),
        ("form_json_field:payload", b"payload=%7B%7D", FORM),
        ("multipart", b"--b1\r\n", "multipart/form-data; boundary=b1"),
        ("multipart_json_field:rawRequest", b"--b2\n", "multipart/form-data; boundary=b2"),
        (None, b"", "application/json"),
        (None, b'\xef\xbb\xbf  {"a": 1}', "application/json"),
        (None, b"[1]", "application/json"),
        (None, b"name=Ana", FORM),
        (None, b"--", FORM),  # no boundary after the dashes: not multipart
        (None, b'-- "quoted"\r\n', FORM),
        (
            None,
            b"--frontier\r\nContent-Disposition: form-data",
            "multipart/form-data; boundary=frontier",
        ),
    ],
)
def test_content_type_follows_the_body_setting_or_the_body(setting, body, expected):
    assert content_type_for(setting, body) == expected


def test_a_given_content_type_wins():
    request = signed({"type": "none"}, headers={"Content-Type": "text/plain"})
    assert request.headers["content-type"] == "text/plain"


def test_multipart_without_a_boundary_line_is_a_clear_error():
    with pytest.raises(ValueError, match="--boundary line"):
        content_type_for("multipart", b"name=Ana")


# --- properties -----------------------------------------------------------------------------

SECRETS = st.text(min_size=1, max_size=80).filter(lambda s: s.strip())


@settings(max_examples=300, deadline=None)
@given(
    preset=st.sampled_from(sorted(PRESETS)),
    body=st.binary(max_size=300),
    secret=SECRETS,
    now=st.integers(min_value=1, max_value=4_000_000_000),
    data_id=st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20),
)
def test_any_body_and_secret_signed_for_any_preset_verifies(preset, body, secret, now, data_id):
    encoded = secret_for(preset, secret)
    verify = {"preset": preset, "secrets": [encoded]}
    query = urllib.parse.urlencode({"data.id": data_id})
    request = signed(verify, body=body, url=f"{URL}?{query}", now=now)
    verifies(verify, request, now=now)
    # a secret that differs (not only by HMAC's zero padding) does not
    other = {**verify, "secrets": [secret_for(preset, secret + "!")]}
    assert refusal(other, request, now=now) == "no signature matched"
    assert request.body == body


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=8),
    token=SECRETS,
    kind=st.sampled_from(["header", "query", "form"]),
)
def test_any_token_verifies_wherever_it_goes(fields, token, kind):
    verify = {"type": "token", "location": f"{kind}:tok", "values": [token]}
    body = urllib.parse.urlencode(fields).encode()
    request = signed(verify, body=body, body_setting="form")
    verifies(verify, request)
    assert refusal({**verify, "values": [token + "!"]}, request) == "token did not match"


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=8),
    token=SECRETS,
)
def test_any_twilio_form_verifies(pairs, token):
    verify = {"type": "twilio", "secrets": [token]}
    body = urllib.parse.urlencode(pairs).encode()
    request = signed(verify, body=body, body_setting="form")
    verifies(verify, request)


def test_bodies_are_sent_byte_for_byte():
    raw = json.dumps({"a": "ü"}, ensure_ascii=False).encode() + b"\n"
    assert signed({"preset": "github", "secrets": ["s"]}, body=raw).body == raw
