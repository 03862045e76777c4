"""What is never shown: secret values, credential headers, credential-like JSON keys.

Every place that shows or keeps what came in or went out calls these: the intake (headers,
query and body fields of a stored event), the log formatter, the attempt log (through the
providers' Outcome.masked), `show` and `events`, the admin pages and API, and `try`'s record
of requests and answers. Each of them replaces what it hides with REDACTED.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

REDACTED = "[redacted]"

_ALWAYS_SECRET = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = ("signature", "token", "secret", "key")


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text`, the longest first, so a secret that contains another
    ("Bearer abc" and "abc") is replaced whole, whatever order the secrets come in."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def spellings(secrets: Iterable[str]) -> set[str]:
    """Each secret as it can appear in a page: as it is, JSON-escaped, HTML-escaped, both."""
    found: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        in_json = json.dumps(secret, ensure_ascii=False)[1:-1]
        found.update({secret, in_json, str(escape(secret)), str(escape(in_json))})
    return found


def is_secret_header(name: str) -> bool:
    """A header (or query parameter, or JSON key) whose name says it carries a credential."""
    name = name.lower()
    return name in _ALWAYS_SECRET or any(word in name for word in _SECRET_WORDS)


def redact_pairs(
    pairs: Iterable[tuple[str, str]], *, also: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Headers or query parameters, in order, with credential values REDACTED; `also` names
    more that are secret here (a verifier's own header or parameter)."""
    return [
        (name, REDACTED if name in also or is_secret_header(name) else value)
        for name, value in pairs
    ]


def redact_headers(
    headers: Iterable[tuple[str, str]], *, also: frozenset[str] = frozenset()
) -> dict[str, str]:
    """redact_pairs, as a dict (the last value of a repeated name)."""
    return dict(redact_pairs(headers, also=also))


def credentials_in(headers: Mapping[str, str]) -> list[str]:
    """The values of the credential headers, and their token part (`Bearer x`): what an
    answer might echo back."""
    values = [value for name, value in headers.items() if is_secret_header(name)]
    values += [value.split(" ", 1)[1] for value in values if " " in value]
    return [value for value in values if len(value) >= 4]  # never mask a stray "1"


def redact_json(value: Any, credentials: Iterable[str]) -> Any:
    """JSON with the values of credential-like keys REDACTED and every credential masked."""
    credentials = tuple(credentials)
    if isinstance(value, dict):
        return {
            key: REDACTED
            if is_secret_header(str(key)) and item not in (None, "")
            else redact_json(item, credentials)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item, credentials) for item in value]
    if isinstance(value, str):
        return mask(value, credentials)
    return value
