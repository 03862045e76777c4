"""Verifiers: does this request come from the sender we configured? (DESIGN §2.2)

A verifier is one small object with one behaviour method, `verify`, a pure function of the
raw request that raises RejectedRequest(401, "signature_invalid", detail) when the request is
not trusted. The detail says which check failed, never a secret or an expected value.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from bridge.exceptions import RejectedRequest
from bridge.sources.request import RawRequest


def _reject(detail: str) -> RejectedRequest:
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

    @abc.abstractmethod
    def verify(self, request: RawRequest) -> None:
        """Return if the request is trusted; raise RejectedRequest(401, ...) if not."""


class NoVerification(Verifier):
    def verify(self, request: RawRequest) -> None:
        return None


class TokenVerifier(Verifier):
    """A shared token in a header (`header:X-Form-Token`) or the query (`query:token`)."""

    def __init__(self, *, location: str, values: tuple[str, ...]) -> None:
        kind, _, name = location.partition(":")
        if kind not in ("header", "query") or not name:
            raise ValueError(f"location must be 'header:NAME' or 'query:NAME', not {location!r}")
        if not values:
            raise ValueError("no token value left: a verifier must never accept everything")
        self.kind = kind
        self.name = name.lower() if kind == "header" else name
        self.values = tuple(v.encode("utf-8") for v in values)
        if kind == "header":
            self.secret_headers = frozenset({self.name})
        else:
            self.secret_query = frozenset({self.name})

    def verify(self, request: RawRequest) -> None:
        given = (
            request.header(self.name) if self.kind == "header" else request.query_value(self.name)
        )
        if given is None:
            where = "header" if self.kind == "header" else "query parameter"
            raise _reject(f"missing {where} {self.name}")
        if not _matches_any(given, self.values):
            raise _reject("token did not match")


class BasicVerifier(Verifier):
    """HTTP Basic auth (Pipedrive and friends): one username, any of several passwords."""

    secret_headers = frozenset({"authorization"})

    def __init__(self, *, username: str, passwords: tuple[str, ...]) -> None:
        if not passwords:
            raise ValueError("no password left: a verifier must never accept everything")
        self.username = username.encode("utf-8")
        self.passwords = tuple(p.encode("utf-8") for p in passwords)

    def verify(self, request: RawRequest) -> None:
        header = request.header("authorization")
        if header is None:
            raise _reject("missing header authorization")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise _reject("malformed header authorization: expected Basic credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _reject("malformed header authorization: not base64") from None
        user, sep, password = decoded.partition(b":")
        if not sep:
            raise _reject("malformed header authorization: no ':' in credentials")
        user_ok = hmac.compare_digest(user, self.username)
        password_ok = False
        for candidate in self.passwords:
            password_ok |= hmac.compare_digest(password, candidate)
        if not (user_ok and password_ok):
            raise _reject("credentials did not match")


def _strings(settings: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = settings.get(key) or ()
    if isinstance(values, str):
        values = (values,)
    return tuple(str(v) for v in values if v not in (None, ""))


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Verifier]] = {
    "none": lambda s: NoVerification(),
    "token": lambda s: TokenVerifier(
        location=str(s.get("location", "")), values=_strings(s, "values")
    ),
    "basic": lambda s: BasicVerifier(
        username=str(s.get("username", "")), passwords=_strings(s, "passwords")
    ),
}


def build_verifier(settings: Mapping[str, Any]) -> Verifier:
    """The verifier for a source's `verify` mapping; ValueError says what is wrong with it."""
    if "preset" in settings:
        raise ValueError(
            f"verification preset {settings['preset']!r} is not available in this version; "
            f"use one of the types: {', '.join(sorted(_BUILDERS))}"
        )
    kind = settings.get("type")
    builder = _BUILDERS.get(str(kind))
    if builder is None:
        raise ValueError(
            f"verification type {kind!r} is not available; "
            f"use one of: {', '.join(sorted(_BUILDERS))}"
        )
    return builder(settings)
