"""The GET endpoints: external payments (with Ransack filters and pages) and orders.

Query parameters outside each endpoint's list, an include other than the one the
endpoint offers, and a page[size] above 25 (or any page value that is not a positive
integer) are answered 400 PARAM_NOT_ALLOWED with `source.parameter`. Blank filter values
are ignored, as Ransack does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from batch.sandbox.jsonapi import ApiError, order_resource, payment_resource
from batch.sandbox.state import base_url, document, sandbox_of
from batch.sandbox.store import Payment

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 25
Predicate = Callable[[Payment], bool]


def _order_id_eq(value: str) -> Predicate:
    return lambda p: p.order_id == value


def _order_id_in(value: str) -> Predicate:
    wanted = {part.strip() for part in value.split(",")}
    return lambda p: p.order_id in wanted


def _token_eq(value: str) -> Predicate:
    return lambda p: p.token == value


def _reference_eq(value: str) -> Predicate:
    return lambda p: p.attributes.get("reference") == value


# Each supported Ransack filter builds its predicate once per request.
FILTERS: dict[str, Callable[[str], Predicate]] = {
    "filter[q][order_id_eq]": _order_id_eq,
    "filter[q][order_id_in]": _order_id_in,
    "filter[q][payment_source_token_eq]": _token_eq,
    "filter[q][reference_eq]": _reference_eq,
}
_FIELDS = ("fields[external_payments]", "fields[orders]")
_LIST_PARAMS = (*FILTERS, "page[size]", "page[number]", "include", *_FIELDS)
_SHOW_PARAMS = ("include", *_FIELDS)


def _not_allowed(parameter: str, detail: str) -> ApiError:
    return ApiError.one(400, "PARAM_NOT_ALLOWED", "Param not allowed", detail, parameter=parameter)


def _params(request: web.Request, allowed: Collection[str], include: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            raise _not_allowed(key, f"{key} is not allowed.")
        params[key] = value
    if params.get("include", include) not in ("", include):
        raise _not_allowed("include", f"{params['include']!r} is not a valid include.")
    return params


def _sparse(resource: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """Apply a JSON:API sparse fieldset (fields[type]=a,b) to one resource."""
    wanted = params.get(f"fields[{resource['type']}]")
    if wanted is None:
        return resource
    names = {name.strip() for name in wanted.split(",")}
    for member in ("attributes", "relationships"):
        resource[member] = {k: v for k, v in resource[member].items() if k in names}
    return resource


def _page_value(params: dict[str, str], name: str, default: int, most: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or (most is not None and value > most):
        bound = f"between 1 and {most}" if most else "a positive integer"
        raise _not_allowed(name, f"{name} must be {bound}, got {text!r}.")
    return value


async def list_payments(request: web.Request) -> web.Response:
    """GET /api/external_payments: filtered, paginated, optionally with the orders included."""
    sandbox = sandbox_of(request)
    params = _params(request, _LIST_PARAMS, "order")
    size = _page_value(params, "page[size]", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
    number = _page_value(params, "page[number]", 1, None)
    tests = [FILTERS[k](v) for k, v in params.items() if k in FILTERS and v.strip()]
    found = sandbox.store.payments(lambda p: all(test(p) for test in tests))
    page = found[(number - 1) * size : number * size]
    with_order = params.get("include") == "order"
    base, mode = base_url(request), sandbox.config.mode
    body: dict[str, Any] = {
        "data": [
            _sparse(payment_resource(p, base, mode, with_order=with_order), params) for p in page
        ],
        "meta": {"record_count": len(found), "page_count": math.ceil(len(found) / size)},
        "links": _page_links(request, params, number, max(1, math.ceil(len(found) / size))),
    }
    if with_order:
        included = []
        for order_id in dict.fromkeys(p.order_id for p in page):
            order = sandbox.store.order(order_id)
            if order is not None:
                included.append(_sparse(order_resource(order, base, mode), params))
        body["included"] = included
    return document(200, body)


def _page_links(
    request: web.Request, params: dict[str, str], number: int, last: int
) -> dict[str, str]:
    def link(page: int) -> str:
        query = urlencode({**params, "page[number]": str(page)}, safe="[],")
        return f"{base_url(request)}{request.path}?{query}"

    links = {"first": link(1)}
    if number > 1:
        links["prev"] = link(min(number - 1, last))
    if number < last:
        links["next"] = link(number + 1)
    links["last"] = link(last)
    return links


async def show_payment(request: web.Request) -> web.Response:
    """GET /api/external_payments/{id}."""
    sandbox = sandbox_of(request)
    params = _params(request, _SHOW_PARAMS, "order")
    payment = sandbox.store.payment(request.match_info["id"])
    if payment is None:
        raise _not_found("external payment", request.match_info["id"])
    base, mode = base_url(request), sandbox.config.mode
    with_order = params.get("include") == "order"
    resource = payment_resource(payment, base, mode, with_order=with_order)
    body: dict[str, Any] = {"data": _sparse(resource, params)}
    order = sandbox.store.order(payment.order_id) if with_order else None
    if order is not None:
        body["included"] = [_sparse(order_resource(order, base, mode), params)]
    return document(200, body)


async def show_order(request: web.Request) -> web.Response:
    """GET /api/orders/{id}, optionally with its payment source included."""
    sandbox = sandbox_of(request)
    params = _params(request, _SHOW_PARAMS, "payment_source")
    order = sandbox.store.order(request.match_info["id"])
    if order is None:
        raise _not_found("order", request.match_info["id"])
    base, mode = base_url(request), sandbox.config.mode
    with_source = params.get("include") == "payment_source"
    resource = order_resource(order, base, mode, with_payment_source=with_source)
    body: dict[str, Any] = {"data": _sparse(resource, params)}
    if with_source:
        source = sandbox.store.payment(order.payment_source_id or "")
        body["included"] = (
            [] if source is None else [_sparse(payment_resource(source, base, mode), params)]
        )
    return document(200, body)


def _not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError.one(
        404, "RECORD_NOT_FOUND", "Record not found", f"The {kind} {resource_id!r} was not found."
    )
