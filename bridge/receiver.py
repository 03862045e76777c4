"""POST /hooks/<source>: the hot path (DESIGN §3.1).

route lookup -> size limit (while the body streams in) -> raw body -> verify -> parse ->
dedupe key -> durable commit (group commit in the store) -> answer -> wake the worker.
Matching, rendering and delivery happen after the answer, in the worker.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeAlias

from starlette.datastructures import URL
from starlette.types import Receive, Scope, Send

from bridge.exceptions import RejectedRequest, StoreError
from bridge.gate import CLOSE, send_json
from bridge.ids import new_id
from bridge.metrics import UNKNOWN_SOURCE, Metrics, Received
from bridge.service import Service
from bridge.sources.forwarded import TrustedProxies
from bridge.sources.intake import CompiledSource
from bridge.sources.request import RawRequest
from bridge.store.base import Store

log = logging.getLogger("bridge.receiver")


HOOKS = "/hooks/"
# status, JSON body, extra headers
Answer: TypeAlias = tuple[int, Mapping[str, object], tuple[tuple[bytes, bytes], ...]]
_INTERNAL = {"error": "internal_error"}
_ALLOW_POST = ((b"allow", b"POST"),)


def _headers_for(rejection: RejectedRequest) -> tuple[tuple[bytes, bytes], ...]:
    if rejection.status == 405:
        return _ALLOW_POST
    return (CLOSE,) if rejection.closes else ()


async def read_body(receive: Receive, declared: str | None, max_body: int) -> bytes | None:
    """The whole body, refusing (413) as soon as it is known to exceed `max_body`; None when
    the client went away before sending it all."""
    if declared is not None:
        try:
            if int(declared) > max_body:
                raise RejectedRequest(413, "body_too_large", f"the limit is {max_body} bytes")
        except ValueError:
            raise RejectedRequest(
                400, "invalid_content_length", "Content-Length is not a number"
            ) from None
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise RejectedRequest(413, "body_too_large", f"the limit is {max_body} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def request_headers(scope: Scope) -> dict[str, str]:
    """The headers by lower-case name (ASGI's), repeated ones joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def raw_request(
    scope: Scope, headers: dict[str, str], body: bytes, proxies: TrustedProxies, *, url: bool
) -> RawRequest:
    """The request as the sources see it; its URL (as the sender called it) only if `url`."""
    query = scope.get("query_string", b"")
    client = scope.get("client")
    return RawRequest(
        method=scope["method"],
        url=proxies.external_url(str(URL(scope=scope)), headers, client[0] if client else None)
        if url
        else "",
        headers=headers,
        query=tuple(urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        if query
        else (),
        body=body,
    )


class Receiver:
    """The endpoint for every configured source path, an ASGI app of its own: the hot path
    goes through no router, middleware or Request object."""

    def __init__(
        self,
        *,
        sources: Mapping[str, CompiledSource],  # by URL path
        store: Store,
        dedupe_window: float,
        proxies: TrustedProxies,
        on_stored: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.sources = sources
        self.store = store
        self.dedupe_window = dedupe_window
        self.proxies = proxies
        self.on_stored = on_stored
        self.clock = clock
        self.metrics = metrics or Metrics()

    def use(self, service: Service) -> None:
        """A reloaded configuration's sources, proxies and dedupe window, for the next request."""
        self.sources = service.source_for_path()
        self.proxies = service.proxies
        self.dedupe_window = service.config.defaults.dedupe_window

    def answers(self, path: str) -> bool:
        """Whether the receiver answers `path`: a source's, or any other /hooks/<name>."""
        if path in self.sources:
            return True
        name = path.removeprefix(HOOKS)
        return name != path and bool(name) and "/" not in name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        source = self.sources.get(path)
        name = source.name if source else path.removeprefix(HOOKS)
        # a name from the URL of an unknown source is logged, never made a metric label
        label = source.name if source else UNKNOWN_SOURCE
        facts: dict[str, object] = {}
        answer: Answer | None = (500, _INTERNAL, ())
        try:
            if source is None:
                raise RejectedRequest(404, "unknown_source")
            if scope["method"] != "POST":
                raise RejectedRequest(405, "method_not_allowed", "webhooks are POSTed")
            answer = await self._accept(source, scope, receive, facts)
        except RejectedRequest as exc:
            answer = (exc.status, exc.body(), _headers_for(exc))
            facts.update(error=exc.error, detail=exc.detail, outcome=Received.REJECTED.value)
            self.metrics.received(label, Received.REJECTED)
        except StoreError as exc:
            answer = (503, {"error": "store_unavailable"}, ())
            facts.update(
                error="store_unavailable", detail=str(exc), outcome=Received.UNAVAILABLE.value
            )
            self.metrics.received(label, Received.UNAVAILABLE)
        except Exception:  # a bug: answered 500 with a JSON body, never a traceback
            log.exception("the receiver failed", extra={"action": "receive", "source": name})
        else:
            if answer is None:
                facts.update(error="client_disconnected", outcome=Received.REJECTED.value)
            else:
                self.on_stored()
        log.info(
            "webhook",
            extra={
                "action": "receive",
                "source": name,
                "status": answer[0] if answer else None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **facts,
            },
        )
        if answer is not None:
            await send_json(send, *answer)

    async def _accept(
        self, source: CompiledSource, scope: Scope, receive: Receive, facts: dict[str, object]
    ) -> Answer | None:
        """The answer to a request of `source`; None when the client went away."""
        headers = request_headers(scope)
        body = await read_body(receive, headers.get("content-length"), source.max_body)
        if body is None:
            return None
        now = self.clock()
        raw = raw_request(scope, headers, body, self.proxies, url=source.verifier.reads_url)
        intake = source.intake(raw, now=now, new_id=partial(new_id, "evt", now=now))
        results = await self.store.ingest(intake.events, dedupe_window=self.dedupe_window, now=now)
        new = [r.event_id for r in results if not r.duplicate]
        duplicates = [r.event_id for r in results if r.duplicate]
        outcome = Received.ACCEPTED if new or not duplicates else Received.DUPLICATE
        facts.update(event_ids=new, duplicates=duplicates, outcome=outcome.value)
        self.metrics.received(source.name, Received.ACCEPTED, len(new))
        self.metrics.received(source.name, Received.DUPLICATE, len(duplicates))
        if source.config.split:
            # an empty batch holds nothing to store: accepted, not a duplicate of anything
            accepted = bool(new) or not duplicates
            status = "accepted" if accepted else "duplicate"
            batch = {"status": status, "event_ids": new, "duplicates": duplicates}
            return (202 if accepted else 200), batch, ()
        if new:
            return 202, {"event_id": new[0], "status": "accepted"}, ()
        return 200, {"event_id": duplicates[0], "status": "duplicate"}, ()
