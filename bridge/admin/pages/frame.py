"""What every admin page shares: drawing it with the session's context (CSRF token, flash
message), the session guard (no session: 303 to the login), the CSRF check of every form that
changes something (403), and the redirect after a POST back to a page inside /admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.admin.context import AdminContext
from bridge.admin.pages.render import ADMIN, PageRenderer

Page = Callable[[Request], Awaitable[Response]]
Action = Callable[[Request, FormData], Awaitable[Response]]

# flash messages by name: the query string names one and the thing it is about, never the text
FLASHES = {
    "logged_out": "You are logged out.",
    "retried": "Delivery {ref} is queued again.",
    "not_retryable": "Delivery {ref} is still under way: it will be sent without a retry.",
    "already_done": "Delivery {ref} was delivered: sending it again would make a second ticket.",
    "no_delivery": "There is no delivery {ref}.",
    "replayed": "Event {ref} was routed again with the rules loaded now.",
    "paused": "Provider {ref} is paused.",
    "resumed": "Provider {ref} is resumed.",
    "not_held": "Provider {ref} was neither paused nor held back.",
    "bad_duration": "That pause length is not a duration.",
}
PROBLEMS = frozenset({"not_retryable", "already_done", "no_delivery", "not_held", "bad_duration"})


def safe_back(value: str | None, default: str) -> str:
    """A path inside /admin to go back to, or `default`: never another site."""
    if not value:
        return default
    parts = urlsplit(value)
    inside = parts.path == ADMIN or parts.path.startswith(ADMIN + "/")
    if parts.scheme or parts.netloc or "\\" in value or not inside:
        return default
    return value


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def back_with_flash(back: str, flash: str, ref: str = "", event: str = "") -> RedirectResponse:
    """303 to `back` with the flash named (and what it is about, and an event to link to)."""
    extra = {"flash": flash, "ref": ref, "event": event}
    text = urlencode({key: value for key, value in extra.items() if value})
    return see_other(f"{back}{'&' if '?' in back else '?'}{text}")


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


class PageFrame:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx
        self._renderer = PageRenderer(ctx.secrets)

    def render(self, request: Request, name: str, *, status: int = 200, **context: Any) -> Response:
        auth = self.ctx.auth
        params = request.query_params
        flash = params.get("flash", "")
        text = FLASHES.get(flash)
        return self._renderer.render(
            name,
            {
                "title": "Admin",
                "error": None,
                "path": request.url.path,
                "params": dict(params),
                "csrf": auth.csrf_token(request) if auth.session_ok(request) else "",
                "flash": text.format(ref=params.get("ref", "")) if text else None,
                "flash_event": params.get("event", "") if text else "",
                "problem": flash in PROBLEMS,
                **context,
            },
            status=status,
        )

    def not_found(self, request: Request, what: str) -> Response:
        return self.render(
            request, "error.html", status=404, title="Not found", message=f"There is no {what}."
        )

    @staticmethod
    def to_login(request: Request) -> Response:
        target = f"{ADMIN}/login"
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method == "GET" and here not in (ADMIN, ADMIN + "/"):
            target += "?" + urlencode({"next": here})
        return see_other(target)

    def page(self, handler: Page) -> Page:
        """A page for a logged-in operator."""

        async def endpoint(request: Request) -> Response:
            if not self.ctx.auth.session_ok(request):
                return self.to_login(request)
            return await handler(request)

        return endpoint

    def action(self, handler: Action) -> Page:
        """A form that changes something: a session and its CSRF token (field `csrf`)."""

        async def endpoint(request: Request) -> Response:
            if not self.ctx.auth.session_ok(request):
                return self.to_login(request)
            form = await request.form()
            if not self.ctx.auth.csrf_ok(request, form_text(form, "csrf")):
                return self.render(
                    request,
                    "error.html",
                    status=403,
                    title="Refused",
                    message="This form came without its security token (CSRF). "
                    "Reload the page and try again.",
                )
            return await handler(request, form)

        return endpoint
