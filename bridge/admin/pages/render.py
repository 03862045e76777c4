"""How the admin pages are drawn: the Jinja environment, its filters, and the response every
page goes out in.

Payload content is attacker-controlled, so autoescape is on and nothing from a request is
ever compiled as a template (it is only ever a value). The finished HTML is masked with the
configured secrets (also in their HTML- and JSON-escaped spellings, which is how a secret
inside a body or an action shows), and the browser is told to run no script at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from bridge.redaction import mask, spellings

ADMIN = "/admin"

# no script, no framing, no third-party anything; inline <style> only
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def short_time(value: str | None) -> str:
    """'2026-11-21T10:00:03.120Z' -> '2026-11-21 10:00:03'."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def clock_time(value: str | None) -> str:
    """'2026-11-21T10:00:03.120Z' -> '10:00'."""
    return value[11:16] if value else "-"


def age(seconds: float | None) -> str:
    """A duration for people: '4 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def hold_end(hold: Mapping[str, Any]) -> str:
    """When a provider's hold ends: 'until resumed' for a pause by hand (a century long)."""
    since, until = hold.get("since"), hold.get("until")
    if not since or not until:
        return "-"
    if int(until[:4]) - int(since[:4]) > 50:
        return "until resumed"
    return f"until {short_time(until)} UTC"


def pretty(value: Any) -> str:
    """A value as indented JSON (a string that is not JSON is shown as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def ticket(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return "-"
    return ", ".join(f"{key}={value}" for key, value in ref.items())


def query(params: Mapping[str, Any], **changes: Any) -> str:
    """A query string from `params` with `changes` applied; empty values dropped."""
    merged = {**params, **changes}
    kept = {key: str(value) for key, value in merged.items() if value not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bridge.admin", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        short_time=short_time,
        clock_time=clock_time,
        age=age,
        hold_end=hold_end,
        pretty=pretty,
        ticket=ticket,
        label=lambda status: str(status).replace("_", " "),
    )
    env.globals.update(admin=ADMIN, query=query)
    return env


ENVIRONMENT = _environment()


class PageRenderer:
    """Renders a template into a masked HTMLResponse."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = spellings(secrets)

    def render(self, name: str, context: Mapping[str, Any], *, status: int = 200) -> HTMLResponse:
        text = ENVIRONMENT.get_template(name).render(**context)
        return HTMLResponse(mask(text, self._secrets), status_code=status, headers=SECURITY_HEADERS)
