"""Who may use the page: the holder of the access token, from this machine, from this page.

    access token   random, printed in the URL as Jupyter does; its first use sets an
                   HttpOnly SameSite=Strict cookie, and the page drops it from the address
    Host header    127.0.0.1:PORT or localhost:PORT only, so a rebound DNS name is refused
    Origin         a POST from any other origin is refused (cross-site form posts)
    CSRF token     every POST carries it (form field or X-CSRF-Token header)

Every refusal is 403 with one plain line; nothing here says which check failed to a
caller who has no token.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refused(text: str) -> web.Response:
    return web.Response(status=403, text=f"403 forbidden: {text}\n")


@dataclass(kw_only=True)
class Guard:
    """The secrets of one server; `port` is known once it listens."""

    port: int = 0
    access_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    @property
    def cookie(self) -> str:
        """Named after the port: browsers share cookies across the ports of one host."""
        return f"paybatch_access_{self.port}"

    @property
    def url(self) -> str:
        """The address to open: it carries the access token."""
        return f"http://127.0.0.1:{self.port}/?token={self.access_token}"

    def _has(self, given: str | None, secret: str) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), secret.encode())

    async def csrf_ok(self, request: web.Request) -> bool:
        if self._has(request.headers.get(CSRF_HEADER), self.csrf_token):
            return True
        # A multipart upload is checked by its handler, which streams the body.
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            value = form.get(CSRF_FIELD)
            return isinstance(value, str) and self._has(value, self.csrf_token)
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Host", "") not in self.hosts:
            return _refused("this page answers on 127.0.0.1 only")
        token = request.query.get("token")
        if token is not None and request.method in SAFE_METHODS:
            if not self._has(token, self.access_token):
                return _refused("wrong access token; use the address paybatch serve printed")
            # Keep the token out of the address bar and history; the cookie carries it.
            welcome = web.Response(status=303, headers={"Location": request.path})
            welcome.set_cookie(
                self.cookie, self.access_token, httponly=True, samesite="Strict", path="/"
            )
            return welcome
        if not self._has(request.cookies.get(self.cookie), self.access_token):
            return _refused("no access token; open the address paybatch serve printed")
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and origin not in {f"http://{h}" for h in self.hosts}:
                return _refused("a request from another site")
            if not request.content_type.startswith("multipart/") and not await self.csrf_ok(
                request
            ):
                return _refused("the form is stale or forged (CSRF token); reload the page")
        response = await handler(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        )
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
