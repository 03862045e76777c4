"""Every official vector and signed fixture of sources.md §15-§17, through build_verifier."""

import base64
import hashlib
import hmac
import json

import pytest

from bridge.exceptions import RejectedRequest
from bridge.sources.registry import build_verifier
from tests.sources.vectors import BY_NAME, GARBAGE, VECTORS

SIGNED = [v for v in VECTORS if v.scheme is not None]
TIMED = [v for v in VECTORS if v.ts is not None]
each = pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
each_signed = pytest.mark.parametrize("vector", SIGNED, ids=lambda v: v.name)
each_timed = pytest.mark.parametrize("vector", TIMED, ids=lambda v: v.name)


def check(vector, request, *, now=None, settings=None):
    verifier = build_verifier(vector.verify if settings is None else settings)
    verifier.verify(request, now=vector.now if now is None else now)


def leaked_values(vector, request, settings):
    """Secrets, and every signature they would give this request, in hex and base64."""
    secrets = {*vector.secrets, *(settings or {}).get("secrets", ())}
    secrets |= set((settings or {}).get("passwords", ()))
    values = set(secrets)
    if vector.scheme is not None:
        for secret in secrets:
            for signer in (vector, vector.variant(signed_url=None)):
                try:
                    digest = signer.digest(request, secret)
                except ValueError:  # a secret that is not base64 for a whsec_ scheme
                    continue
                b64 = base64.b64encode(digest).decode()
                values |= {digest.hex(), b64, b64.rstrip("=")}
    return values


def rejected(vector, request, *, now=None, settings=None):
    """The 401 detail, checked to hold no secret and no signature the verifier computed."""
    with pytest.raises(RejectedRequest) as caught:
        check(vector, request, now=now, settings=settings)
    error = caught.value
    assert (error.status, error.error) == (401, "signature_invalid")
    assert error.detail
    for value in leaked_values(vector, request, settings):
        assert value not in error.detail
    return error.detail


def with_header(vector, name, value):
    return vector.request(headers={**vector.headers, name: value})


def without_header(vector, name):
    headers = {k: v for k, v in vector.headers.items() if k != name}
    assert len(headers) == len(vector.headers) - 1
    return vector.request(headers=headers)


def flip_last_byte(body):
    return body[:-1] + bytes([body[-1] ^ 1])


# --- the table ------------------------------------------------------------------------------


@each
def test_valid_request_passes(vector):
    check(vector, vector.request())


@each_signed
def test_fixture_signature_is_what_an_independent_hmac_gives(vector):
    expected = vector.expected(vector.request(), vector.secret)
    assert expected in vector.headers[vector.signature_header]


@each
def test_one_changed_body_byte(vector):
    request = vector.request(body=flip_last_byte(vector.body))
    if vector.body_signed:
        assert rejected(vector, request) == vector.body_detail
    else:
        check(vector, request)  # the body is not covered: the request still verifies


@each
def test_wrong_secret(vector):
    settings = {**vector.verify, **vector.wrong}
    assert rejected(vector, vector.request(), settings=settings) == vector.wrong_detail


@each_timed
def test_timestamp_outside_tolerance_in_the_past_and_the_future(vector):
    window = vector.tolerance or 300
    # a preset that checks no time (mercadopago) gets a window from the settings
    settings = {**vector.verify, "tolerance": 300} if not vector.tolerance else vector.verify
    for now in (vector.now + window + 1, vector.now - window - 1):
        assert rejected(vector, vector.request(), now=now, settings=settings) == (
            "timestamp outside tolerance"
        )
    for now in (vector.now + window, vector.now - window):
        check(vector, vector.request(), now=now, settings=settings)


def test_mercadopago_checks_no_time_by_default():
    vector = BY_NAME["mercadopago-F9"]
    assert vector.tolerance == 0
    for now in (vector.now + 86_400 * 4, vector.now - 86_400):
        check(vector, vector.request(), now=now)


@each
def test_missing_header(vector):
    assert vector.signature_header in vector.missing_details
    for name, detail in vector.missing_details.items():
        assert rejected(vector, without_header(vector, name)) == detail


@each
def test_garbage_signature_header(vector):
    request = with_header(vector, vector.signature_header, GARBAGE)
    detail = rejected(vector, request)
    assert detail == vector.garbage_detail
    assert detail.startswith(f"malformed header {vector.signature_header}: ")
    assert rejected(vector, request) == detail  # deterministic


@each_signed
def test_well_formed_but_wrong_signature(vector):
    request = vector.request()
    value = vector.headers[vector.signature_header]
    for secret in vector.secrets:
        expected = vector.expected(request, secret)
        zero = bytes(len(vector.digest(request, secret)))
        base64_ = vector.scheme.encoding == "base64"
        forged = base64.b64encode(zero).decode() if base64_ else zero.hex()
        value = value.replace(expected, forged)
    assert value != vector.headers[vector.signature_header]
    assert rejected(vector, with_header(vector, vector.signature_header, value)) == (
        "no signature matched"
    )


# --- the specific negatives of §17 ----------------------------------------------------------


def test_typeform_signature_of_the_ascii_escaped_reserialisation_fails():
    vector = BY_NAME["typeform-F6"]
    escaped = json.dumps(json.loads(vector.body), separators=(",", ":")).encode()
    assert b"\\u00e3" in escaped and escaped != vector.body
    signature = "sha256=" + vector.expected(vector.request(body=escaped), vector.secret)
    request = with_header(vector, "typeform-signature", signature)
    assert rejected(vector, request) == "no signature matched"
    # the verifier signs raw bytes, whatever they are: the escaped body with its own signature
    check(vector, vector.request(body=escaped, headers={"typeform-signature": signature}))


def test_hubspot_behind_a_proxy_needs_public_url():
    vector = BY_NAME["hubspot-v3-F8"]
    assert vector.url.startswith("http://127.0.0.1:8000/")
    settings = {k: v for k, v in vector.verify.items() if k != "public_url"}
    assert rejected(vector, vector.request(), settings=settings) == "no signature matched"


def test_hubspot_signed_against_the_internal_url_fails():
    vector = BY_NAME["hubspot-v3-F8"]
    internal = vector.variant(signed_url=vector.url)
    signature = internal.expected(vector.request(), vector.secret)
    request = with_header(vector, "x-hubspot-signature-v3", signature)
    assert rejected(vector, request) == "no signature matched"
    # ... which is right only when no public_url is configured
    settings = {k: v for k, v in vector.verify.items() if k != "public_url"}
    check(vector, request, settings=settings)


def test_hubspot_public_url_keeps_the_request_query():
    vector = BY_NAME["hubspot-v3-F8"]
    moved = vector.variant(
        url=vector.url + "?portal=62515",
        query=(("portal", "62515"),),
        signed_url="https://helpdesk.example.com/hooks/hubspot?portal=62515",
    )
    request = moved.request()
    signature = moved.expected(request, moved.secret)
    check(moved, with_header(moved, "x-hubspot-signature-v3", signature))
    assert rejected(vector, request) == "no signature matched"  # the old signature


def test_mercadopago_other_request_id_fails():
    vector = BY_NAME["mercadopago-F9"]
    request = with_header(vector, "x-request-id", "00000000-6aae-46ac-982e-9dcd3581d08e")
    assert rejected(vector, request) == "no signature matched"


def test_mercadopago_other_data_id_fails():
    vector = BY_NAME["mercadopago-F9"]
    query = (("data.id", "123456780"), ("type", "payment"))
    request = vector.request(url=vector.url.replace("123456789", "123456780"), query=query)
    assert rejected(vector, request) == "no signature matched"
    # the body's data.id is not what is signed: changing the query is what counts
    request = vector.request(query=(("type", "payment"),))
    assert rejected(vector, request) == "missing query parameter data.id"


def test_mercadopago_manifest_without_the_trailing_semicolon_fails():
    vector = BY_NAME["mercadopago-F9"]
    manifest = b"id:123456789;request-id:bb56a2f1-6aae-46ac-982e-9dcd3581d08e;ts:1700000000"
    signature = hmac.new(vector.secret.encode(), manifest, hashlib.sha256).hexdigest()
    assert vector.expected(vector.request(), vector.secret) != signature
    request = with_header(vector, "x-signature", f"ts=1700000000,v1={signature}")
    assert rejected(vector, request) == "no signature matched"


def test_mercadopago_lower_cases_an_alphanumeric_data_id():
    vector = BY_NAME["mercadopago-F9"].variant(query=(("data.id", "ABC123def"),))
    request = vector.request()
    signature = vector.expected(request, vector.secret)  # signed over "abc123def"
    check(vector, with_header(vector, "x-signature", f"ts=1700000000,v1={signature}"))


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("t=1700000000", "malformed header stripe-signature: no v1 signature"),
        (
            "t=1700000000,v0=fef06cadf75c84473616c6d552322ef28b259b96b6beec58eb513495fc16a8d0",
            "malformed header stripe-signature: no v1 signature",
        ),
        (
            "v1=fef06cadf75c84473616c6d552322ef28b259b96b6beec58eb513495fc16a8d0",
            "malformed header stripe-signature: no t timestamp",
        ),
        (
            "t=17e8,v1=fef06cadf75c84473616c6d552322ef28b259b96b6beec58eb513495fc16a8d0",
            "malformed timestamp: not a whole number",
        ),
    ],
)
def test_stripe_malformed_headers(header, detail):
    vector = BY_NAME["stripe-F1"]
    assert rejected(vector, with_header(vector, "stripe-signature", header)) == detail


def test_stripe_rotation_header_verifies_with_either_secret_alone():
    vector = BY_NAME["stripe-F1-rotation"]
    for secret in ("whsec_old_secret", "whsec_test_secret"):
        check(vector, vector.request(), settings={"preset": "stripe", "secrets": [secret]})
    single = BY_NAME["stripe-F1"]
    settings = {"preset": "stripe", "secrets": ["whsec_old_secret"]}
    assert rejected(single, single.request(), settings=settings) == "no signature matched"


def test_standard_official_negative_last_char_changed():
    vector = BY_NAME["standard-official"]
    request = with_header(
        vector, "webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
    )
    assert rejected(vector, request) == "no signature matched"


def test_standard_multi_signature_with_unknown_versions_passes():
    vector = BY_NAME["standard-official"]
    other = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    value = f"v1,{other} v2,{other} {vector.headers['webhook-signature']} v1,{other}"
    check(vector, with_header(vector, "webhook-signature", value))


def test_standard_ignores_a_valid_signature_under_an_unknown_version():
    vector = BY_NAME["standard-official"]
    valid = vector.headers["webhook-signature"].removeprefix("v1,")
    request = with_header(vector, "webhook-signature", f"v2,{valid} v1a,{valid}")
    assert rejected(vector, request) == "malformed header webhook-signature: no v1 signature"


def test_standard_secret_with_or_without_the_whsec_prefix():
    vector = BY_NAME["standard-official"]
    bare = vector.secret.removeprefix("whsec_")
    check(vector, vector.request(), settings={"preset": "standard", "secrets": [bare]})


def test_paddle_official_only_the_third_secret_signs():
    vector = BY_NAME["paddle-official"]
    *others, signer = vector.secrets
    assert signer == vector.secret
    check(vector, vector.request(), settings={"preset": "paddle", "secrets": [signer]})
    for secret in others:
        settings = {"preset": "paddle", "secrets": [secret]}
        assert rejected(vector, vector.request(), settings=settings) == "no signature matched"


def test_twilio_signature_without_port_verifies_a_url_with_port():
    vector = BY_NAME["twilio-official-form"]
    request = vector.request(url="https://mycompany.com:443/myapp.php?foo=1&bar=2")
    check(vector, request)


def test_twilio_behind_a_proxy_needs_public_url():
    vector = BY_NAME["twilio-F14"]
    settings = {k: v for k, v in vector.verify.items() if k != "public_url"}
    assert rejected(vector, vector.request(), settings=settings) == "no signature matched"


def test_twilio_hmac_sha256_signature_settings():
    vector = BY_NAME["twilio-official-form"]
    request = vector.request()
    message = vector.scheme.message(vector, request)
    sha256 = base64.b64encode(hmac.new(b"12345", message, hashlib.sha256).digest()).decode()
    settings_header = {"x-twilio-webhooks-signature-settings": "key=k1,algorithm=HMAC_SHA256"}
    headers = {**vector.headers, **settings_header, "x-twilio-signature": sha256}
    check(vector, vector.request(headers=headers))
    # the SHA-1 signature does not count once the account says SHA-256
    headers = {**vector.headers, **settings_header}
    assert rejected(vector, vector.request(headers=headers)) == "no signature matched"


def test_twilio_body_sha256_must_match_even_when_the_url_is_signed():
    vector = BY_NAME["twilio-official-bodysha256"]
    request = vector.request(body=vector.body + b" ")
    assert rejected(vector, request) == "body does not match its bodySHA256"


def test_basic_wrong_username():
    vector = BY_NAME["basic-F15"]
    value = "Basic " + base64.b64encode(b"someone:s3cr3t-pass").decode()
    assert rejected(vector, with_header(vector, "authorization", value)) == (
        "credentials did not match"
    )


def test_every_fixture_name_is_unique_and_every_scheme_is_covered():
    assert len(BY_NAME) == len(VECTORS)
    presets = {v.verify.get("preset") or v.verify["type"] for v in VECTORS}
    assert presets >= {
        "github",
        "standard",
        "shopify",
        "typeform",
        "tally",
        "hubspot-v3",
        "mercadopago",
        "paddle",
        "calendly",
        "webflow",
        "formspree",
        "stripe",
        "slack",
        "twilio",
        "basic",
    }
