"""The `hmac` verifier: one configurable scheme covers every sender that signs (DESIGN §2.2).

A scheme says where the signature is (a header, the whole value or key=value pairs), how it
is written (prefix, hex or base64), what was signed (a message template over the raw body,
the timestamp, method, URL, headers and query) and how fresh it must be. The presets of
presets.py are schemes written down for known senders.

Checks run cheapest first: header present and well formed, timestamp fresh, then one HMAC
per secret, every secret compared against every candidate signature so that the time taken
does not tell which one came close.

`ticketbridge send` signs with the same code (HmacVerifier.signed_message, see signing.py),
so what a sender signs and what is checked here cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.sources.request import RawRequest
from bridge.sources.verifiers import Verifier, reject

ALGORITHMS = ("sha256", "sha1", "sha512")
DEFAULT_TOLERANCE = 300.0
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FILTERS: dict[str, Callable[[str], str]] = {"lower": str.lower}


@dataclass(frozen=True, kw_only=True)
class Signed:
    """What a message template can reach: the request, its timestamp, its public URL."""

    request: RawRequest
    timestamp: str
    url: str


Piece = Callable[[Signed], bytes]


@dataclass(frozen=True, kw_only=True)
class Message:
    """A compiled `message` template: the pieces that build the signed bytes, and which parts
    of the request they read (so the sender's side knows what it must supply)."""

    pieces: tuple[Piece, ...]
    uses_timestamp: bool
    uses_url: bool
    headers: tuple[tuple[str, ...], ...]  # one entry per {header:A|B}: its names, lower-case
    queries: tuple[tuple[str, ...], ...]  # one entry per {query:A|B}: its names

    def build(self, signed: Signed) -> bytes:
        return b"".join(piece(signed) for piece in self.pieces)


def compile_message(template: str) -> Message:
    """The message a template describes; ValueError for an unknown placeholder.

    `{header:A|B}` takes the first of A, B that is present; a trailing `|lower` lower-cases.
    """
    pieces: list[Piece] = []
    uses: set[str] = set()
    lookups: dict[str, list[tuple[str, ...]]] = {"header": [], "query": []}
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            pieces.append(_literal(template[position : match.start()].encode("utf-8")))
        position = match.end()
        name = match.group(1)
        if name == "body":
            pieces.append(lambda s: s.request.body)
        elif name == "timestamp":
            uses.add("timestamp")
            pieces.append(lambda s: s.timestamp.encode("utf-8"))
        elif name == "method":
            pieces.append(lambda s: s.request.method.encode("utf-8"))
        elif name == "url":
            uses.add("url")
            pieces.append(lambda s: s.url.encode("utf-8"))
        elif name.startswith(("header:", "query:")):
            kind, names, piece = _lookup_piece(name)
            lookups[kind].append(names)
            pieces.append(piece)
        else:
            raise ValueError(
                f"message: unknown placeholder {{{name}}}; use {{body}}, {{timestamp}}, "
                "{method}, {url}, {header:NAME}, {query:NAME} or {query:NAME|lower}"
            )
    if position < len(template):
        pieces.append(_literal(template[position:].encode("utf-8")))
    return Message(
        pieces=tuple(pieces),
        uses_timestamp="timestamp" in uses,
        uses_url="url" in uses,
        headers=tuple(lookups["header"]),
        queries=tuple(lookups["query"]),
    )


def _literal(data: bytes) -> Piece:
    return lambda s: data


def _lookup_piece(spec: str) -> tuple[str, tuple[str, ...], Piece]:
    """(header | query, the names it tries, the piece)."""
    kind, _, rest = spec.partition(":")
    names = rest.split("|")
    filters: list[Callable[[str], str]] = []
    while len(names) > 1 and names[-1] in _FILTERS:
        filters.insert(0, _FILTERS[names.pop()])
    if not all(names):
        raise ValueError(f"message: {{{spec}}} names no {kind}")
    where = "header" if kind == "header" else "query parameter"

    def piece(signed: Signed) -> bytes:
        request = signed.request
        for name in names:
            value = request.header(name) if kind == "header" else request.query_value(name)
            if value is not None:
                for apply in filters:
                    value = apply(value)
                return _wire_bytes(value) if kind == "header" else value.encode("utf-8")
        shown = " or ".join(n.lower() if kind == "header" else n for n in names)
        raise reject(f"missing {where} {shown}")

    looked_up = tuple(n.lower() for n in names) if kind == "header" else tuple(names)
    return kind, looked_up, piece


def _wire_bytes(header_value: str) -> bytes:
    """A header value as it was sent: the server decoded its bytes as latin-1."""
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:
        return header_value.encode("utf-8")


def secret_key(secret: str, encoding: str) -> bytes:
    """The HMAC key a configured secret stands for; ValueError if it cannot be decoded."""
    if encoding == "utf8":
        return secret.encode("utf-8")
    text = secret.removeprefix("whsec_") if encoding == "whsec_base64" else secret
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a secret is not valid base64 (secret_encoding {encoding})") from None


def encode_signature(digest: bytes, encoding: str) -> str:
    """A digest written the way a sender writes it: lower-case hex or padded base64."""
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


def decode_signature(text: str, encoding: str) -> bytes | None:
    """The digest a signature text stands for, or None if it is not hex / base64."""
    text = text.strip()
    try:
        if encoding == "hex":
            return bytes.fromhex(text) if text.isascii() else None
        text = text.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def public_url(request: RawRequest, configured: str | None) -> str:
    """The URL the sender called: `configured` (plus the request's query string) when set."""
    if not configured:
        return request.url
    query = urllib.parse.urlsplit(request.url).query
    return f"{configured}?{query}" if query and "?" not in configured else configured


class HmacVerifier(Verifier):
    def __init__(
        self,
        *,
        secrets: Sequence[str],
        header: str | Sequence[str],
        secret_encoding: str = "utf8",
        algorithm: str = "sha256",
        format: str = "raw",
        pair_sep: str = ",",
        kv_sep: str = "=",
        signature_keys: Sequence[str] = ("v1",),
        timestamp_key: str | None = None,
        timestamp_header: str | Sequence[str] | None = None,
        prefix: str = "",
        encoding: str = "hex",
        message: str = "{body}",
        tolerance: float | None = None,
        timestamp_unit: str = "s",
        public_url: str | None = None,
    ) -> None:
        if not secrets:
            raise ValueError("no secret left: a verifier must never accept everything")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if format not in ("raw", "kv"):
            raise ValueError(f"format {format!r} is not raw or kv")
        if encoding not in ("hex", "base64"):
            raise ValueError(f"encoding {encoding!r} is not hex or base64")
        if timestamp_unit not in ("s", "ms"):
            raise ValueError(f"timestamp_unit {timestamp_unit!r} is not s or ms")
        if format == "kv" and not (pair_sep and kv_sep and signature_keys):
            raise ValueError("format kv needs pair_sep, kv_sep and signature_keys")
        if timestamp_key and format != "kv":
            raise ValueError("timestamp_key reads a key=value header: it needs format: kv")
        self.keys = tuple(secret_key(s, secret_encoding) for s in secrets)
        self.algorithm = algorithm
        self.headers = _names(header)
        if not self.headers:
            raise ValueError("hmac needs the `header` that carries the signature")
        self.kv = (pair_sep, kv_sep, tuple(signature_keys)) if format == "kv" else None
        self.timestamp_key = timestamp_key if format == "kv" else None
        self.timestamp_headers = _names(timestamp_header)
        self.prefix = prefix
        self.encoding = encoding
        self.message = compile_message(message)
        self.reads_url = self.message.uses_url
        uses_timestamp = self.message.uses_timestamp
        self.has_timestamp = has_timestamp = bool(self.timestamp_key or self.timestamp_headers)
        if uses_timestamp and not has_timestamp:
            raise ValueError("message uses {timestamp} but no timestamp_header or timestamp_key")
        if tolerance is None:
            tolerance = DEFAULT_TOLERANCE if has_timestamp else 0.0
        self.tolerance = float(tolerance)
        self.scale = 1000.0 if timestamp_unit == "ms" else 1.0
        self.needs_timestamp = uses_timestamp or (has_timestamp and self.tolerance > 0)
        self.public_url = public_url
        self.secret_headers = frozenset(self.headers)

    def verify(self, request: RawRequest, *, now: float) -> None:
        header, value = _first_header(request, self.headers)
        candidates, timestamp = self._read(header, value)
        if timestamp is None and self.timestamp_headers:
            _, timestamp = _first_header(request, self.timestamp_headers)
        if self.needs_timestamp:
            self._check_time(timestamp or "", now)
        digests = [d for d in (decode_signature(c, self.encoding) for c in candidates) if d]
        if not digests:
            raise reject(f"malformed header {header}: signature is not {self.encoding}")
        message = self.signed_message(request, timestamp or "")
        found = False
        for key in self.keys:
            expected = self.digest(key, message)
            for digest in digests:
                found |= hmac.compare_digest(expected, digest)
        if not found:
            raise reject("no signature matched")

    def signed_message(self, request: RawRequest, timestamp: str) -> bytes:
        """The bytes the sender signs for `request` at `timestamp`: what `verify` checks, and
        what the sender's side (signing.py) signs, so the two cannot drift apart."""
        url = public_url(request, self.public_url) if self.message.uses_url else ""
        return self.message.build(Signed(request=request, timestamp=timestamp, url=url))

    def digest(self, key: bytes, message: bytes) -> bytes:
        return hmac.digest(key, message, self.algorithm)

    def _read(self, header: str, value: str) -> tuple[list[str], str | None]:
        """Candidate signatures (prefix removed) and the timestamp the header carries."""
        if self.kv is None:
            return [self._unprefixed(header, value.strip())], None
        pair_sep, kv_sep, signature_keys = self.kv
        candidates: list[str] = []
        timestamp = None
        for pair in value.split(pair_sep):
            key, sep, item = pair.strip().partition(kv_sep)
            if not sep:
                continue
            if key in signature_keys:
                candidates.append(self._unprefixed(header, item.strip()))
            elif key == self.timestamp_key:
                timestamp = item.strip()
        if not candidates:
            keys = " or ".join(sorted(signature_keys))
            raise reject(f"malformed header {header}: no {keys} signature")
        if self.timestamp_key and timestamp is None and not self.timestamp_headers:
            raise reject(f"malformed header {header}: no {self.timestamp_key} timestamp")
        return candidates, timestamp

    def _unprefixed(self, header: str, value: str) -> str:
        if not self.prefix:
            return value
        if not value.startswith(self.prefix):
            raise reject(f"malformed header {header}: expected the prefix {self.prefix}")
        return value[len(self.prefix) :]

    def _check_time(self, timestamp: str, now: float) -> None:
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
            raise reject("malformed timestamp: not a whole number")
        if self.tolerance > 0 and abs(now - int(timestamp) / self.scale) > self.tolerance:
            raise reject("timestamp outside tolerance")


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    return tuple(name.lower() for name in value if name)


def _first_header(request: RawRequest, names: tuple[str, ...]) -> tuple[str, str]:
    for name in names:
        value = request.header(name)
        if value is not None:
            return name, value
    raise reject(f"missing header {' or '.join(names)}")
