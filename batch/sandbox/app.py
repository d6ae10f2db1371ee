"""The aiohttp application: routes, and the edge every request passes through.

For /api/* the edge applies, in order: a 429 storm (POST external_payments only, not
counted), the rate-limit windows (429, counted only with count_rejected), latency
jitter, the bearer token (401), Accept (406) and Content-Type (415); then the route
(404/405) and its handler.
Every answered or dropped request is logged; /_sandbox/* control routes are not.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from batch.sandbox.auth import issue_token
from batch.sandbox.foreign import foreign_traffic
from batch.sandbox.jsonapi import MEDIA_TYPE, ApiError, error
from batch.sandbox.limits import Verdict
from batch.sandbox.payments import Dropped, create_payment
from batch.sandbox.reads import list_orders, list_payments, show_order, show_payment
from batch.sandbox.seed import parse_seed_orders
from batch.sandbox.state import SANDBOX, Sandbox, document, sandbox_of, too_many
from batch.sandbox.store import RequestRecord

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CREATE_ENDPOINT = "POST /api/external_payments"
_SEED_COLUMNS = frozenset({"id", "status", "number", "payment_method", "payment_source"})


def build_app(sandbox: Sandbox) -> web.Application:
    """The application serving one Sandbox."""
    app = web.Application(middlewares=[edge])
    app[SANDBOX] = sandbox
    app.cleanup_ctx.append(foreign_traffic)
    app.router.add_post("/oauth/token", issue_token)
    app.router.add_post("/api/external_payments", create_payment)
    app.router.add_get("/api/external_payments", list_payments, allow_head=False)
    app.router.add_get("/api/external_payments/{id}", show_payment, allow_head=False)
    app.router.add_get("/api/orders", list_orders, allow_head=False)
    app.router.add_get("/api/orders/{id}", show_order, allow_head=False)
    app.router.add_get("/_sandbox/payments", control_payments, allow_head=False)
    app.router.add_get("/_sandbox/requests", control_requests, allow_head=False)
    app.router.add_post("/_sandbox/orders", control_add_order)
    return app


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log every request and answer in JSON:API; /api/* also passes the checks above."""
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    sandbox = sandbox_of(request)
    arrival = time.monotonic()
    accepted, status = True, None
    try:
        response: web.StreamResponse
        if request.path.startswith("/api/"):
            response, accepted = await _api(request, handler, sandbox, arrival)
        else:
            response = await _rendered(request, handler)
        status = response.status
        return response
    except Dropped:
        # The transport is gone: aiohttp fails to write this and treats it as a disconnect.
        return web.Response(status=500)
    finally:
        sandbox.store.record(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=_redacted_query(request),
                status=status,
                at=arrival,
                accepted=accepted and status != 429,
            )
        )


async def _api(
    request: web.Request, handler: Handler, sandbox: Sandbox, arrival: float
) -> tuple[web.StreamResponse, bool]:
    """Answer one /api/* request; the flag says whether the rate limits accepted it."""
    endpoint = _endpoint(request)
    if endpoint == CREATE_ENDPOINT:
        storm = sandbox.faults.storm(arrival)
        if storm is not None:
            return too_many(storm, sandbox.config), False
    verdict = sandbox.limits.check(endpoint, arrival) if sandbox.limits else None
    headers = _ratelimit_headers(verdict) if sandbox.config.ratelimit_headers else {}
    response: web.StreamResponse
    if verdict is not None and not verdict.accepted:
        response = too_many(verdict.retry_after, sandbox.config)
    else:
        delay = sandbox.faults.latency()
        if delay:
            await asyncio.sleep(delay)
        try:
            _check_headers(request, sandbox)
        except ApiError as exc:
            response = document(exc.status, {"errors": exc.errors})
        else:
            response = await _rendered(request, handler)
    response.headers.update(headers)
    return response, verdict is None or verdict.accepted


async def _rendered(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, turning our errors and aiohttp's routing errors into JSON:API."""
    try:
        return await handler(request)
    except ApiError as exc:
        return document(exc.status, {"errors": exc.errors})
    except web.HTTPMethodNotAllowed:
        detail = f"{request.method} is not allowed on {request.path}."
        body = {"errors": [error(405, "METHOD_NOT_ALLOWED", "Method not allowed", detail)]}
        return document(405, body)
    except web.HTTPNotFound:
        detail = f"No route matches {request.path}."
        return document(404, {"errors": [error(404, "NOT_FOUND", "Not found", detail)]})


def _check_headers(request: web.Request, sandbox: Sandbox) -> None:
    """401 without a valid bearer token, 406 without the JSON:API Accept, 415 for bad bodies."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sandbox.tokens.valid(token.strip()):
        detail = "The access token you provided is invalid."
        raise ApiError.one(401, "INVALID_TOKEN", "Invalid token", detail)
    # JSON:API: the media type must appear without parameters; */* is not enough.
    accepts = [part.strip() for part in request.headers.get("Accept", "").split(",")]
    if MEDIA_TYPE not in accepts:
        detail = f"Requests must send 'Accept: {MEDIA_TYPE}' without media type parameters."
        raise ApiError.one(406, "NOT_ACCEPTABLE", "Not acceptable", detail)
    content_type = request.headers.get("Content-Type", "").strip()
    if request.body_exists and content_type != MEDIA_TYPE:
        detail = f"Request bodies must be sent as '{MEDIA_TYPE}' without media type parameters."
        raise ApiError.one(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type", detail)


def _endpoint(request: web.Request) -> str:
    """Method and route template: the key of an "endpoint"-scoped limit."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    return f"{request.method} {route}"


def _ratelimit_headers(verdict: Verdict | None) -> dict[str, str]:
    if verdict is None or verdict.header is None:
        return {}
    return {
        "X-Ratelimit-Limit": str(verdict.header.limit),
        "X-Ratelimit-Interval": str(math.ceil(verdict.header.seconds)),
        "X-Ratelimit-Remaining": str(verdict.remaining),
    }


def _redacted_query(request: web.Request) -> str:
    """The query string with token filter values masked, so the log never holds raw tokens."""
    pairs = [
        (key, "****" + value[-4:] if "token" in key and len(value) > 4 else value)
        for key, value in parse_qsl(request.query_string, keep_blank_values=True)
    ]
    return urlencode(pairs, safe="[],*")


# -- control routes for tests and benchmarks in another process ----------------------------


async def control_payments(request: web.Request) -> web.Response:
    """GET /_sandbox/payments: payments made through the API by order; ?seeded=1 adds
    the seeded ones."""
    store = sandbox_of(request).store
    seeded = request.query.get("seeded") in ("1", "true")
    return web.json_response({"payments_by_order": store.payments_by_order(seeded=seeded)})


async def control_add_order(request: web.Request) -> web.Response:
    """POST /_sandbox/orders: seed one order from another process, as add_order() does.

    The body is a seed_orders.csv row as JSON: id, and optionally status (default
    pending), number, payment_method and payment_source. A bad one answers 400.
    """
    try:
        row = await request.json()
        if not isinstance(row, dict) or set(row) - _SEED_COLUMNS:
            raise ValueError(f"an object with keys among {sorted(_SEED_COLUMNS)}")
        texts = {k: None if v is None else str(v) for k, v in row.items()}
        [(order_id, seed)] = parse_seed_orders([{"status": "pending", **texts}]).items()
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    order = sandbox_of(request).store.seed_order(order_id, seed)
    source = order.payment_source
    body = {"id": order.id, "number": order.number, "payment_source": source and source.as_dict()}
    return web.json_response(body, status=201)


async def control_requests(request: web.Request) -> web.Response:
    """GET /_sandbox/requests: counts by status, foreign traffic, the log unless ?summary=1."""
    store = sandbox_of(request).store
    records = store.requests()
    body: dict[str, object] = {
        "foreign": store.foreign(),
        "count": len(records),
        "accepted": sum(r.accepted for r in records),
        "by_status": {str(k): v for k, v in Counter(r.status for r in records).items()},
    }
    if request.query.get("summary") not in ("1", "true"):
        body["requests"] = [asdict(r) for r in records]
    return web.json_response(body)
