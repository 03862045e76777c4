"""The `twilio` verifier (sources.md §15, twilio-python's RequestValidator).

`X-Twilio-Signature` is base64 HMAC-SHA1 (or SHA-256 when the account's
`X-Twilio-Webhooks-Signature-Settings` says so) of the URL Twilio called followed by every
form parameter, sorted by name, as name + value. A JSON body is not signed itself: Twilio
puts its SHA-256 in the URL's `bodySHA256` parameter and signs the URL alone. Twilio's own
validator accepts the URL with and without the default port; so does this one.
`ticketbridge send` signs the first of `signed_messages` (signing.py).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Sequence

from bridge.sources.forwarded import DEFAULT_PORTS
from bridge.sources.request import RawRequest
from bridge.sources.signatures import decode_signature, public_url
from bridge.sources.verifiers import Verifier, reject


def url_variants(url: str) -> tuple[str, ...]:
    """The URL as given, and with its default port added or removed."""
    parts = urllib.parse.urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return (url,)
    if default is None:
        return (url,)
    if port is None:
        other = parts._replace(netloc=f"{parts.netloc}:{default}")
    elif str(port) == default:
        other = parts._replace(netloc=parts.netloc.rpartition(":")[0])
    else:
        return (url,)
    return (url, urllib.parse.urlunsplit(other))


def signed_params(body: bytes) -> bytes:
    """Form parameters as Twilio signs them: sorted by name, each name + value, values of a
    repeated name sorted (and, like twilio-python 9, each distinct value once)."""
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10_000
        )
    except ValueError:
        raise reject("malformed body: more than 10000 form fields") from None
    by_name: dict[str, set[str]] = {}
    for name, value in pairs:
        by_name.setdefault(name, set()).add(value)
    return "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    ).encode("utf-8")


def body_sha256(body: bytes) -> str:
    """The `bodySHA256` Twilio puts in the URL for a JSON body: hex SHA-256 of its bytes."""
    return hashlib.sha256(body).hexdigest()


def signature_algorithm(request: RawRequest) -> str:
    """sha1, or sha256 when X-Twilio-Webhooks-Signature-Settings asks for HMAC_SHA256."""
    settings = request.header("x-twilio-webhooks-signature-settings") or ""
    return "sha256" if "HMAC_SHA256" in settings.upper() else "sha1"


class TwilioVerifier(Verifier):
    secret_headers = frozenset({"x-twilio-signature"})
    reads_url = True

    def __init__(self, *, secrets: Sequence[str], public_url: str | None = None) -> None:
        if not secrets:
            raise ValueError("no auth token left: a verifier must never accept everything")
        self.keys = tuple(s.encode("utf-8") for s in secrets)
        self.public_url = public_url

    def verify(self, request: RawRequest, *, now: float) -> None:
        given = request.header("x-twilio-signature")
        if given is None:
            raise reject("missing header x-twilio-signature")
        digest = decode_signature(given, "base64")
        if not digest:
            raise reject("malformed header x-twilio-signature: signature is not base64")
        algorithm = signature_algorithm(request)
        body_hash = request.query_value("bodySHA256")
        if body_hash is not None:
            actual = body_sha256(request.body).encode("ascii")
            if not hmac.compare_digest(actual, body_hash.lower().encode("utf-8", "replace")):
                raise reject("body does not match its bodySHA256")
        found = False
        for message in self.signed_messages(request):
            for key in self.keys:
                expected = hmac.digest(key, message, algorithm)
                found |= hmac.compare_digest(expected, digest)
        if not found:
            raise reject("no signature matched")

    def signed_messages(self, request: RawRequest) -> tuple[bytes, ...]:
        """What Twilio signs for `request`, once per variant of the URL it called (the first
        is that URL as given): the URL, then the sorted form parameters, or nothing more when
        the URL carries a JSON body's bodySHA256."""
        if request.query_value("bodySHA256") is not None:
            params = b""
        else:
            params = signed_params(request.body)
        url = public_url(request, self.public_url)
        return tuple(variant.encode("utf-8") + params for variant in url_variants(url))
