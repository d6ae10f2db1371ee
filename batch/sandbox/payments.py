"""POST /api/external_payments, with the configured faults around the write."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from batch.sandbox.create import ORDER_POINTER, parse_create, token_errors
from batch.sandbox.documents import render
from batch.sandbox.jsonapi import ApiError, error
from batch.sandbox.resources import payment_node
from batch.sandbox.state import Sandbox, base_url, document, sandbox_of
from batch.sandbox.store import Order


class Dropped(Exception):
    """The handler aborted the connection on purpose; there is no response to send."""


async def create_payment(request: web.Request) -> web.Response:
    """Validate, record the payment, make it the order's active payment source, answer 201.

    An order that already has a source is re-pointed, the old source left orphaned, unless
    `second_source` is "refuse" (422).
    """
    sandbox = sandbox_of(request)
    faults = sandbox.faults
    if faults.roll(faults.faults.p_drop_before):
        # Read first: aborting with the body unread in the socket resets the connection
        # (ECONNRESET) or closes it (FIN) depending on timing; read, it is always a close.
        await request.read()
        _abort(request)
    server_error = faults.server_error()
    if server_error is not None:
        # A gateway in front of the API answers, so the body is HTML, not JSON:API.
        html = f"<html><body><h1>{server_error} Service error</h1></body></html>"
        return web.Response(status=server_error, text=html, content_type="text/html")
    new = parse_create(await request.read())
    order = _find_order(sandbox, new.order_id)
    errors = token_errors(new.token) + _order_errors(sandbox, order)
    if errors or new.token is None or order is None:
        raise ApiError(422, errors)
    payment = sandbox.store.add_payment(order, new.token, new.attributes)
    if faults.roll(faults.faults.p_drop_after):
        _abort(request)
    if faults.roll(faults.faults.p_late):
        await asyncio.sleep(faults.faults.late_seconds)
    node = payment_node(payment, sandbox.store)
    [data], _ = render([node], (), {}, base_url(request), sandbox.config.mode)
    return document(201, {"data": data})


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    raise Dropped


def _find_order(sandbox: Sandbox, order_id: str | None) -> Order | None:
    if order_id is None:
        return None
    order = sandbox.store.order(order_id)
    if order is None:
        raise ApiError.one(
            404,
            "RECORD_NOT_FOUND",
            "Record not found",
            f"The order {order_id!r} was not found.",
            pointer=ORDER_POINTER,
        )
    return order


def _order_errors(sandbox: Sandbox, order: Order | None) -> list[dict[str, Any]]:
    def invalid(title: str, detail: str, kind: str) -> dict[str, Any]:
        return error(422, "VALIDATION_ERROR", title, detail, ORDER_POINTER, meta={"error": kind})

    if order is None:
        return [invalid("can't be blank", "order - can't be blank", "blank")]
    if order.status != "pending":
        detail = f"order - is {order.status}; a payment needs a pending order"
        return [invalid("is invalid", detail, "invalid")]
    if order.payment_method != "external":
        detail = "order - needs a payment method with an external payment gateway"
        return [invalid("is invalid", detail, "invalid")]
    if order.payment_source is not None and sandbox.config.second_source == "refuse":
        detail = f"order - already has a payment source ({order.payment_source.type})"
        return [invalid("has already been taken", detail, "taken")]
    return []
