"""send: sign a payload as the source's sender would, POST it to the running service.

    ticketbridge send SOURCE FILE [--url URL] [--header K:V ...] [--rules DIR] [--templates DIR]

FILE (or - for standard input) is the body, sent byte for byte. `--url` is the service's
base URL (default http://127.0.0.1:8000); the source's path is appended, and a query string
given with it is kept. The request is signed by bridge/sources/signing.py with the first
secret of the source's `verify`.

Prints the answer's status and body. Exit 0 on a 2xx; 1 on any other answer, when the
service cannot be reached, or when the configuration has problems; 2 on usage errors (bad
arguments, no such source, an unreadable FILE, a request that cannot be signed as given).
No secret is printed: the request is not echoed, and secrets are masked in what is.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import urllib.parse
import uuid

import httpx

from bridge.cli.common import Failed, _add_config, _load
from bridge.cli.dryrun import _headers
from bridge.redaction import mask, redact_pairs
from bridge.sources.intake import CompiledSource, dedupe_key_of
from bridge.sources.signing import Outgoing, sender_request

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = 30.0
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


class UsageError(Exception):
    """What was typed cannot be sent: print it as argparse does, exit 2."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the command on the CLI's subparsers."""
    send = commands.add_parser(
        "send", help="sign a payload as the source's sender would and POST it to the service"
    )
    _add_config(send)
    send.add_argument("source")
    send.add_argument("payload", help="a file with the request body, or - for standard input")
    send.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the service's base URL; the source's path is appended (default {DEFAULT_URL})",
    )
    send.add_argument("--header", action="append", default=[], metavar="K:V")


def cmd_send(args: argparse.Namespace) -> int:
    try:
        return _send(args)
    except UsageError as exc:
        print(f"ticketbridge send: error: {exc}", file=sys.stderr)
        return 2


def _send(args: argparse.Namespace) -> int:
    try:
        headers = _headers(args.header)
    except Failed as exc:
        raise UsageError(str(exc)) from None
    body = _body(args.payload)
    service = _load(args, httpx.AsyncClient())
    source = service.sources.get(args.source)
    if source is None:
        raise UsageError(
            f"no source named {args.source!r} (have: {', '.join(sorted(service.sources))})"
        )
    try:
        request = sender_request(
            source.verifier,
            url=_endpoint(args.url, source.config.path),
            body=body,
            headers=headers,
            body_setting=source.config.body,
            dedupe_key=dedupe_key_of(source.config),
            now=time.time(),
            new_id=lambda: str(uuid.uuid4()),
        )
    except ValueError as exc:
        raise UsageError(mask(str(exc), service.config.secrets)) from None
    for name, value in request.headers.items():  # given with --header, or from the config
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise UsageError(f"header {name!r}: a header is an ASCII NAME:VALUE on one line")
    secrets = service.config.secrets
    shown = mask(_shown_url(request.url, source), secrets)
    print(f"POST {shown}", file=sys.stderr)
    try:
        answer = _post(request)
    except httpx.TimeoutException:
        raise Failed(f"no answer from {shown} within {TIMEOUT:g} s") from None
    except httpx.HTTPError as exc:
        reason = mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
        raise Failed(f"cannot reach {shown}: {reason}") from None
    print(f"{answer.status_code} {answer.reason_phrase}".rstrip())
    if answer.text:
        print(mask(answer.text.rstrip("\n"), secrets))
    return 0 if answer.is_success else 1


def _body(payload: str) -> bytes:
    if payload == "-":
        return sys.stdin.buffer.read()
    try:
        with open(payload, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {payload}: {exc.strerror}") from None


def _endpoint(base: str, path: str) -> str:
    """The source's URL under the service's base URL, as httpx will send it (so that a URL
    the sender signs is the one the service sees)."""
    wrong = UsageError(f"--url {base!r} is not an http(s) base URL such as {DEFAULT_URL}")
    try:
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise wrong
        if parts.port == 0:  # reading .port raises ValueError when it is not a number
            raise wrong
        joined = parts._replace(path=parts.path.rstrip("/") + path)
        return str(httpx.URL(urllib.parse.urlunsplit(joined)))
    except (ValueError, httpx.InvalidURL):
        raise wrong from None


def _shown_url(url: str, source: CompiledSource) -> str:
    """`url` with any query parameter that carries a secret shown as [redacted]."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = urllib.parse.urlencode(
        redact_pairs(pairs, also=source.verifier.secret_query), safe="[]"
    )
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _post(request: Outgoing) -> httpx.Response:
    headers = {"user-agent": "ticketbridge-send", **request.headers}
    with httpx.Client(timeout=TIMEOUT) as client:
        return client.post(request.url, content=request.body, headers=headers)
