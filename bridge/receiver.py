"""POST /hooks/<source>: the hot path (DESIGN §3.1).

route lookup -> size limit (while the body streams in) -> raw body -> verify -> parse ->
dedupe key -> durable commit (group commit in the store) -> answer -> wake the worker.
Matching, rendering and delivery happen after the answer, in the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.exceptions import RejectedRequest, StoreError
from bridge.ids import new_id
from bridge.metrics import UNKNOWN_SOURCE, Metrics, Received
from bridge.sources.forwarded import TrustedProxies
from bridge.sources.intake import CompiledSource
from bridge.sources.request import RawRequest
from bridge.store.base import Store

log = logging.getLogger("bridge.receiver")


async def read_body(request: Request, max_body: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed `max_body`."""
    declared = request.headers.get("content-length")
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
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise RejectedRequest(413, "body_too_large", f"the limit is {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def raw_request(request: Request, body: bytes, proxies: TrustedProxies) -> RawRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    peer = request.client.host if request.client else None
    return RawRequest(
        method=request.method,
        url=proxies.external_url(str(request.url), headers, peer),
        headers=headers,
        query=tuple(request.query_params.multi_items()),
        body=body,
    )


class Receiver:
    """The endpoint for every configured source path."""

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

    async def handle(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        source = self.sources.get(request.url.path)
        name = source.name if source else request.path_params.get("source", "")
        # a name from the URL of an unknown source is logged, never made a metric label
        label = source.name if source else UNKNOWN_SOURCE
        facts: dict[str, object] = {}
        try:
            if source is None:
                raise RejectedRequest(404, "unknown_source")
            if request.method != "POST":
                raise RejectedRequest(405, "method_not_allowed", "webhooks are POSTed")
            response = await self._accept(source, request, facts)
        except RejectedRequest as exc:
            headers = {"Allow": "POST"} if exc.status == 405 else None
            response = JSONResponse(exc.body(), status_code=exc.status, headers=headers)
            facts.update(error=exc.error, detail=exc.detail, outcome=Received.REJECTED.value)
            self.metrics.received(label, Received.REJECTED)
        except StoreError as exc:
            response = JSONResponse({"error": "store_unavailable"}, status_code=503)
            facts.update(
                error="store_unavailable", detail=str(exc), outcome=Received.UNAVAILABLE.value
            )
            self.metrics.received(label, Received.UNAVAILABLE)
        else:
            self.on_stored()
        log.info(
            "webhook",
            extra={
                "action": "receive",
                "source": name,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **facts,
            },
        )
        return response

    async def _accept(
        self, source: CompiledSource, request: Request, facts: dict[str, object]
    ) -> JSONResponse:
        body = await read_body(request, source.max_body)
        now = self.clock()
        raw = raw_request(request, body, self.proxies)
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
            return JSONResponse(
                {
                    "status": "accepted" if accepted else "duplicate",
                    "event_ids": new,
                    "duplicates": duplicates,
                },
                status_code=202 if accepted else 200,
            )
        if new:
            return JSONResponse({"event_id": new[0], "status": "accepted"}, status_code=202)
        return JSONResponse({"event_id": duplicates[0], "status": "duplicate"}, status_code=200)
