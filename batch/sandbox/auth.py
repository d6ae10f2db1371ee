"""POST /oauth/token: the client-credentials grant."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from aiohttp import web

from batch.sandbox.jsonapi import ApiError
from batch.sandbox.state import sandbox_of, too_many


async def issue_token(request: web.Request) -> web.Response:
    """Issue a bearer token for the sandbox's credentials; the body is JSON or form-encoded."""
    sandbox = sandbox_of(request)
    config = sandbox.config
    if sandbox.token_limits is not None:
        verdict = sandbox.token_limits.check("token", time.monotonic())
        if not verdict.accepted:
            return too_many(verdict.retry_after, config)
    params = await _params(request)
    if params.get("grant_type") != "client_credentials":
        raise ApiError.one(
            400,
            "UNSUPPORTED_GRANT_TYPE",
            "Unsupported grant type",
            "grant_type must be client_credentials.",
        )
    client_id = str(params.get("client_id", ""))
    client_secret = str(params.get("client_secret", ""))
    # Compare both in constant time and always both, so timing says nothing.
    good_id = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    good_secret = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
    if not (good_id and good_secret):
        raise ApiError.one(401, "UNAUTHORIZED", "Unauthorized", "Client authentication failed.")
    scope = params.get("scope")
    scope_text = scope if isinstance(scope, str) and scope.strip() else "market:all"
    body = sandbox.tokens.issue(client_id, scope_text)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(await request.post())
    try:
        params = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        params = None
    if not isinstance(params, dict):
        raise ApiError.one(
            400, "INVALID_REQUEST", "Invalid request", "The body must be a JSON object."
        )
    return params
