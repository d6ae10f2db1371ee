"""The state one sandbox application serves, and the response helpers its handlers share."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from batch.sandbox.config import OrderSeed, SandboxConfig
from batch.sandbox.faults import FaultPlan
from batch.sandbox.jsonapi import MEDIA_TYPE, error
from batch.sandbox.limits import SlidingWindows
from batch.sandbox.seed import load_seed_orders
from batch.sandbox.store import Store
from batch.sandbox.tokens import TokenIssuer


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Configuration plus the live parts: store, limiters, fault RNG and token issuer."""

    config: SandboxConfig
    store: Store
    limits: SlidingWindows | None
    token_limits: SlidingWindows | None
    faults: FaultPlan
    tokens: TokenIssuer


SANDBOX = web.AppKey("sandbox", Sandbox)


def new_sandbox(config: SandboxConfig) -> Sandbox:
    """Fresh state for one server run."""
    orders = load_seed_orders() if config.orders is None else seeds(config.orders)
    counted = config.count_rejected
    return Sandbox(
        config=config,
        store=Store(orders, open_orders=config.open_orders),
        limits=SlidingWindows(config.limits, count_rejected=counted) if config.limits else None,
        token_limits=(
            SlidingWindows([config.token_limit], count_rejected=counted)
            if config.token_limit
            else None
        ),
        faults=FaultPlan(config.faults, config.seed, time.monotonic()),
        tokens=TokenIssuer(
            organization=config.organization, test=config.mode == "test", ttl=config.token_ttl
        ),
    )


def seeds(orders: Mapping[str, str | OrderSeed]) -> dict[str, OrderSeed]:
    """Configured orders as seeds; a bare status means an external method and no source."""
    return {
        order_id: seed if isinstance(seed, OrderSeed) else OrderSeed(status=seed)
        for order_id, seed in orders.items()
    }


def sandbox_of(request: web.Request) -> Sandbox:
    """The Sandbox behind the application serving this request."""
    return request.app[SANDBOX]


def base_url(request: web.Request) -> str:
    """Scheme and host as the client addressed us, for resource links."""
    return f"{request.scheme}://{request.host}"


def document(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON:API response."""
    return web.Response(
        # bytes, not text: aiohttp would add "; charset=utf-8", which JSON:API forbids.
        status=status,
        body=json.dumps(body).encode(),
        content_type=MEDIA_TYPE,
        headers=headers,
    )


def too_many(retry_after: int, config: SandboxConfig) -> web.Response:
    """The 429 answer; Retry-After only when configured, as the real API's is unconfirmed."""
    headers = {"Retry-After": str(retry_after)} if config.retry_after else None
    detail = "You have exceeded the rate limit; retry later."
    body = {"errors": [error(429, "TOO_MANY_REQUESTS", "Too many requests", detail)]}
    return document(429, body, headers)
