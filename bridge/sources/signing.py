"""A webhook signed as its sender would sign it (`ticketbridge send`): the verifiers' other half.

`sender_request` takes a body, the URL to post to and any extra headers, and returns the
request the source's sender would make: the content type its `body` setting reads, a fresh id
in each header the signature or the dedupe key draws from (GitHub's X-GitHub-Delivery, a
Standard Webhooks `webhook-id`, ...) unless one is given, and the credentials of its
`verify`, made with the FIRST configured secret:

- `hmac` and presets: a fresh timestamp where the scheme has one, the signature written
  the way the scheme reads it (raw or key=value, prefix, hex or base64);
- `token`: the first value in the header, query parameter or form field `location` names;
- `basic`: the username with the first password;
- `twilio`: the URL (the source's `public_url` when set) and form parameters, or for any
  other body the URL with its `bodySHA256`;
- `none`: nothing.

The signed bytes are never rebuilt here: they come from the verifier's own code
(HmacVerifier.signed_message, TwilioVerifier.signed_messages), so what is signed and what is
checked cannot drift apart. Everything here is pure; ValueError says what cannot be signed.
"""

from __future__ import annotations

import base64
import hmac
import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from python_multipart.multipart import parse_options_header

from bridge.exceptions import RejectedRequest
from bridge.routing.paths import PathError, parse_path
from bridge.sources.bodies import FORM, MULTIPART
from bridge.sources.request import RawRequest
from bridge.sources.signatures import HmacVerifier, encode_signature
from bridge.sources.twilio import TwilioVerifier, body_sha256, signature_algorithm
from bridge.sources.verifiers import BasicVerifier, NoVerification, TokenVerifier, Verifier


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """A webhook to POST: where to, its headers (lower-case names) and its exact bytes."""

    url: str
    headers: Mapping[str, str]
    body: bytes

    def as_received(self) -> RawRequest:
        """The request as the receiving server sees it."""
        query = urllib.parse.urlsplit(self.url).query
        return RawRequest(
            method="POST",
            url=self.url,
            headers=dict(self.headers),
            query=tuple(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            body=self.body,
        )


def sender_request(
    verifier: Verifier,
    *,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    body_setting: str | None,
    dedupe_key: str | None,
    now: float,
    new_id: Callable[[], str],
) -> Outgoing:
    """The request the source's sender would POST to `url` with `body` at time `now`."""
    sent = {name.lower(): value for name, value in headers.items()}
    if "content-type" not in sent:
        sent["content-type"] = content_type_for(body_setting, body)
    for names in delivery_headers(verifier, dedupe_key):
        if not any(name in sent for name in names):
            sent[names[0]] = new_id()
    if isinstance(verifier, HmacVerifier):
        url = _with_signed_query(url, body, verifier.message.queries)
    return sign(verifier, Outgoing(url=url, headers=sent, body=body), now=now)


def sign(verifier: Verifier, request: Outgoing, *, now: float) -> Outgoing:
    """`request` with the credentials `verifier` checks, made with its first secret."""
    if isinstance(verifier, HmacVerifier):
        return _sign_hmac(verifier, request, now)
    if isinstance(verifier, TwilioVerifier):
        return _sign_twilio(verifier, request)
    if isinstance(verifier, TokenVerifier):
        return _with_token(verifier, request)
    if isinstance(verifier, BasicVerifier):
        credentials = verifier.username + b":" + verifier.passwords[0]
        value = "Basic " + base64.b64encode(credentials).decode("ascii")
        return replace(request, headers=_set(request.headers, "authorization", value))
    if isinstance(verifier, NoVerification):
        return request
    raise ValueError(f"cannot sign for a {type(verifier).__name__}")


def content_type_for(body_setting: str | None, body: bytes) -> str:
    """What a source with this `body` setting reads; without one, what the body looks like
    (JSON when it starts with { or [ or is empty, multipart when it starts with a --boundary
    line, else an urlencoded form). ValueError for a multipart setting without that line."""
    mode = (body_setting or _looks_like(body)).partition(":")[0]
    if mode in ("form", "form_json_field"):
        return FORM
    if mode in ("multipart", "multipart_json_field"):
        return f"{MULTIPART}; boundary={_boundary_of(body)}"
    return "application/json"


def delivery_headers(verifier: Verifier, dedupe_key: str | None) -> tuple[tuple[str, ...], ...]:
    """The headers a real sender fills per delivery, each as the names any one of which will
    do: those the signed message reads and the one a `headers.NAME` dedupe key reads."""
    found: list[tuple[str, ...]] = []
    written: frozenset[str] = frozenset()
    if isinstance(verifier, HmacVerifier):
        found.extend(verifier.message.headers)
        written = frozenset(verifier.headers) | frozenset(verifier.timestamp_headers)
    if dedupe_key and "{{" not in dedupe_key:
        try:
            path = parse_path(dedupe_key)
        except PathError:
            path = ()
        if len(path) == 2 and path[0] == "headers" and isinstance(path[1], str):
            found.append((path[1].lower(),))
    unique = dict.fromkeys(names for names in found if not written.intersection(names))
    return tuple(unique)


# --- one signer per verification type -------------------------------------------------------


def _sign_hmac(verifier: HmacVerifier, request: Outgoing, now: float) -> Outgoing:
    timestamp = str(int(now * verifier.scale)) if verifier.has_timestamp else ""
    headers = dict(request.headers)
    if verifier.has_timestamp and not verifier.timestamp_key:
        headers = _set(headers, verifier.timestamp_headers[0], timestamp)
    request = replace(request, headers=headers)
    try:
        message = verifier.signed_message(request.as_received(), timestamp)
    except RejectedRequest as exc:  # a part of the request the message reads is missing
        raise ValueError(f"cannot sign: {exc.detail}") from None
    signature = verifier.prefix + encode_signature(
        verifier.digest(verifier.keys[0], message), verifier.encoding
    )
    if verifier.kv is not None:
        pair_sep, kv_sep, signature_keys = verifier.kv
        pairs = [f"{verifier.timestamp_key}{kv_sep}{timestamp}"] if verifier.timestamp_key else []
        signature = pair_sep.join([*pairs, f"{signature_keys[0]}{kv_sep}{signature}"])
    return replace(request, headers=_set(headers, verifier.headers[0], signature))


def _sign_twilio(verifier: TwilioVerifier, request: Outgoing) -> Outgoing:
    if _media_type(request.headers) != FORM:
        # Twilio signs a JSON body through the URL: its hash goes in as bodySHA256
        request = replace(
            request, url=_add_query(request.url, "bodySHA256", body_sha256(request.body))
        )
    received = request.as_received()
    try:
        message = verifier.signed_messages(received)[0]
    except RejectedRequest as exc:
        raise ValueError(f"cannot sign: {exc.detail}") from None
    digest = hmac.digest(verifier.keys[0], message, signature_algorithm(received))
    signature = encode_signature(digest, "base64")
    return replace(request, headers=_set(request.headers, "x-twilio-signature", signature))


def _with_token(verifier: TokenVerifier, request: Outgoing) -> Outgoing:
    token = verifier.values[0].decode("utf-8")
    if verifier.kind == "header":
        return replace(request, headers=_set(request.headers, verifier.name, token))
    if verifier.kind == "query":
        return replace(request, url=_add_query(request.url, verifier.name, token))
    # a form field, put first so that it is the one the verifier reads
    content_type = request.headers.get("content-type", "")
    if _media_type(request.headers) == MULTIPART:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary", b"").decode("latin-1")
        if not boundary:
            raise ValueError("the multipart content-type names no boundary")
        name = verifier.name.replace('"', "%22")
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{token}\r\n'
        ).encode()
        return replace(request, body=part + request.body)
    if _media_type(request.headers) != FORM:
        raise ValueError(
            f"the token goes in the form field {verifier.name!r}: the body must be a form "
            f"({FORM} or {MULTIPART}), not {content_type or 'without a content type'}"
        )
    field = urllib.parse.urlencode({verifier.name: token}).encode("ascii")
    return replace(request, body=field + (b"&" + request.body if request.body else b""))


# --- small pieces ---------------------------------------------------------------------------


def _set(headers: Mapping[str, str], name: str, value: str) -> dict[str, str]:
    """`headers` plus one the signer writes; ValueError if it was given already."""
    if name in headers:
        raise ValueError(f"the header {name} is what the signer writes: do not give it")
    return {**headers, name: value}


def _add_query(url: str, name: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if any(key == name for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)):
        raise ValueError(f"the query parameter {name} is what the signer writes: do not give it")
    pair = urllib.parse.urlencode({name: value})
    query = f"{parts.query}&{pair}" if parts.query else pair
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _with_signed_query(url: str, body: bytes, queries: tuple[tuple[str, ...], ...]) -> str:
    """`url` with each query parameter the message signs; one missing from it is taken from
    the JSON body at the same dotted path (Mercado Pago's `data.id` is its body's data.id)."""
    query = urllib.parse.urlsplit(url).query
    present = {key for key, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    for names in queries:
        if present.intersection(names):
            continue
        value = _body_value(body, names[0])
        if value is None:
            raise ValueError(
                f"the sender signs the query parameter {names[0]}: put it in the URL "
                f"(…?{names[0]}=…), or in the JSON body at {names[0]}"
            )
        url = _add_query(url, names[0], value)
        present.add(names[0])
    return url


def _body_value(body: bytes, dotted: str) -> str | None:
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def _looks_like(body: bytes) -> str:
    start = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start or start[:1] in (b"{", b"["):
        return "json"
    if start.startswith(b"--"):
        try:
            _boundary_of(body)
            return "multipart"
        except ValueError:
            pass
    return "form"


def _boundary_of(body: bytes) -> str:
    first = body.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    boundary = first[2:].decode("ascii", "replace") if first.startswith(b"--") else ""
    if not boundary or any(c in boundary for c in ' "\ufffd'):
        raise ValueError(
            "a multipart body must start with its --boundary line "
            "(or give the content type, boundary included, as a header)"
        )
    return boundary
