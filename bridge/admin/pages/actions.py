"""The admin pages' buttons: replay an event, retry a delivery, pause and resume a provider.
Each is a CSRF-checked POST (PageFrame.action) that answers 303 back to its page with a flash."""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.admin.pages.frame import PageFrame, back_with_flash, form_text, safe_back
from bridge.admin.pages.render import ADMIN
from bridge.config import parse_duration
from bridge.delivery.steering import pause_provider, replay_event
from bridge.records import DeliveryStatus


def action_routes(frame: PageFrame) -> list[Route]:
    ctx = frame.ctx

    async def replay(request: Request, form: FormData) -> Response:
        event_id = request.path_params["event_id"]
        routing = await replay_event(ctx.service, ctx.store, event_id, now=ctx.clock())
        if routing is None:
            return frame.not_found(request, f"event {event_id}")
        ctx.wake()
        return back_with_flash(f"{ADMIN}/events/{quote(event_id, safe='')}", "replayed", event_id)

    async def retry(request: Request, form: FormData) -> Response:
        delivery_id = request.path_params["delivery_id"]
        back = safe_back(form_text(form, "back"), f"{ADMIN}/dead")
        if await ctx.store.retry_delivery(delivery_id, now=ctx.clock()):
            ctx.wake()
            return back_with_flash(back, "retried", delivery_id, form_text(form, "event"))
        delivery = await ctx.store.get_delivery(delivery_id)
        if delivery is None:
            return back_with_flash(back, "no_delivery", delivery_id)
        done = delivery.status is DeliveryStatus.DONE
        return back_with_flash(back, "already_done" if done else "not_retryable", delivery_id)

    async def pause(request: Request, form: FormData) -> Response:
        name = request.path_params["name"]
        if name not in ctx.service.config.providers:
            return frame.not_found(request, f"provider {name}")
        back = f"{ADMIN}/providers"
        length = form_text(form, "for")
        try:
            seconds = parse_duration(length) if length else None
        except (TypeError, ValueError):
            return back_with_flash(back, "bad_duration")
        await pause_provider(
            ctx.store, name, now=ctx.clock(), reason="paused from the admin pages", seconds=seconds
        )
        return back_with_flash(back, "paused", name)

    async def resume(request: Request, form: FormData) -> Response:
        name = request.path_params["name"]
        if name not in ctx.service.config.providers:
            return frame.not_found(request, f"provider {name}")
        resumed = await ctx.store.release_provider(name)
        ctx.wake()
        return back_with_flash(f"{ADMIN}/providers", "resumed" if resumed else "not_held", name)

    return [
        Route("/events/{event_id}/replay", frame.action(replay), methods=["POST"]),
        Route("/deliveries/{delivery_id}/retry", frame.action(retry), methods=["POST"]),
        Route("/providers/{name}/pause", frame.action(pause), methods=["POST"]),
        Route("/providers/{name}/resume", frame.action(resume), methods=["POST"]),
    ]
