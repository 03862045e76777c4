"""Who may use /admin: the bearer token (the JSON API), or a session cookie that a login with
that token sets (the HTML pages), and the CSRF token every changing form carries.

All comparisons are constant-time. The cookie holds when it was issued, a random nonce (so
each login is its own session, with its own CSRF token) and an HMAC of both under the admin
token: no server-side sessions, and changing the token logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tb_admin"
SESSION_SECONDS = 12 * 3600


class AdminAuth:
    def __init__(self, token: str, *, clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self._key = token.encode()
        self._clock = clock

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._key)

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(given.strip())

    # -- the pages' session ------------------------------------------------------------------

    def session_value(self) -> str:
        issued = f"{int(self._clock())}.{secrets.token_hex(8)}"
        return f"{issued}.{self._sign('session', issued)}"

    def session_ok(self, request: Request) -> bool:
        issued, _, signature = request.cookies.get(COOKIE, "").rpartition(".")
        stamp = issued.partition(".")[0]
        if not stamp.isdigit() or not hmac.compare_digest(signature, self._sign("session", issued)):
            return False
        return 0 <= self._clock() - int(stamp) < SESSION_SECONDS

    def start_session(self, response: Response, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self.session_value(),
            max_age=SESSION_SECONDS,
            path="/admin",
            secure=secure,
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/admin")

    def csrf_token(self, request: Request) -> str:
        """The token a form must send back: bound to this session's cookie."""
        return self._sign("csrf", request.cookies.get(COOKIE, ""))

    def csrf_ok(self, request: Request, given: str) -> bool:
        return self.session_ok(request) and hmac.compare_digest(given, self.csrf_token(request))
