"""/admin: the operator's HTML pages (DESIGN §4.1), server-rendered, no script.

    GET  /admin/login, POST /admin/login (form: token, next), POST /admin/logout
    GET  /admin/                      overview: activity chart, queue depth, dead letters, holds
    GET  /admin/events?source=&status=&since=&until=&before=
    GET  /admin/events/{id}           detail, rule trace, deliveries and attempts; Replay
    GET  /admin/dead?provider=        dead deliveries, a Retry button each
    GET  /admin/providers             states, Pause and Resume
    and the buttons' POSTs (actions.py)

Failed logins count against the client's address with the API's (throttle.py: 429 beyond
them). The login with the admin token sets the session cookie (AdminAuth: Secure, HttpOnly,
SameSite=Strict, Path=/admin); any other page without it answers 303 to the login. Every POST
carries the session's CSRF token in the field `csrf` (403 without it) and answers 303 back to
its page with a flash message named in the query string (frame.py). What the pages
show is what the JSON API answers (bridge.views), masked (render.py).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.admin.context import AdminContext, BadParameter, event_filters
from bridge.admin.pages.actions import action_routes
from bridge.admin.pages.chart import activity_chart
from bridge.admin.pages.frame import PageFrame, form_text, safe_back, see_other
from bridge.admin.pages.render import ADMIN
from bridge.records import DeliveryStatus, EventStatus
from bridge.views import delivery_json, describe_failure, event_detail_json, event_summary_json

CHART_SPAN = 3 * 3600.0
CHART_BUCKET = 60.0
DEAD_LIMIT = 200
QUEUED = (DeliveryStatus.PENDING, DeliveryStatus.WAITING, DeliveryStatus.IN_FLIGHT)
RETRYABLE = tuple(s.value for s in DeliveryStatus if s.is_final and s is not DeliveryStatus.DONE)
PAUSE_CHOICES = (("", "until resumed"), ("15m", "15 minutes"), ("1h", "1 hour"), ("1d", "1 day"))


def page_routes(ctx: AdminContext) -> list[Route]:
    frame = PageFrame(ctx)
    render = frame.render

    # -- login ------------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        if ctx.auth.session_ok(request):
            return see_other(safe_back(request.query_params.get("next"), ADMIN + "/"))
        return render(
            request, "login.html", title="Log in", next=request.query_params.get("next", "")
        )

    async def login(request: Request) -> Response:
        form = await request.form()
        token, target = form_text(form, "token"), form_text(form, "next")
        address = ctx.client(request)
        wait = ctx.attempts.wait(address)
        if wait is not None:
            refused = render(
                request,
                "login.html",
                status=429,
                title="Log in",
                error=f"Too many wrong tokens from this address: try again in {wait} s.",
                next=target,
            )
            refused.headers["Retry-After"] = str(wait)
            return refused
        if not token or not ctx.auth.token_matches(token):
            ctx.attempts.failed(address, path=request.url.path)
            return render(
                request,
                "login.html",
                status=401,
                title="Log in",
                error="That is not the admin token.",
                next=target,
            )
        ctx.attempts.succeeded(address)
        response = see_other(safe_back(target, ADMIN + "/"))
        # Secure always: browsers keep a Secure cookie for http://127.0.0.1 and localhost too
        ctx.auth.start_session(response, secure=True)
        return response

    async def logout(request: Request, form: FormData) -> Response:
        response = see_other(f"{ADMIN}/login?flash=logged_out")
        ctx.auth.end_session(response)
        return response

    # -- overview ---------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        now = ctx.clock()
        until = (now // CHART_BUCKET + 1) * CHART_BUCKET  # to the end of this minute
        activity = await ctx.store.activity(
            since=until - CHART_SPAN, until=until, bucket=CHART_BUCKET
        )
        stats = await ctx.store.queue_stats()
        by_status = dict.fromkeys(DeliveryStatus, 0)
        dead: dict[str, int] = {}
        for (provider, status), count in stats.deliveries.items():
            by_status[status] += count
            if status is DeliveryStatus.DEAD:
                dead[provider] = dead.get(provider, 0) + count
        providers = await ctx.providers()
        oldest = stats.oldest_unfinished
        return render(
            request,
            "overview.html",
            title="Overview",
            chart=activity_chart(activity, bucket=CHART_BUCKET),
            queued=[(s.value, by_status[s]) for s in QUEUED],
            finished=[(s.value, by_status[s]) for s in DeliveryStatus if s not in QUEUED],
            unrouted=stats.unrouted,
            oldest_age=None if oldest is None else now - oldest,
            dead=sorted(dead.items()),
            held=[p for p in providers if p["state"] != "active"],
        )

    # -- events -----------------------------------------------------------------------

    async def events(request: Request) -> Response:
        choices: dict[str, Any] = {
            "title": "Events",
            "sources": sorted(ctx.service.config.sources),
            "statuses": [s.value for s in EventStatus],
        }
        try:
            filters = event_filters(request.query_params)
        except BadParameter as exc:
            error = f"{exc.name}: {exc.detail}"
            return render(
                request,
                "events.html",
                status=400,
                error=error,
                events=[],
                next_before=None,
                **choices,
            )
        found = await ctx.store.list_events(**filters)
        return render(
            request,
            "events.html",
            events=[event_summary_json(e) for e in found],
            next_before=found[-1].id if len(found) == filters["limit"] else None,
            **choices,
        )

    async def event(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        detail = await ctx.store.get_event(event_id)
        if detail is None:
            return frame.not_found(request, f"event {event_id}")
        data = event_detail_json(detail, now=ctx.clock())
        trace = [
            {
                "rule": entry.get("rule"),
                "matched": bool(entry.get("matched")),
                "why": describe_failure(entry.get("failed")) or entry.get("note") or "",
            }
            for entry in data["trace"]
        ]
        return render(
            request,
            "event.html",
            title=f"Event {event_id}",
            event=data,
            trace=trace,
            retryable=RETRYABLE,
        )

    # -- dead letters and providers ----------------------------------------------------

    async def dead(request: Request) -> Response:
        provider = request.query_params.get("provider") or None
        found = await ctx.store.list_deliveries(
            status=DeliveryStatus.DEAD, provider=provider, limit=DEAD_LIMIT
        )
        holds = await ctx.store.provider_holds()
        now = ctx.clock()
        return render(
            request,
            "dead.html",
            title="Dead letters",
            provider=provider or "",
            providers=sorted(ctx.service.config.providers),
            deliveries=[delivery_json(d, holds.get(d.provider), now=now) for d in found],
            limit=DEAD_LIMIT,
        )

    async def providers(request: Request) -> Response:
        return render(
            request,
            "providers.html",
            title="Providers",
            providers=await ctx.providers(),
            choices=PAUSE_CHOICES,
        )

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", frame.action(logout), methods=["POST"]),
        Route("/", frame.page(overview), methods=["GET"]),
        Route("/events", frame.page(events), methods=["GET"]),
        Route("/events/{event_id}", frame.page(event), methods=["GET"]),
        Route("/dead", frame.page(dead), methods=["GET"]),
        Route("/providers", frame.page(providers), methods=["GET"]),
        *action_routes(frame),
    ]
