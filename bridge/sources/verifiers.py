"""Verifiers: does this request come from the sender we configured? (DESIGN §2.2)

A verifier is one small object with one behaviour method, `verify`, a pure function of the
raw request and the time that raises RejectedRequest(401, "signature_invalid", detail) when
the request is not trusted. The detail says which check failed (missing header, malformed
header, no signature matched, timestamp outside tolerance), never a secret or an expected
value. This module holds the interface and the shared-secret verifiers; signatures.py the
`hmac` one, twilio.py Twilio's; registry.py builds them from configuration.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hmac

from bridge.exceptions import RejectedRequest
from bridge.sources.bodies import parse_form, parse_multipart
from bridge.sources.request import RawRequest


def reject(detail: str) -> RejectedRequest:
    return RejectedRequest(401, "signature_invalid", detail)


def _matches_any(given: str, accepted: tuple[bytes, ...]) -> bool:
    data = given.encode("utf-8", "surrogateescape")
    # compare with every accepted value, so the time taken does not tell which one is close
    found = False
    for value in accepted:
        found |= hmac.compare_digest(data, value)
    return found


class Verifier(abc.ABC):
    #: header names (lower-case) that carry a secret or a signature: redacted when stored
    secret_headers: frozenset[str] = frozenset()
    #: query parameters that carry a secret: redacted when stored
    secret_query: frozenset[str] = frozenset()
    #: form fields of the body that carry a secret: redacted when stored
    secret_fields: frozenset[str] = frozenset()
    #: whether `verify` reads RawRequest.url (the receiver builds it only then)
    reads_url: bool = False

    @abc.abstractmethod
    def verify(self, request: RawRequest, *, now: float) -> None:
        """Return if the request is trusted; raise RejectedRequest(401, ...) if not."""


class NoVerification(Verifier):
    def verify(self, request: RawRequest, *, now: float) -> None:
        return None


class TokenVerifier(Verifier):
    """A shared token in a header (`header:X-Form-Token`), the query (`query:token`) or a
    field of a form body (`form:secret`)."""

    _WHERE = {"header": "header", "query": "query parameter", "form": "form field"}

    def __init__(self, *, location: str, values: tuple[str, ...]) -> None:
        kind, _, name = location.partition(":")
        if kind not in self._WHERE or not name:
            raise ValueError(
                f"location must be header:NAME, query:NAME or form:NAME, not {location!r}"
            )
        if not values:
            raise ValueError("no token value left: a verifier must never accept everything")
        self.kind = kind
        self.name = name.lower() if kind == "header" else name
        self.values = tuple(v.encode("utf-8") for v in values)
        secret = frozenset({self.name})
        if kind == "header":
            self.secret_headers = secret
        elif kind == "query":
            self.secret_query = secret
        else:
            self.secret_fields = secret

    def verify(self, request: RawRequest, *, now: float) -> None:
        if self.kind == "header":
            given = request.header(self.name)
        elif self.kind == "query":
            given = request.query_value(self.name)
        else:
            given = self._form_value(request)
        if given is None:
            raise reject(f"missing {self._WHERE[self.kind]} {self.name}")
        if not _matches_any(given, self.values):
            raise reject("token did not match")

    def _form_value(self, request: RawRequest) -> str | None:
        content_type = request.header("content-type")
        try:
            if (content_type or "").lower().startswith("multipart/"):
                fields = parse_multipart(request.body, content_type)
            else:
                fields = list(parse_form(request.body))
        except RejectedRequest:
            raise reject(f"malformed body: cannot read the form field {self.name}") from None
        for key, value in fields:
            if key == self.name and isinstance(value, str):
                return value
        return None


class BasicVerifier(Verifier):
    """HTTP Basic auth (Pipedrive and friends): one username, any of several passwords."""

    secret_headers = frozenset({"authorization"})

    def __init__(self, *, username: str, passwords: tuple[str, ...]) -> None:
        if not passwords:
            raise ValueError("no password left: a verifier must never accept everything")
        self.username = username.encode("utf-8")
        self.passwords = tuple(p.encode("utf-8") for p in passwords)

    def verify(self, request: RawRequest, *, now: float) -> None:
        header = request.header("authorization")
        if header is None:
            raise reject("missing header authorization")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise reject("malformed header authorization: expected Basic credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise reject("malformed header authorization: not base64") from None
        user, sep, password = decoded.partition(b":")
        if not sep:
            raise reject("malformed header authorization: no ':' in credentials")
        user_ok = hmac.compare_digest(user, self.username)
        password_ok = False
        for candidate in self.passwords:
            password_ok |= hmac.compare_digest(password, candidate)
        if not (user_ok and password_ok):
            raise reject("credentials did not match")
