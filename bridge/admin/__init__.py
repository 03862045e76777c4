"""/admin: the operator's surface (DESIGN §4.1): the JSON API (api.py) behind the bearer
token, and the HTML pages (pages/) behind a login with the same token.

Mounted only when BRIDGE_ADMIN_TOKEN is set: without it every /admin path is a plain 404.
"""

from __future__ import annotations

from starlette.routing import Mount

from bridge.admin.api import api_routes
from bridge.admin.auth import AdminAuth
from bridge.admin.context import AdminContext
from bridge.admin.pages.routes import page_routes

__all__ = ["AdminAuth", "AdminContext", "admin_mount"]


def admin_mount(ctx: AdminContext) -> Mount:
    return Mount("/admin", routes=[*api_routes(ctx), *page_routes(ctx)])
