"""Awal Chat request signing: every developer-API request carries an HMAC-SHA256 signature.

    string_to_sign = METHOD + PATH + QUERY_STRING + TIMESTAMP + BODY     (no separators)
    X-Awal-Signature-256: sha256=<lower-case hex of HMAC_SHA256(hmac_secret, string_to_sign)>

QUERY_STRING keeps its leading `?`; TIMESTAMP is the `X-Timestamp` header (Unix seconds); BODY
is the exact JSON text sent, empty for a GET. PATH is, by the docs' only example, relative to
the API root (`/w/message/text`, without `/api/developer`); `sign_path: absolute` signs the
whole URL path instead, until a live account settles it.

The signed bytes are the sent bytes: the JSON is serialised once and sent with `content=`,
and the path and query are read back from the built request, so httpx's URL normalisation
cannot make them differ.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

SIGNATURE_HEADER = "X-Awal-Signature-256"


class SignPath(enum.StrEnum):
    RELATIVE = "relative"  # /w/message/text (the docs' example)
    ABSOLUTE = "absolute"  # /api/developer/w/message/text


def signature(
    secret: str, *, method: str, path: str, query: str, timestamp: str, body: bytes
) -> str:
    """The `X-Awal-Signature-256` value for one request."""
    message = f"{method.upper()}{path}{query}{timestamp}".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class AwalSigner:
    """Builds signed requests against one Awal Chat workspace."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        client_id: str,
        domain: str,
        hmac_secret: str,
        sign_path: SignPath = SignPath.RELATIVE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._prefix = urlsplit(self._base_url).path.rstrip("/")
        self._client_id = client_id
        self._domain = domain
        self._secret = hmac_secret
        self._sign_path = sign_path
        self._clock = clock

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Request:
        """A signed request for `path` (relative to the API root, e.g. `/w/message/text`)."""
        method = method.upper()
        query = urlencode(params)
        url = f"{self._base_url}{path}" + (f"?{query}" if query else "")
        body = b""
        headers = {"Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(method, url, headers=headers, content=body or None)
        sent_path, mark, sent_query = request.url.raw_path.decode("ascii").partition("?")
        if self._sign_path is SignPath.RELATIVE and sent_path.startswith(self._prefix):
            sent_path = sent_path[len(self._prefix) :] or "/"
        timestamp = str(int(self._clock()))
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Domain"] = self._domain
        request.headers["X-Client-ID"] = self._client_id
        request.headers[SIGNATURE_HEADER] = signature(
            self._secret,
            method=method,
            path=sent_path,
            query=mark + sent_query,
            timestamp=timestamp,
            body=request.content,
        )
        return request
