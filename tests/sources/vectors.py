"""Signed webhook requests to test the verifiers against (sources.md §15-§17).

One `Vector` per official test vector (§16) and per fixture of §17 that carries a
signature or credentials. Bodies are the exact bytes that were signed: never re-serialise
them. Each vector also knows how to compute its own signature with hmac/hashlib alone (the
`scheme`), independently of bridge code, so tests can check the fixtures and build variants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.sources.request import RawRequest

# --- bodies, byte for byte as signed ------------------------------------------------------

# §17 F-1
STRIPE_BODY = (
    b'{"id":"evt_1QfxTest0000000001","object":"event","api_version":"2024-06-20",'
    b'"created":1700000000,"data":{"object":{"id":"pi_3QfxTest0000000001",'
    b'"object":"payment_intent","amount":4200,"currency":"eur","customer":"cus_QfxTest001",'
    b'"receipt_email":"ana.lima@example.com","status":"succeeded",'
    b'"metadata":{"order_ref":"WEB-1042"}}},"livemode":false,"pending_webhooks":1,'
    b'"request":{"id":null,"idempotency_key":null},"type":"payment_intent.succeeded"}'
)

# §17 F-2
GITHUB_JSON_BODY = (
    b'{"action":"opened","issue":{"id":2001,"number":17,'
    b'"title":"Contact form broken on Safari","body":"Submitting returns 500.","state":"open",'
    b'"html_url":"https://github.com/acme/site/issues/17","user":{"login":"octocat","id":1}},'
    b'"repository":{"id":99,"full_name":"acme/site","private":false},'
    b'"sender":{"login":"octocat","id":1}}'
)

# §17 F-3
GITHUB_FORM_BODY = (
    b"payload=%7B%22action%22%3A%22opened%22%2C%22issue%22%3A%7B%22id%22%3A2001%2C"
    b"%22number%22%3A17%2C%22title%22%3A%22Contact+form+broken+on+Safari%22%2C"
    b"%22body%22%3A%22Submitting+returns+500.%22%2C%22state%22%3A%22open%22%2C"
    b"%22html_url%22%3A%22https%3A%2F%2Fgithub.com%2Facme%2Fsite%2Fissues%2F17%22%2C"
    b"%22user%22%3A%7B%22login%22%3A%22octocat%22%2C%22id%22%3A1%7D%7D%2C"
    b"%22repository%22%3A%7B%22id%22%3A99%2C%22full_name%22%3A%22acme%2Fsite%22%2C"
    b"%22private%22%3Afalse%7D%2C%22sender%22%3A%7B%22login%22%3A%22octocat%22%2C"
    b"%22id%22%3A1%7D%7D"
)

# §17 F-4
STANDARD_BODY = (
    b'{"type":"invoice.paid","timestamp":"2023-11-14T22:13:20Z","data":{"id":"inv_8812",'
    b'"customer_email":"ana.lima@example.com","amount":4200,"currency":"EUR"}}'
)

# §17 F-5
SHOPIFY_BODY = (
    b'{"id":820982911946154508,'
    b'"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","name":"#1042",'
    b'"order_number":1042,"email":"ana.lima@example.com",'
    b'"created_at":"2023-11-14T17:13:20-05:00","currency":"EUR","total_price":"42.00",'
    b'"financial_status":"paid","note":"Please gift wrap","customer":{"id":115310627314723954,'
    b'"email":"ana.lima@example.com","first_name":"Ana","last_name":"Lima"},'
    b'"line_items":[{"id":866550311766439020,"title":"T-Shirt","quantity":1,"price":"42.00",'
    b'"sku":"TSHIRT-001"}]}'
)

# §17 F-6
TYPEFORM_BODY = (
    '{"event_id":"01HFXTYPEFORMEVT0001","event_type":"form_response",'
    '"form_response":{"form_id":"lT4Z3j","token":"a3a12ec67a1365927098a606107fac15",'
    '"landed_at":"2023-11-14T22:10:02Z","submitted_at":"2023-11-14T22:13:20Z",'
    '"hidden":{"source":"pricing-page"},"definition":{"id":"lT4Z3j","title":"Contact us",'
    '"fields":[{"id":"Fq1","ref":"name","type":"short_text","title":"Your name"},{"id":"Fq2",'
    '"ref":"email","type":"email","title":"Your email"},{"id":"Fq3","ref":"topic",'
    '"type":"multiple_choice","title":"Topic"}]},"answers":[{"type":"text",'
    '"text":"João Müller","field":{"id":"Fq1","type":"short_text","ref":"name"}},'
    '{"type":"email","email":"joao@example.com","field":{"id":"Fq2","type":"email",'
    '"ref":"email"}},{"type":"choice","choice":{"label":"Billing"},"field":{"id":"Fq3",'
    '"type":"multiple_choice","ref":"topic"}}]}}'
).encode()

# §17 F-7
TALLY_BODY = (
    b'{"eventId":"a4cb511e-d513-4fa5-baee-b815d718dfd1","eventType":"FORM_RESPONSE",'
    b'"createdAt":"2023-11-14T22:13:20.000Z","data":{"responseId":"2wgx4n",'
    b'"submissionId":"2wgx4n","respondentId":"dwQKYm","formId":"VwbNEw",'
    b'"formName":"Support request","createdAt":"2023-11-14T22:13:20.000Z",'
    b'"fields":[{"key":"question_mVGEg3","label":"Email","type":"INPUT_EMAIL",'
    b'"value":"ana.lima@example.com"},{"key":"question_nPEGab","label":"Message",'
    b'"type":"TEXTAREA","value":"Invoice #88 is wrong"},{"key":"question_3EKz4n",'
    b'"label":"Priority","type":"MULTIPLE_CHOICE","value":["b1c2"],"options":[{"id":"a0b1",'
    b'"text":"Low"},{"id":"b1c2","text":"High"}]}]}}'
)

# §17 F-8
HUBSPOT_BODY = (
    b'[{"eventId":1000123,"subscriptionId":2400123,"portalId":62515,"appId":1160452,'
    b'"occurredAt":1700000000000,"subscriptionType":"contact.creation","attemptNumber":0,'
    b'"objectId":5151,"changeFlag":"CREATED","changeSource":"CRM"}]'
)

# §17 F-9
MERCADOPAGO_BODY = (
    b'{"action":"payment.updated","api_version":"v1","application_id":"2198830219731450",'
    b'"date_created":"2023-11-14T19:13:20Z","id":"112233445566","live_mode":true,'
    b'"type":"payment","user_id":"987654321","data":{"id":"123456789"}}'
)

# §17 F-10
PADDLE_BODY = (
    b'{"event_id":"evt_01hfxfixture0000000000001","event_type":"transaction.completed",'
    b'"occurred_at":"2023-11-14T22:13:20.000000Z",'
    b'"notification_id":"ntf_01hfxfixture0000000000001",'
    b'"data":{"id":"txn_01hfxfixture0000000000001","status":"completed",'
    b'"customer_id":"ctm_01hfxfixture000000000001","currency_code":"EUR",'
    b'"custom_data":{"order_ref":"WEB-1042"},"details":{"totals":{"total":"4200",'
    b'"currency_code":"EUR"}}}}'
)

# §17 F-11
CALENDLY_BODY = (
    b'{"created_at":"2023-11-14T22:13:20.000000Z",'
    b'"created_by":"https://api.calendly.com/users/AAAAAAAAAAAAAAAA",'
    b'"event":"invitee.created",'
    b'"payload":{'
    b'"uri":"https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/FIXTURE0001",'
    b'"email":"ana.lima@example.com","name":"Ana Lima","status":"active",'
    b'"timezone":"Europe/Lisbon",'
    b'"event":"https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2",'
    b'"questions_and_answers":[{"question":"What do you need help with?",'
    b'"answer":"Migrating our billing","position":0}],"tracking":{"utm_source":"newsletter",'
    b'"utm_campaign":null},"rescheduled":false,'
    b'"cancel_url":"https://calendly.com/cancellations/FIXTURE0001",'
    b'"created_at":"2023-11-14T22:13:19.000000Z","updated_at":"2023-11-14T22:13:20.000000Z"}}'
)

# §17 F-12
WEBFLOW_BODY = (
    b'{"triggerType":"form_submission","payload":{"name":"Contact Us",'
    b'"siteId":"65427cf400e02b306eaa049c","data":{"First Name":"Ana","Last Name":"Lima",'
    b'"email":"ana.lima@example.com","Message":"Please call me back"},'
    b'"submittedAt":"2023-11-14T22:13:20.000Z","id":"6321ca84df3949bfc6752327",'
    b'"formId":"65429eadebe8a9f3a30f62d0",'
    b'"formElementId":"4e038d2c-6a1e-4953-7be9-a59a2b453177"}}'
)

# §17 F-13
FORMSPREE_BODY = (
    b'{"form":"xyzzabcd","submission":{"email":"ana.lima@example.com","name":"Ana Lima",'
    b'"message":"Need a quote for 20 seats"}}'
)

# §17 F-14
TWILIO_SMS_BODY = (
    b"ToCountry=US&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&"
    b"From=%2B14155550100&To=%2B14155550199&Body=My+order+%231042+has+not+arrived&"
    b"MessageSid=SM0123456789abcdef0123456789abcdef&"
    b"AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01"
)

# §15 (Slack's worked example, also §17 F-16)
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554"
    b"%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)

FIXTURE_TS = 1700000000.0  # §17: every fixture is signed at 2023-11-14T22:13:20Z
GARBAGE = "%%garbage%%"  # neither hex, nor base64, nor key=value pairs
LOCAL = "http://127.0.0.1:8000/hooks"


# --- how each sender signs, written with hmac/hashlib only --------------------------------


def _utf8(secret: str) -> bytes:
    return secret.encode("utf-8")


def _whsec(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


@dataclass(frozen=True)
class Scheme:
    """The bytes a sender signs, the key a secret stands for, the hash and the encoding."""

    message: Callable[[Vector, RawRequest], bytes]
    key: Callable[[str], bytes] = _utf8
    algorithm: Callable[..., Any] = hashlib.sha256
    encoding: str = "hex"


def _query(request: RawRequest, name: str) -> str:
    return next((value for key, value in request.query if key == name), "")


def _twilio_message(vector: Vector, request: RawRequest) -> bytes:
    url = vector.signed_url or request.url
    if _query(request, "bodySHA256"):
        return url.encode("utf-8")  # a JSON body is covered by its hash in the URL
    pairs = urllib.parse.parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    names = sorted({name for name, _ in pairs})
    values = {name: sorted({v for n, v in pairs if n == name}) for name in names}
    return (url + "".join(name + v for name in names for v in values[name])).encode("utf-8")


BODY_HEX = Scheme(lambda v, r: r.body)
BODY_BASE64 = Scheme(lambda v, r: r.body, encoding="base64")
T_DOT_BODY = Scheme(lambda v, r: f"{v.ts}.".encode() + r.body)  # stripe, calendly, formspree
TS_COLON_BODY = Scheme(lambda v, r: f"{v.ts}:".encode() + r.body)  # paddle, webflow
SLACK = Scheme(lambda v, r: f"v0:{v.ts}:".encode() + r.body)
HUBSPOT_V3 = Scheme(
    lambda v, r: f"{r.method}{v.signed_url or r.url}".encode() + r.body + f"{v.ts}".encode(),
    encoding="base64",
)
MERCADOPAGO = Scheme(
    lambda v, r: (
        f"id:{_query(r, 'data.id').lower()};"
        f"request-id:{r.headers.get('x-request-id', '')};ts:{v.ts};"
    ).encode()
)
STANDARD = Scheme(
    lambda v, r: (
        (f"{r.headers.get('webhook-id') or r.headers.get('svix-id')}.{v.ts}.").encode() + r.body
    ),
    key=_whsec,
    encoding="base64",
)
TWILIO = Scheme(_twilio_message, algorithm=hashlib.sha1, encoding="base64")


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Vector:
    name: str
    verify: Mapping[str, Any]  # the source's `verify` settings, as a user writes them
    body: bytes
    headers: Mapping[str, str]  # lower-case names, as RawRequest holds them
    signature_header: str  # the header that carries the signature (or credentials)
    garbage_detail: str  # the 401 detail when that header holds GARBAGE
    scheme: Scheme | None  # None: not a signature (HTTP Basic auth)
    now: float = FIXTURE_TS  # a time at which the request is valid
    method: str = "POST"
    url: str = f"{LOCAL}/test"  # as this server saw it
    query: tuple[tuple[str, str], ...] = ()
    body_signed: bool = True
    body_detail: str = "no signature matched"  # the detail when one body byte changes
    ts: str | None = None  # the timestamp as signed (its time is `now`), if the scheme has one
    tolerance: float | None = None  # the window the configured verifier applies (0: none)
    signed_url: str | None = None  # the URL the sender signed, when not `url`
    signing_secret: str | None = None  # the secret that signed, when not the first one
    wrong: Mapping[str, Any] = field(default_factory=lambda: {"secrets": ["wrong-secret"]})
    wrong_detail: str = "no signature matched"
    missing: Mapping[str, str] | None = None  # header removed -> detail (default: signature)

    def request(self, **changes: Any) -> RawRequest:
        fields = {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "query": self.query,
            "body": self.body,
        }
        return RawRequest(**{**fields, **changes})

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.verify.get("secrets") or self.verify.get("passwords") or ())

    @property
    def secret(self) -> str:
        return self.signing_secret or self.secrets[0]

    @property
    def missing_details(self) -> Mapping[str, str]:
        if self.missing is not None:
            return self.missing
        return {self.signature_header: f"missing header {self.signature_header}"}

    def digest(self, request: RawRequest, secret: str) -> bytes:
        assert self.scheme is not None
        message = self.scheme.message(self, request)
        return hmac.new(self.scheme.key(secret), message, self.scheme.algorithm).digest()

    def expected(self, request: RawRequest, secret: str) -> str:
        """The signature `secret` gives `request`, written as the sender writes it."""
        digest = self.digest(request, secret)
        if self.scheme is not None and self.scheme.encoding == "base64":
            return base64.b64encode(digest).decode("ascii")
        return digest.hex()

    def variant(self, **changes: Any) -> Vector:
        return replace(self, **changes)


def _twilio_form(pairs: list[tuple[str, str]]) -> bytes:
    return urllib.parse.urlencode(pairs).encode("utf-8")


TWILIO_OFFICIAL_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_OFFICIAL_QUERY = (("foo", "1"), ("bar", "2"))
TWILIO_OFFICIAL_FORM = _twilio_form(
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
)
TWILIO_JSON_BODY = b'{"property": "value", "boolean": true}'
TWILIO_JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}

STANDARD_MISSING = {
    "webhook-signature": "missing header webhook-signature or svix-signature",
    "webhook-timestamp": "missing header webhook-timestamp or svix-timestamp",
    "webhook-id": "missing header webhook-id or svix-id",
}
STANDARD_WRONG = {"secrets": ["whsec_" + base64.b64encode(b"a wrong secret!!").decode()]}
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
F4_HEADERS = {
    "webhook-id": "msg_2FixtureInvoicePaid",
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1,ACdZ8lf7oOdtiUBff/mPyqmeYJdQpwgdn8w6OTjrW0U=",
}
F4 = dict(
    verify={"preset": "standard", "secrets": [STANDARD_SECRET]},
    body=STANDARD_BODY,
    scheme=STANDARD,
    ts="1700000000",
    tolerance=300,
    wrong=STANDARD_WRONG,
)
STRIPE_SIG = "fef06cadf75c84473616c6d552322ef28b259b96b6beec58eb513495fc16a8d0"
STRIPE_OLD_SIG = "6e752ab30cb7366cb3e99bcecf5dad5bc95cb72af527a91146cfb3ccdbce0bf8"
STRIPE = dict(
    body=STRIPE_BODY,
    signature_header="stripe-signature",
    garbage_detail="malformed header stripe-signature: no v1 signature",
    scheme=T_DOT_BODY,
    ts="1700000000",
    tolerance=300,
    signing_secret="whsec_test_secret",
)
PADDLE_SECRET = "pdl_ntfset_01hfxfixture_Wv1SecretKeyForFixtures"
PADDLE_SIG = "aa742617a6b20c9a2467c57a97243cadccbe4df78051315fca64bb86f893093c"
PADDLE = dict(
    verify={"preset": "paddle", "secrets": [PADDLE_SECRET]},
    body=PADDLE_BODY,
    signature_header="paddle-signature",
    garbage_detail="malformed header paddle-signature: no h1 signature",
    scheme=TS_COLON_BODY,
    ts="1700000000",
    tolerance=5,
)
TWILIO_OFFICIAL = dict(
    verify={"type": "twilio", "secrets": ["12345"]},
    url=TWILIO_OFFICIAL_URL,
    query=TWILIO_OFFICIAL_QUERY,
    body=TWILIO_OFFICIAL_FORM,
    signature_header="x-twilio-signature",
    garbage_detail="malformed header x-twilio-signature: signature is not base64",
    scheme=TWILIO,
)

VECTORS: list[Vector] = [
    # §16 / §2: GitHub's documented example
    Vector(
        name="github-official",
        verify={"preset": "github", "secrets": ["It's a Secret to Everybody"]},
        body=b"Hello, World!",
        headers={
            "x-hub-signature-256": (
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
            )
        },
        signature_header="x-hub-signature-256",
        garbage_detail="malformed header x-hub-signature-256: expected the prefix sha256=",
        scheme=BODY_HEX,
    ),
    Vector(
        name="github-F2-json",
        verify={"preset": "github", "secrets": ["gh-fixture-secret"]},
        body=GITHUB_JSON_BODY,
        headers={
            **JSON,
            "x-github-event": "issues",
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "x-hub-signature-256": (
                "sha256=0f156cdeda955dd965db63fe7586a1809e179596d815845f4c62b9d60d2ccfc6"
            ),
        },
        signature_header="x-hub-signature-256",
        garbage_detail="malformed header x-hub-signature-256: expected the prefix sha256=",
        scheme=BODY_HEX,
    ),
    Vector(
        name="github-F3-form",
        verify={"preset": "github", "secrets": ["gh-fixture-secret"]},
        body=GITHUB_FORM_BODY,
        headers={
            **FORM,
            "x-github-event": "issues",
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "x-hub-signature-256": (
                "sha256=82c30f9ede9525d9621d0e165076660d7c7f84a84b527cec511a992a1a45f57b"
            ),
        },
        signature_header="x-hub-signature-256",
        garbage_detail="malformed header x-hub-signature-256: expected the prefix sha256=",
        scheme=BODY_HEX,
    ),
    # §16 / §3: standard-webhooks' test_sign_function
    Vector(
        name="standard-official",
        verify={"preset": "standard", "secrets": [STANDARD_SECRET]},
        body=b'{"test": 2432232314}',
        headers={
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        now=1614265330.0,
        signature_header="webhook-signature",
        garbage_detail="malformed header webhook-signature: no v1 signature",
        scheme=STANDARD,
        ts="1614265330",
        tolerance=300,
        wrong=STANDARD_WRONG,
        missing=STANDARD_MISSING,
    ),
    Vector(
        name="standard-F4",
        headers=F4_HEADERS,
        signature_header="webhook-signature",
        garbage_detail="malformed header webhook-signature: no v1 signature",
        missing=STANDARD_MISSING,
        **F4,
    ),
    Vector(
        name="standard-F4-svix",
        headers={name.replace("webhook-", "svix-"): value for name, value in F4_HEADERS.items()},
        signature_header="svix-signature",
        garbage_detail="malformed header svix-signature: no v1 signature",
        missing={
            "svix-signature": "missing header webhook-signature or svix-signature",
            "svix-timestamp": "missing header webhook-timestamp or svix-timestamp",
            "svix-id": "missing header webhook-id or svix-id",
        },
        **F4,
    ),
    Vector(
        name="standard-F4-rotation",
        headers={
            **F4_HEADERS,
            "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
            + F4_HEADERS["webhook-signature"],
        },
        signature_header="webhook-signature",
        garbage_detail="malformed header webhook-signature: no v1 signature",
        missing=STANDARD_MISSING,
        **F4,
    ),
    # §16 / §4: shopify-api-js validate.test.ts
    Vector(
        name="shopify-official",
        verify={"preset": "shopify", "secrets": ["test_secret_key"]},
        body=b'{"foo": "bar"}',
        headers={**JSON, "x-shopify-hmac-sha256": "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="},
        signature_header="x-shopify-hmac-sha256",
        garbage_detail="malformed header x-shopify-hmac-sha256: signature is not base64",
        scheme=BODY_BASE64,
    ),
    Vector(
        name="shopify-F5",
        verify={"preset": "shopify", "secrets": ["shpss_fixture_client_secret"]},
        body=SHOPIFY_BODY,
        headers={
            **JSON,
            "x-shopify-topic": "orders/create",
            "x-shopify-shop-domain": "acme-test.myshopify.com",
            "x-shopify-api-version": "2024-10",
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "x-shopify-triggered-at": "2023-11-14T22:13:20.000Z",
            "x-shopify-hmac-sha256": "SGhMxsg9p574XTArtOtOK48VTYJdlr7Crk1XhEoAXts=",
        },
        signature_header="x-shopify-hmac-sha256",
        garbage_detail="malformed header x-shopify-hmac-sha256: signature is not base64",
        scheme=BODY_BASE64,
    ),
    Vector(
        name="typeform-F6",
        verify={"preset": "typeform", "secrets": ["tf-fixture-secret"]},
        body=TYPEFORM_BODY,
        headers={
            **JSON,
            "typeform-signature": "sha256=SJigmdEL2UM9ncLf4JcOpJ9E0uYlYvwYNHS5LPmZRfw=",
        },
        signature_header="typeform-signature",
        garbage_detail="malformed header typeform-signature: expected the prefix sha256=",
        scheme=BODY_BASE64,
    ),
    Vector(
        name="tally-F7",
        verify={"preset": "tally", "secrets": ["tally-fixture-secret"]},
        body=TALLY_BODY,
        headers={**JSON, "tally-signature": "xpCR8riCppNWhQIb1ua8V24CoSA3eUNNIpSqjh1Ts+4="},
        signature_header="tally-signature",
        garbage_detail="malformed header tally-signature: signature is not base64",
        scheme=BODY_BASE64,
    ),
    # §16 / §6: hubspot-api-python tests/spec/utils/test_signature.py (v3)
    Vector(
        name="hubspot-v3-official",
        verify={"preset": "hubspot-v3", "secrets": ["yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"]},
        url="https://www.example.com/webhook_uri",
        body=b"{'example_field':'example_value'}",
        headers={
            "x-hubspot-request-timestamp": "15000000",
            "x-hubspot-signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
        },
        now=15000.0,
        signature_header="x-hubspot-signature-v3",
        garbage_detail="malformed header x-hubspot-signature-v3: signature is not base64",
        scheme=HUBSPOT_V3,
        ts="15000000",
        tolerance=300,
        missing={
            "x-hubspot-signature-v3": "missing header x-hubspot-signature-v3",
            "x-hubspot-request-timestamp": "missing header x-hubspot-request-timestamp",
        },
    ),
    Vector(
        name="hubspot-v3-F8",
        verify={
            "preset": "hubspot-v3",
            "secrets": ["hs-client-secret-fixture"],
            "public_url": "https://helpdesk.example.com/hooks/hubspot",
        },
        url=f"{LOCAL}/hubspot",  # behind a proxy: not the URL HubSpot signed
        body=HUBSPOT_BODY,
        headers={
            **JSON,
            "x-hubspot-request-timestamp": "1700000000000",
            "x-hubspot-signature-v3": "abnt4kSPYC7INCaeR9TcFu/aBhDa+Ow27HiM88nILMc=",
            "x-hubspot-signature-version": "v1",
            "x-hubspot-signature": (
                "7bf3463b0f1588f5bacc279b12bcda775b381de88d2ddd714758689f41ea8e0e"
            ),
        },
        signature_header="x-hubspot-signature-v3",
        garbage_detail="malformed header x-hubspot-signature-v3: signature is not base64",
        scheme=HUBSPOT_V3,
        ts="1700000000000",
        tolerance=300,
        signed_url="https://helpdesk.example.com/hooks/hubspot",
        missing={
            "x-hubspot-signature-v3": "missing header x-hubspot-signature-v3",
            "x-hubspot-request-timestamp": "missing header x-hubspot-request-timestamp",
        },
    ),
    Vector(
        name="mercadopago-F9",
        verify={"preset": "mercadopago", "secrets": ["mp-fixture-secret"]},
        url=f"{LOCAL}/mercadopago?data.id=123456789&type=payment",
        query=(("data.id", "123456789"), ("type", "payment")),
        body=MERCADOPAGO_BODY,
        headers={
            **JSON,
            "x-request-id": "bb56a2f1-6aae-46ac-982e-9dcd3581d08e",
            "x-signature": (
                "ts=1700000000,v1=eade79aa2fc4eaa515ac41bfe2f4f0459ec9f355726b77f81b0e1d215a16cffa"
            ),
        },
        body_signed=False,
        signature_header="x-signature",
        garbage_detail="malformed header x-signature: no v1 signature",
        scheme=MERCADOPAGO,
        ts="1700000000",
        tolerance=0,
        missing={
            "x-signature": "missing header x-signature",
            "x-request-id": "missing header x-request-id",
        },
    ),
    # §16 / §8: paddle-python-sdk test_Verifier.py (three candidate secrets, a junk h1)
    Vector(
        name="paddle-official",
        verify={
            "preset": "paddle",
            "secrets": [
                "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
                "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
                "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
            ],
        },
        body=b"hello-world",
        headers={
            "paddle-signature": (
                "ts=1696195954;h1=dummy;"
                "h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
            )
        },
        now=1696195954.0,
        signature_header="paddle-signature",
        garbage_detail="malformed header paddle-signature: no h1 signature",
        scheme=TS_COLON_BODY,
        ts="1696195954",
        tolerance=5,
        signing_secret="pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
    ),
    Vector(
        name="paddle-F10",
        headers={"paddle-signature": f"ts=1700000000;h1={PADDLE_SIG}"},
        **PADDLE,
    ),
    Vector(
        name="paddle-F10-rotation",
        headers={"paddle-signature": f"ts=1700000000;h1=dummy;h1={PADDLE_SIG}"},
        **PADDLE,
    ),
    Vector(
        name="calendly-F11",
        verify={"preset": "calendly", "secrets": ["calendly-fixture-signing-key"]},
        body=CALENDLY_BODY,
        headers={
            **JSON,
            "calendly-webhook-signature": (
                "t=1700000000,v1=15977f5961732bd9b5690e6fdb60990d2b08b5dd46c072eff89b680b154321c6"
            ),
        },
        signature_header="calendly-webhook-signature",
        garbage_detail="malformed header calendly-webhook-signature: no v1 signature",
        scheme=T_DOT_BODY,
        ts="1700000000",
        tolerance=180,
    ),
    Vector(
        name="webflow-F12",
        verify={"preset": "webflow", "secrets": ["webflow-oauth-client-secret-fixture"]},
        body=WEBFLOW_BODY,
        headers={
            **JSON,
            "x-webflow-timestamp": "1700000000000",
            "x-webflow-signature": (
                "c93f568239cc19bb3195e73169e63df38d25624d9f091f5e0c337b81df450621"
            ),
        },
        signature_header="x-webflow-signature",
        garbage_detail="malformed header x-webflow-signature: signature is not hex",
        scheme=TS_COLON_BODY,
        ts="1700000000000",
        tolerance=300,
        missing={
            "x-webflow-signature": "missing header x-webflow-signature",
            "x-webflow-timestamp": "missing header x-webflow-timestamp",
        },
    ),
    Vector(
        name="formspree-F13",
        verify={"preset": "formspree", "secrets": ["formspree-fixture-secret"]},
        body=FORMSPREE_BODY,
        headers={
            **JSON,
            "formspree-signature": (
                "t=1700000000,v1=fe0cf8d448150970868caad5b2ffce76b36bb5692c22b10a2c41110568791459"
            ),
        },
        signature_header="formspree-signature",
        garbage_detail="malformed header formspree-signature: no v1 signature",
        scheme=T_DOT_BODY,
        ts="1700000000",
        tolerance=300,
    ),
    Vector(
        name="stripe-F1",
        verify={"preset": "stripe", "secrets": ["whsec_test_secret"]},
        headers={**JSON, "stripe-signature": f"t=1700000000,v1={STRIPE_SIG}"},
        **STRIPE,
    ),
    Vector(
        name="stripe-F1-rotation",
        verify={"preset": "stripe", "secrets": ["whsec_old_secret", "whsec_test_secret"]},
        headers={
            **JSON,
            "stripe-signature": f"t=1700000000,v1={STRIPE_OLD_SIG},v1={STRIPE_SIG}",
        },
        **STRIPE,
    ),
    # §15 / §17 F-16: Slack's documented slash command
    Vector(
        name="slack-official",
        verify={"preset": "slack", "secrets": ["8f742231b10e8888abcd99yyyzzz85a5"]},
        body=SLACK_BODY,
        headers={
            **FORM,
            "x-slack-request-timestamp": "1531420618",
            "x-slack-signature": (
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
            ),
        },
        now=1531420618.0,
        signature_header="x-slack-signature",
        garbage_detail="malformed header x-slack-signature: expected the prefix v0=",
        scheme=SLACK,
        ts="1531420618",
        tolerance=300,
        missing={
            "x-slack-signature": "missing header x-slack-signature",
            "x-slack-request-timestamp": "missing header x-slack-request-timestamp",
        },
    ),
    # §15: twilio-python tests/unit/test_request_validator.py
    Vector(
        name="twilio-official-form",
        headers={**FORM, "x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        **TWILIO_OFFICIAL,
    ),
    Vector(
        name="twilio-official-port443",  # signed with :443, called without: both forms count
        headers={**FORM, "x-twilio-signature": "kvajT1Ptam85bY51eRf/AJRuM3w="},
        signed_url="https://mycompany.com:443/myapp.php?foo=1&bar=2",
        **TWILIO_OFFICIAL,
    ),
    Vector(
        name="twilio-official-duplicate-keys",
        headers={**FORM, "x-twilio-signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
        **{
            **TWILIO_OFFICIAL,
            "body": _twilio_form(
                [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
            ),
        },
    ),
    Vector(
        name="twilio-official-bodysha256",
        headers={**JSON, "x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4="},
        body_detail="body does not match its bodySHA256",
        **{
            **TWILIO_OFFICIAL,
            "url": f"{TWILIO_OFFICIAL_URL}&bodySHA256={TWILIO_JSON_HASH}",
            "query": (*TWILIO_OFFICIAL_QUERY, ("bodySHA256", TWILIO_JSON_HASH)),
            "body": TWILIO_JSON_BODY,
        },
    ),
    Vector(
        name="twilio-F14",
        verify={
            "type": "twilio",
            "secrets": ["fixture_auth_token_0123456789ab"],
            "public_url": "https://helpdesk.example.com/hooks/twilio/sms",
        },
        url="http://10.0.0.5:8000/hooks/twilio/sms",  # what the app sees behind the proxy
        body=TWILIO_SMS_BODY,
        headers={
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "x-twilio-signature": "bp+utIgmiFp+aaFbjpRz8XoohUo=",
        },
        signature_header="x-twilio-signature",
        garbage_detail="malformed header x-twilio-signature: signature is not base64",
        scheme=TWILIO,
        signed_url="https://helpdesk.example.com/hooks/twilio/sms",
    ),
    Vector(
        name="basic-F15",
        verify={"type": "basic", "username": "hookuser", "passwords": ["s3cr3t-pass"]},
        body=b'{"meta":{"action":"create","entity":"deal"}}',
        headers={**JSON, "authorization": "Basic aG9va3VzZXI6czNjcjN0LXBhc3M="},
        body_signed=False,
        signature_header="authorization",
        garbage_detail="malformed header authorization: expected Basic credentials",
        scheme=None,
        wrong={"passwords": ["wrong-pass"]},
        wrong_detail="credentials did not match",
    ),
]

BY_NAME = {vector.name: vector for vector in VECTORS}
