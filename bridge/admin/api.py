"""/admin/api: the JSON surface of DESIGN §4.1, behind the bearer token.

    GET  /admin/api/events?source=&status=&since=&until=&limit=&before=
    GET  /admin/api/events/{id}
    POST /admin/api/events/{id}/replay
    GET  /admin/api/deliveries?status=&provider=&limit=
    POST /admin/api/deliveries/{id}/retry
    GET  /admin/api/providers
    POST /admin/api/providers/{name}/pause        {"for": "1h"} optional; else until resumed

Every time in an answer is ISO 8601 in UTC (`2026-11-21T10:00:00.000Z`); a pause that lasts
until resumed has `"until": null`.
    POST /admin/api/providers/{name}/resume
    POST /admin/api/reload                        the configuration again (bridge.reload)

Errors are JSON: 400 invalid_parameter (naming it), 401 unauthorized, 404 not_found,
409 not_retryable, 422 invalid_configuration (a reload refused: every problem, with its file,
line and path), 429 too_many_attempts. Every answer is masked with the configured secrets on
the way out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.admin.context import AdminContext, BadParameter, event_filters, int_param
from bridge.config import parse_duration
from bridge.delivery.steering import pause_provider, replay_event
from bridge.records import DeliveryStatus
from bridge.views import (
    delivery_json,
    event_detail_json,
    event_summary_json,
    hold_json,
    retry_refusal,
)

Handler = Callable[[Request], Awaitable[Response]]


def api_routes(ctx: AdminContext) -> list[Route]:
    def guarded(handler: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            address = ctx.client(request)
            wait = ctx.attempts.wait(address)
            if wait is not None:
                detail = f"too many failed authentications from {address}; retry in {wait} s"
                return ctx.json(
                    {"error": "too_many_attempts", "detail": detail},
                    429,
                    headers={"Retry-After": str(wait)},
                )
            if not ctx.auth.bearer_ok(request):
                ctx.attempts.failed(address, path=request.url.path)
                return ctx.json(
                    {"error": "unauthorized", "detail": "send Authorization: Bearer <token>"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="ticketbridge admin"'},
                )
            ctx.attempts.succeeded(address)
            try:
                answer = await handler(request)
            except BadParameter as exc:
                return ctx.json(
                    {"error": "invalid_parameter", "parameter": exc.name, "detail": exc.detail},
                    400,
                )
            if isinstance(answer, Response):
                return answer
            return ctx.json(answer)

        return endpoint

    async def events(request: Request) -> Any:
        filters = event_filters(request.query_params)
        found = await ctx.store.list_events(**filters)
        limit = filters["limit"]
        return {
            "events": [event_summary_json(e) for e in found],
            "next_before": found[-1].id if len(found) == limit else None,
        }

    async def event(request: Request) -> Any:
        detail = await ctx.store.get_event(request.path_params["event_id"])
        if detail is None:
            return ctx.not_found("event")
        return event_detail_json(detail, now=ctx.clock())

    async def replay(request: Request) -> Any:
        event_id = request.path_params["event_id"]
        routing = await replay_event(ctx.service, ctx.store, event_id, now=ctx.clock())
        if routing is None:
            return ctx.not_found("event")
        ctx.wake()
        return {
            "event_id": event_id,
            "matched_rules": list(routing.matched_rules),
            "deliveries": [d.id for d in routing.deliveries],
        }

    async def deliveries(request: Request) -> Any:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in DeliveryStatus.__members__.values():
            raise BadParameter("status", f"one of {', '.join(s.value for s in DeliveryStatus)}")
        found = await ctx.store.list_deliveries(
            status=DeliveryStatus(status) if status else None,
            provider=params.get("provider") or None,
            limit=int_param(params, "limit", default=100, high=1000),
        )
        holds = await ctx.store.provider_holds()
        now = ctx.clock()
        return {"deliveries": [delivery_json(d, holds.get(d.provider), now=now) for d in found]}

    async def retry(request: Request) -> Any:
        delivery_id = request.path_params["delivery_id"]
        if await ctx.store.retry_delivery(delivery_id, now=ctx.clock()):
            ctx.wake()
            return {"delivery_id": delivery_id, "status": "queued"}
        delivery = await ctx.store.get_delivery(delivery_id)
        if delivery is None:
            return ctx.not_found("delivery")
        return ctx.json(
            {
                "error": "not_retryable",
                "status": delivery.status.value,
                "detail": retry_refusal(delivery),
            },
            409,
        )

    async def providers(request: Request) -> Any:
        return {"providers": await ctx.providers()}

    async def pause(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in ctx.service.config.providers:
            return ctx.not_found("provider")
        seconds = None
        body = await _json_body(request)
        if body.get("for") is not None:
            try:
                seconds = parse_duration(body["for"])
            except (TypeError, ValueError) as exc:
                raise BadParameter("for", str(exc)) from None
        hold = await pause_provider(
            ctx.store, name, now=ctx.clock(), reason="paused from the admin API", seconds=seconds
        )
        return {"provider": name, **hold_json(hold)}

    async def resume(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in ctx.service.config.providers:
            return ctx.not_found("provider")
        resumed = await ctx.store.release_provider(name)
        ctx.wake()
        return {"provider": name, "resumed": resumed}

    async def reload(request: Request) -> Any:
        if ctx.reload is None:
            return ctx.json({"error": "not_available", "detail": "this process cannot reload"}, 409)
        done = await ctx.reload()
        if done.service is None:
            problems = [
                {"file": p.file, "line": p.line, "path": p.path, "message": p.message}
                for p in done.problems
            ]
            detail = "the configuration has problems; the running one goes on"
            return ctx.json(
                {"error": "invalid_configuration", "detail": detail, "problems": problems}, 422
            )
        config = done.service.config
        return {
            "status": "reloaded",
            "sources": len(config.sources),
            "rules": len(config.rules),
            "providers": len(config.providers),
        }

    return [
        Route("/api/events", guarded(events), methods=["GET"]),
        Route("/api/events/{event_id}", guarded(event), methods=["GET"]),
        Route("/api/events/{event_id}/replay", guarded(replay), methods=["POST"]),
        Route("/api/deliveries", guarded(deliveries), methods=["GET"]),
        Route("/api/deliveries/{delivery_id}/retry", guarded(retry), methods=["POST"]),
        Route("/api/providers", guarded(providers), methods=["GET"]),
        Route("/api/providers/{name}/pause", guarded(pause), methods=["POST"]),
        Route("/api/providers/{name}/resume", guarded(resume), methods=["POST"]),
        Route("/api/reload", guarded(reload), methods=["POST"]),
    ]


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadParameter("body", "not JSON") from None
    if not isinstance(body, dict):
        raise BadParameter("body", "expected a JSON object")
    return body
