"""The generic `hmac` verifier, its configuration errors, presets, token-in-form, and
property tests over every scheme. Expected signatures are computed here with hmac/hashlib."""

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exceptions import RejectedRequest
from bridge.sources.presets import PRESETS, expand
from bridge.sources.registry import build_verifier
from bridge.sources.request import RawRequest
from tests.sources.vectors import VECTORS

NOW = 1_700_000_000.0
URL = "https://h.example/hooks/x"
BODY = b'{"id":"evt_1","amount":42}'


def req(headers=None, *, body=BODY, method="POST", url=URL, query=()):
    return RawRequest(method=method, url=url, headers=headers or {}, query=tuple(query), body=body)


def mac(key, message, algorithm="sha256"):
    key = key.encode() if isinstance(key, str) else key
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def b64(data):
    return base64.b64encode(data).decode()


def passes(config, request, now=NOW):
    build_verifier(config).verify(request, now=now)


def reason(config, request, now=NOW):
    with pytest.raises(RejectedRequest) as caught:
        build_verifier(config).verify(request, now=now)
    assert (caught.value.status, caught.value.error) == (401, "signature_invalid")
    assert caught.value.detail
    return caught.value.detail


# --- the generic hmac type ------------------------------------------------------------------


def test_sha1_hex_of_the_body():
    config = {"type": "hmac", "secrets": ["k1"], "header": "X-Sig", "algorithm": "sha1"}
    signature = mac("k1", BODY, "sha1").hex()
    passes(config, req({"x-sig": signature}))
    passes(config, req({"x-sig": signature.upper()}))  # hex is not case-sensitive
    passes(config, req({"x-sig": f"  {signature} "}))
    sha256 = mac("k1", BODY).hex()
    assert reason(config, req({"x-sig": sha256})) == "no signature matched"
    assert reason(config, req({"x-sig": "xyz"})) == "malformed header x-sig: signature is not hex"


def test_sha512_base64_with_a_prefix():
    config = {
        "type": "hmac",
        "secrets": ["k2"],
        "header": "X-Sig",
        "algorithm": "sha512",
        "encoding": "base64",
        "prefix": "sha512=",
    }
    digest = mac("k2", BODY, "sha512")
    assert len(digest) == 64
    passes(config, req({"x-sig": "sha512=" + b64(digest)}))
    # the URL-safe alphabet, padding left off, is the same signature
    urlsafe = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    passes(config, req({"x-sig": "sha512=" + urlsafe}))
    assert reason(config, req({"x-sig": b64(digest)})) == (
        "malformed header x-sig: expected the prefix sha512="
    )
    truncated = "sha512=" + b64(digest[:32])
    assert reason(config, req({"x-sig": truncated})) == "no signature matched"


def test_secret_encoding_base64_uses_the_decoded_bytes():
    key = b"\x00\xffraw key bytes\x10"
    config = {
        "type": "hmac",
        "secrets": [b64(key)],
        "header": "X-Sig",
        "secret_encoding": "base64",
    }
    passes(config, req({"x-sig": mac(key, BODY).hex()}))
    as_text = mac(b64(key), BODY).hex()
    assert reason(config, req({"x-sig": as_text})) == "no signature matched"


@pytest.mark.parametrize("prefix", ["whsec_", ""])
def test_secret_encoding_whsec_base64(prefix):
    key = bytes(range(32))
    config = {
        "type": "hmac",
        "secrets": [prefix + b64(key)],
        "header": "X-Sig",
        "secret_encoding": "whsec_base64",
        "encoding": "base64",
    }
    passes(config, req({"x-sig": b64(mac(key, BODY))}))
    with_prefix_text = b64(mac("whsec_" + b64(key), BODY))
    assert reason(config, req({"x-sig": with_prefix_text})) == "no signature matched"


KV = {
    "type": "hmac",
    "secrets": ["kv-secret"],
    "header": "X-Sig",
    "format": "kv",
    "pair_sep": ";",
    "kv_sep": ":",
    "signature_keys": ["s1", "s2"],
    "timestamp_key": "time",
    "message": "{timestamp}|{body}",
}


def kv_signature():
    return mac("kv-secret", b"1700000000|" + BODY).hex()


def test_kv_with_custom_separators_and_repeated_keys():
    good = kv_signature()
    bad = "00" * 32
    passes(KV, req({"x-sig": f"time:1700000000; s1:{bad}; s1:{good}"}))
    passes(KV, req({"x-sig": f"s2:{good};time:1700000000;s1:{bad}"}))
    passes(KV, req({"x-sig": f"junk;time:1700000000;s1:nothex;s2:{good}"}))
    assert reason(KV, req({"x-sig": f"time:1700000000;s1:{bad};s1:{bad}"})) == (
        "no signature matched"
    )
    # the default separators are not these
    assert reason(KV, req({"x-sig": f"time=1700000000,s1={good}"})) == (
        "malformed header x-sig: no s1 or s2 signature"
    )
    assert reason(KV, req({"x-sig": f"time:1700000000;s3:{good}"})) == (
        "malformed header x-sig: no s1 or s2 signature"
    )
    assert reason(KV, req({"x-sig": f"s1:{good}"})) == ("malformed header x-sig: no time timestamp")


def test_kv_timestamp_must_be_fresh_and_a_whole_number():
    header = {"x-sig": f"time:1700000000;s1:{kv_signature()}"}
    assert reason(KV, req(header), now=NOW + 301) == "timestamp outside tolerance"
    assert reason(KV, req(header), now=NOW - 301) == "timestamp outside tolerance"
    passes(KV, req(header), now=NOW + 300)
    for bad in ("-1700000000", "1700000000.0", "0x65", "１７００", ""):
        detail = reason(KV, req({"x-sig": f"time:{bad};s1:{kv_signature()}"}))
        assert detail == "malformed timestamp: not a whole number"


MS = {
    "type": "hmac",
    "secrets": ["ms-secret"],
    "header": "X-Sig",
    "timestamp_header": "X-Ts",
    "timestamp_unit": "ms",
    "message": "{timestamp}.{body}",
    "tolerance": 60,
}


def ms_request(ts):
    return req({"x-ts": ts, "x-sig": mac("ms-secret", f"{ts}.".encode() + BODY).hex()})


def test_timestamp_in_milliseconds():
    request = ms_request("1700000000500")  # NOW + 0.5 s
    passes(MS, request)
    passes(MS, request, now=NOW + 60.5)
    passes(MS, request, now=NOW - 59.5)
    assert reason(MS, request, now=NOW + 61) == "timestamp outside tolerance"
    assert reason(MS, request, now=NOW - 60) == "timestamp outside tolerance"
    # seconds sent to a milliseconds scheme are 1970
    assert reason(MS, ms_request("1700000000")) == "timestamp outside tolerance"
    assert reason(MS, req({"x-sig": "00"})) == "missing header x-ts"


def test_message_with_method_url_header_and_lower_cased_query():
    config = {
        "type": "hmac",
        "secrets": ["tpl"],
        "header": "X-Sig",
        "message": "{method} {url}\n{header:X-Id}\n{query:Account|lower}\n{body}",
    }
    url = URL + "?Account=ABC-9"
    message = f"POST {url}\nid-1\nabc-9\n".encode() + BODY
    headers = {"x-id": "id-1", "x-sig": mac("tpl", message).hex()}
    query = [("Account", "ABC-9")]
    passes(config, req(headers, url=url, query=query))
    assert reason(config, req(headers, url=url, query=query, method="PUT")) == (
        "no signature matched"
    )
    assert reason(config, req(headers, url=URL + "?Account=abc-9", query=query)) == (
        "no signature matched"
    )
    other = {**headers, "x-id": "id-2"}
    assert reason(config, req(other, url=url, query=query)) == "no signature matched"
    no_id = {"x-sig": headers["x-sig"]}
    assert reason(config, req(no_id, url=url, query=query)) == "missing header x-id"
    assert reason(config, req(headers, url=url)) == "missing query parameter Account"
    # query names are case-sensitive, header names are not
    lower = [("account", "ABC-9")]
    assert reason(config, req(headers, url=url, query=lower)) == ("missing query parameter Account")


def test_header_alternatives_take_the_first_present():
    config = {
        "type": "hmac",
        "secrets": ["alt"],
        "header": "X-Sig",
        "message": "{header:X-A|X-B}.{body}",
    }

    def signed(value, **headers):
        return req({**headers, "x-sig": mac("alt", f"{value}.".encode() + BODY).hex()})

    passes(config, signed("b-value", **{"x-b": "b-value"}))
    passes(config, signed("a-value", **{"x-a": "a-value", "x-b": "b-value"}))
    detail = reason(config, signed("b-value", **{"x-a": "a-value", "x-b": "b-value"}))
    assert detail == "no signature matched"
    assert reason(config, signed("")) == "missing header x-a or x-b"


def test_literal_text_and_public_url_with_the_request_query():
    config = {
        "type": "hmac",
        "secrets": ["pub"],
        "header": "X-Sig",
        "message": "v9:{url}:{body}",
        "public_url": "https://public.example/in",
    }
    inner = "http://10.0.0.1:8000/in?x=1&y=%20"
    signed = mac("pub", b"v9:https://public.example/in?x=1&y=%20:" + BODY).hex()
    passes(config, req({"x-sig": signed}, url=inner, query=[("x", "1"), ("y", " ")]))
    internal = mac("pub", f"v9:{inner}:".encode() + BODY).hex()
    assert reason(config, req({"x-sig": internal}, url=inner)) == "no signature matched"


def test_several_signature_headers_take_the_first_present():
    config = {"type": "hmac", "secrets": ["h"], "header": ["X-New-Sig", "X-Old-Sig"]}
    good = mac("h", BODY).hex()
    passes(config, req({"x-old-sig": good}))
    passes(config, req({"x-new-sig": good, "x-old-sig": "00"}))
    assert reason(config, req({"x-new-sig": "00", "x-old-sig": good})) == "no signature matched"
    assert reason(config, req()) == "missing header x-new-sig or x-old-sig"


def test_secret_rotation_either_secret_signs():
    config = {"type": "hmac", "secrets": ["old-secret", "new-secret"], "header": "X-Sig"}
    for secret in ("old-secret", "new-secret"):
        passes(config, req({"x-sig": mac(secret, BODY).hex()}))
    assert reason(config, req({"x-sig": mac("other", BODY).hex()})) == "no signature matched"
    preset = {"preset": "shopify", "secrets": ["", "old-secret", "new-secret"]}
    for secret in ("old-secret", "new-secret"):
        passes(preset, req({"x-shopify-hmac-sha256": b64(mac(secret, BODY))}))


def test_secret_headers_are_the_signature_headers():
    verifier = build_verifier({"type": "hmac", "secrets": ["k"], "header": ["X-A", "X-B"]})
    assert verifier.secret_headers == {"x-a", "x-b"}
    assert build_verifier({"preset": "stripe", "secrets": ["k"]}).secret_headers == {
        "stripe-signature"
    }
    assert build_verifier({"type": "twilio", "secrets": ["k"]}).secret_headers == {
        "x-twilio-signature"
    }


# --- presets --------------------------------------------------------------------------------


def test_preset_overridden_key_by_key():
    config = {"preset": "github", "header": "X-Other-Sig", "secrets": ["gh"]}
    assert expand(config) == {
        "type": "hmac",
        "header": "X-Other-Sig",
        "prefix": "sha256=",
        "encoding": "hex",
        "secrets": ["gh"],
    }
    signature = "sha256=" + mac("gh", BODY).hex()
    passes(config, req({"x-other-sig": signature}))
    assert reason(config, req({"x-hub-signature-256": signature})) == ("missing header x-other-sig")
    # the preset's prefix still applies
    assert reason(config, req({"x-other-sig": mac("gh", BODY).hex()})) == (
        "malformed header x-other-sig: expected the prefix sha256="
    )


def test_preset_tolerance_overridden():
    header = f"t=1700000000,v1={mac('st', b'1700000000.' + BODY).hex()}"
    request = req({"stripe-signature": header})
    default = {"preset": "stripe", "secrets": ["st"]}
    narrow = {**default, "tolerance": 60}
    off = {**default, "tolerance": 0}
    passes(default, request, now=NOW + 300)
    assert reason(narrow, request, now=NOW + 61) == "timestamp outside tolerance"
    passes(narrow, request, now=NOW - 60)
    passes(off, request, now=NOW + 86_400 * 365)


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [("stripe", 300), ("calendly", 180), ("paddle", 5), ("mercadopago", 0), ("slack", 300)],
)
def test_preset_tolerances(name, tolerance):
    verifier = build_verifier({"preset": name, "secrets": ["x"]})
    assert verifier.tolerance == tolerance


def test_every_preset_builds_with_one_secret():
    for name in PRESETS:
        secret = "whsec_" + b64(b"k" * 24) if name == "standard" else "secret"
        assert build_verifier({"preset": name, "secrets": [secret]}).keys


# --- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"preset": "github", "secrets": ["", None]},
        {"preset": "stripe"},
        {"type": "hmac", "header": "X-Sig", "secrets": [""]},
        {"type": "twilio", "secrets": []},
        {"type": "token", "location": "form:secret", "values": [""]},
        {"type": "basic", "username": "u", "passwords": [None]},
    ],
)
def test_no_secret_left_is_a_config_error(config):
    with pytest.raises(ValueError, match="never accept everything"):
        build_verifier(config)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="unknown preset 'strype'") as caught:
        build_verifier({"preset": "strype", "secrets": ["s"]})
    for name in PRESETS:
        assert name in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"message": "{nonce}.{body}"}, "unknown placeholder {nonce}"),
        ({"message": "{Body}"}, "unknown placeholder {Body}"),
        ({"message": "{header:}"}, "names no header"),
        ({"message": "{query:a|}"}, "names no query"),
        ({"message": "{timestamp}.{body}"}, "no timestamp_header or timestamp_key"),
        (
            {"message": "{timestamp}.{body}", "timestamp_key": "t"},
            "timestamp_key reads a key=value header",
        ),
        ({"algorithm": "md5"}, "algorithm 'md5'"),
        ({"format": "json"}, "format 'json'"),
        ({"encoding": "base32"}, "encoding 'base32'"),
        ({"timestamp_unit": "us"}, "timestamp_unit 'us'"),
        ({"format": "kv", "signature_keys": []}, "format kv needs"),
        ({"format": "kv", "pair_sep": ""}, "format kv needs"),
        ({"header": []}, "needs the `header`"),
        ({"header": ""}, "needs the `header`"),
    ],
)
def test_bad_hmac_parameters_are_config_errors(changes, message):
    config = {"type": "hmac", "secrets": ["s3cret-value"], "header": "X-Sig", **changes}
    with pytest.raises(ValueError) as caught:
        build_verifier(config)
    assert message in str(caught.value)
    assert "s3cret-value" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["base64", "whsec_base64"])
@pytest.mark.parametrize("secret", ["not base64 $ecret!", "whsec_abc", "QUJD\u00e9"])
def test_bad_base64_secret_error_does_not_show_the_secret(encoding, secret):
    config = {"type": "hmac", "secrets": [secret], "header": "X-Sig", "secret_encoding": encoding}
    with pytest.raises(ValueError, match="not valid base64") as caught:
        build_verifier(config)
    assert secret not in str(caught.value)
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_standard_preset_with_a_stripe_style_secret_is_a_config_error():
    with pytest.raises(ValueError, match="not valid base64") as caught:
        build_verifier({"preset": "standard", "secrets": ["whsec_test_secret!"]})
    assert "test_secret" not in str(caught.value)


def test_unknown_type_lists_the_types():
    with pytest.raises(ValueError, match="type 'magic' is not available") as caught:
        build_verifier({"type": "magic"})
    for name in ("none", "token", "basic", "hmac", "twilio"):
        assert name in str(caught.value)
    with pytest.raises(ValueError, match="type None"):
        build_verifier({})


@pytest.mark.parametrize("location", ["", "form", "form:", "body:x", "header"])
def test_bad_token_location(location):
    with pytest.raises(ValueError, match="location must be"):
        build_verifier({"type": "token", "location": location, "values": ["t"]})


# --- token in a form field ------------------------------------------------------------------

FORM_TOKEN = {"type": "token", "location": "form:secret", "values": ["tok-1", "tok-2"]}
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


def multipart(*parts, boundary="b0undary"):
    lines = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        lines += [f"--{boundary}", f"Content-Disposition: {disposition}", "", value]
    body = "\r\n".join([*lines, f"--{boundary}--", ""]).encode()
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def test_token_in_an_urlencoded_form_field():
    verifier = build_verifier(FORM_TOKEN)
    assert verifier.secret_fields == {"secret"}
    assert verifier.secret_headers == frozenset() and verifier.secret_query == frozenset()
    passes(FORM_TOKEN, req(URLENCODED, body=b"name=Ana&secret=tok-2"))
    passes(FORM_TOKEN, req(URLENCODED, body=b"secret=tok%2D1&name=Ana"))
    # the first field of that name counts
    passes(FORM_TOKEN, req(URLENCODED, body=b"secret=tok-1&secret=wrong"))
    assert reason(FORM_TOKEN, req(URLENCODED, body=b"secret=wrong&secret=tok-1")) == (
        "token did not match"
    )
    assert reason(FORM_TOKEN, req(URLENCODED, body=b"name=Ana")) == "missing form field secret"
    assert reason(FORM_TOKEN, req(URLENCODED, body=b"Secret=tok-1")) == (
        "missing form field secret"
    )
    # no Content-Type: read as a urlencoded form
    passes(FORM_TOKEN, req(body=b"secret=tok-1"))
    assert reason(FORM_TOKEN, req(URLENCODED, body=b"secret=\xff")) == (
        "malformed body: cannot read the form field secret"
    )


def test_token_in_a_multipart_form_field():
    headers, body = multipart(("name", "Ana", None), ("secret", "tok-1", None))
    passes(FORM_TOKEN, req(headers, body=body))
    headers, body = multipart(("secret", "tok-3", None))
    assert reason(FORM_TOKEN, req(headers, body=body)) == "token did not match"
    # a file part is not a field value
    headers, body = multipart(("secret", "tok-1", "secret.txt"))
    assert reason(FORM_TOKEN, req(headers, body=body)) == "missing form field secret"
    no_boundary = {"content-type": "multipart/form-data"}
    assert reason(FORM_TOKEN, req(no_boundary, body=body)) == (
        "malformed body: cannot read the form field secret"
    )


def test_token_in_a_form_with_too_many_fields_is_a_rejection():
    body = b"a=1&" * 10_001 + b"secret=tok-1"
    assert reason(FORM_TOKEN, req(URLENCODED, body=body)) == (
        "malformed body: cannot read the form field secret"
    )


def test_twilio_form_with_too_many_fields_is_a_rejection():
    config = {"type": "twilio", "secrets": ["12345"]}
    request = req({"x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, body=b"a=1&" * 10_001)
    assert reason(config, request) == "malformed body: more than 10000 form fields"


def test_a_preset_cannot_be_turned_into_another_type():
    with pytest.raises(ValueError, match="preset 'stripe' is an hmac scheme"):
        build_verifier({"preset": "stripe", "secrets": ["whsec_x"], "type": "none"})


def test_a_non_ascii_header_value_is_signed_as_the_bytes_sent():
    # Starlette decodes header bytes as latin-1; the signed bytes are the ones on the wire
    config = {
        "type": "hmac",
        "secrets": ["k"],
        "header": "X-Sig",
        "message": "{header:x-id}.{body}",
    }
    wire = "ação-1".encode()
    signature = mac("k", wire + b"." + BODY).hex()
    passes(config, req({"x-sig": signature, "x-id": wire.decode("latin-1")}))


# --- properties -----------------------------------------------------------------------------


def _secret(name):
    return "whsec_" + b64(b"k" * 24) if name == "standard" else "s3cret"


FUZZED = {
    **{name: {"preset": name, "secrets": [_secret(name)]} for name in PRESETS},
    "hubspot-v3-public-url": {
        "preset": "hubspot-v3",
        "secrets": ["s3cret"],
        "public_url": "https://public.example/hooks",
    },
    "twilio": {"type": "twilio", "secrets": ["s3cret"]},
    "twilio-public-url": {
        "type": "twilio",
        "secrets": ["s3cret"],
        "public_url": "https://public.example/hooks",
    },
    "token-header": {"type": "token", "location": "header:X-Token", "values": ["s3cret"]},
    "token-query": {"type": "token", "location": "query:token", "values": ["s3cret"]},
    "token-form": {"type": "token", "location": "form:token", "values": ["s3cret"]},
    "basic": {"type": "basic", "username": "u", "passwords": ["s3cret"]},
    "hmac": {
        "type": "hmac",
        "secrets": ["s3cret"],
        "header": ["X-Sig", "X-Sig-2"],
        "format": "kv",
        "pair_sep": ";",
        "kv_sep": ":",
        "signature_keys": ["s1", "s2"],
        "timestamp_key": "time",
        "timestamp_unit": "ms",
        "message": "{method}{url}{header:X-Id|X-Alt}{query:q|lower}{timestamp}{body}",
        "encoding": "base64",
    },
}
COMMON_HEADERS = [
    "content-type",
    "authorization",
    "x-token",
    "x-id",
    "x-alt",
    "x-request-id",
    "webhook-id",
    "svix-id",
    "x-twilio-signature",
    "x-twilio-webhooks-signature-settings",
]


def own_headers(config):
    """The header names a verify config reads (signature, timestamp, message lookups)."""
    settings = expand(config)
    names = []
    for key in ("header", "timestamp_header"):
        value = settings.get(key) or []
        names += [value] if isinstance(value, str) else list(value)
    for spec in re.findall(r"\{header:([^{}]*)\}", settings.get("message", "")):
        names += spec.split("|")
    return sorted({name.lower() for name in names if name and name != "lower"})


DIGEST = st.binary(max_size=64)
SIGNATURE_TEXT = st.one_of(
    DIGEST.map(bytes.hex),
    DIGEST.map(b64),
    st.text(alphabet="0123456789abcdefABCDEF+/=_- ", max_size=90),
)
TIMESTAMP = st.sampled_from(
    ["1700000000", "1700000000000", "0", "-5", "17e8", "9" * 23, "\u0661", ""]
)
PAIR = st.tuples(
    st.sampled_from(["t", "ts", "time", "v0", "v1", "h1", "s1", "v1a", "v2", ""]),
    st.sampled_from(["=", ":", ","]),
    st.one_of(SIGNATURE_TEXT, TIMESTAMP),
).map("".join)
CREDENTIALS = st.tuples(
    st.sampled_from(["u", "x", ""]),
    st.sampled_from([":", ""]),
    st.one_of(st.just("s3cret"), st.text(max_size=10)),
)
# the real header values of the vectors, as they are or spliced: they reach the HMAC checks
REAL_VALUES = sorted({value for vector in VECTORS for value in vector.headers.values()})


def spliced(values):
    return st.tuples(
        st.sampled_from(values), st.integers(0, 100), st.integers(0, 3), st.text(max_size=3)
    ).map(lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2] :])


HEADER_VALUE = st.one_of(
    st.sampled_from(REAL_VALUES),
    spliced(REAL_VALUES),
    st.text(max_size=60),
    SIGNATURE_TEXT,
    TIMESTAMP,
    st.lists(PAIR, max_size=5).flatmap(
        lambda pairs: st.sampled_from([",", ";", " "]).map(lambda sep: sep.join(pairs))
    ),
    st.tuples(st.sampled_from(["sha256=", "v0=", "sha512="]), SIGNATURE_TEXT).map("".join),
    CREDENTIALS.map(lambda parts: "Basic " + b64("".join(parts).encode())),
    st.sampled_from(
        [
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "key=k,algorithm=HMAC_SHA256",
        ]
    ),
)
QUERY = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["data.id", "bodySHA256", "token", "q"]), st.text(max_size=8)),
        st.text(max_size=30),
    ),
    max_size=4,
)


VERIFIERS = {name: build_verifier(config) for name, config in FUZZED.items()}
ALL_HEADERS = sorted({h for c in FUZZED.values() for h in own_headers(c)} | {*COMMON_HEADERS})
HEADER_NAME = st.one_of(
    st.sampled_from(ALL_HEADERS), st.text(min_size=1, max_size=15).map(str.lower)
)


# shapes for the headers of the fuzzed verifiers that no vector has
MADE_UP = {
    "x-sig": ["time:1700000000000;s1:" + b64(bytes(32)), "s2:" + b64(bytes(32))],
    "x-sig-2": ["time:1700000000000;s2:" + b64(bytes(32))],
    "x-id": ["id-1"],
    "x-alt": ["alt-1"],
    "x-token": ["s3cret", "s3cret "],
}


def value_for(header):
    """Mostly what the vectors send in this header (intact or spliced), else anything."""
    real = {v.headers[header] for v in VECTORS if header in v.headers}
    real = sorted(real | set(MADE_UP.get(header, ()))) or REAL_VALUES
    return st.one_of(st.sampled_from(real), spliced(real), HEADER_VALUE)


# the headers of every scheme at once (each present or not), plus arbitrary ones: every
# example reaches every verifier with its own header names
HEADERS = st.tuples(
    st.fixed_dictionaries({}, optional={name: value_for(name) for name in ALL_HEADERS}),
    st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=4),
).map(lambda pair: {**pair[0], **pair[1]})


@settings(max_examples=200, deadline=None)
@given(headers=HEADERS, body=st.binary(max_size=200), query=QUERY)
def test_verify_only_ever_rejects_with_a_401(headers, body, query):
    request = req(headers, body=body, query=[*query, ("q", "1")], url=URL + "?q=1")
    for name, verifier in VERIFIERS.items():
        try:
            verifier.verify(request, now=NOW)
        except RejectedRequest as exc:
            assert (exc.status, exc.error) == (401, "signature_invalid"), name
            assert isinstance(exc.detail, str) and exc.detail, name
            assert "s3cret" not in exc.detail, name


def test_the_fuzzed_verifiers_cover_every_preset_and_type():
    assert {c.get("preset") for c in FUZZED.values()} >= set(PRESETS)
    assert {c.get("type") for c in FUZZED.values()} >= {"twilio", "token", "basic", "hmac"}
    assert {"webhook-signature", "x-slack-request-timestamp", "x-id"} <= set(ALL_HEADERS)


def test_own_headers_covers_each_scheme():
    assert own_headers(FUZZED["standard"]) == [
        "svix-id",
        "svix-signature",
        "svix-timestamp",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
    ]
    assert own_headers(FUZZED["mercadopago"]) == ["x-request-id", "x-signature"]
    assert own_headers(FUZZED["slack"]) == ["x-slack-request-timestamp", "x-slack-signature"]


# round trip: sign with the right secret at a fresh time, independently of bridge code


def sign_stripe(secret, body, ts, draw):
    signature = mac(secret, f"{ts}.".encode() + body).hex()
    return {"stripe-signature": f"t={ts},v1={signature}"}, "POST", URL


def sign_github(secret, body, ts, draw):
    return {"x-hub-signature-256": "sha256=" + mac(secret, body).hex()}, "POST", URL


def sign_standard(secret, body, ts, draw):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_", min_size=1))
    signature = b64(mac(key, f"{msg_id}.{ts}.".encode() + body))
    prefix = draw(st.sampled_from(["webhook", "svix"]))
    return (
        {
            f"{prefix}-id": msg_id,
            f"{prefix}-timestamp": str(ts),
            f"{prefix}-signature": f"v1,{signature}",
        },
        "POST",
        URL,
    )


def sign_slack(secret, body, ts, draw):
    signature = mac(secret, f"v0:{ts}:".encode() + body).hex()
    headers = {"x-slack-request-timestamp": str(ts), "x-slack-signature": "v0=" + signature}
    return headers, "POST", URL


def sign_hubspot(secret, body, ts, draw):
    ts_ms = ts * 1000 + draw(st.integers(-999, 999))
    method = draw(st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE"]))
    url = draw(st.sampled_from([URL, URL + "?portalId=62515&x=%2F"]))
    signature = b64(mac(secret, f"{method}{url}".encode() + body + str(ts_ms).encode()))
    headers = {"x-hubspot-request-timestamp": str(ts_ms), "x-hubspot-signature-v3": signature}
    return headers, method, url


SIGNERS = {
    "stripe": sign_stripe,
    "github": sign_github,
    "standard": sign_standard,
    "slack": sign_slack,
    "hubspot-v3": sign_hubspot,
}
SECRET_TEXT = st.text(min_size=1, max_size=40)
WHSEC = st.binary(min_size=24, max_size=64).map(lambda key: "whsec_" + b64(key))


@pytest.mark.parametrize("preset", sorted(SIGNERS))
@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    body=st.binary(max_size=300),
    now=st.integers(1_000_000_000, 4_000_000_000),
    age=st.integers(-299, 299),
)
def test_round_trip_signed_requests_verify(preset, data, body, now, age):
    secret = data.draw(WHSEC if preset == "standard" else SECRET_TEXT)
    headers, method, url = SIGNERS[preset](secret, body, now - age, data.draw)
    request = req(headers, body=body, method=method, url=url, query=_query_pairs(url))
    build_verifier({"preset": preset, "secrets": [secret]}).verify(request, now=float(now))
    # and a different secret does not verify the same request
    other = {"preset": preset, "secrets": [_other_secret(preset, secret)]}
    assert reason(other, request, now=float(now)) == "no signature matched"


def _query_pairs(url):
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _other_secret(preset, secret):
    if preset == "standard":
        key = base64.b64decode(secret.removeprefix("whsec_"))
        return "whsec_" + b64(bytes([key[0] ^ 1]) + key[1:])
    return secret + "x"
