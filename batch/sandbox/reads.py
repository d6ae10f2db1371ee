"""The GET endpoints: external payments and orders, listed (filters, sort, pages) or shown.

Query parameters outside each endpoint's list, an include path the endpoint does not
offer, a `fields[type]` for an unknown type or naming an unknown field are answered 400
PARAM_NOT_ALLOWED with `source.parameter`; filters and pages are checked in filters.py.

Modes: `ignore_filters` accepts every filter and applies none (a server that ignores a
filter answers 200 with unrelated records); `number_filter=False` makes the order number
unfilterable (400). With `open_orders`, ids and numbers named by `_eq`/`_in` filters on
orders exist as pending orders.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from batch.sandbox.documents import Fields, IncludePath, render
from batch.sandbox.filters import Getter, Query, is_filter, not_allowed, page_of
from batch.sandbox.jsonapi import ApiError
from batch.sandbox.resources import FIELD_NAMES, Node, order_node, payment_node
from batch.sandbox.state import Sandbox, base_url, document, sandbox_of
from batch.sandbox.store import Order, Payment

T = TypeVar("T")

PAYMENT_FILTERS: Mapping[str, Getter[Payment]] = {
    "id": lambda p: p.id,
    "payment_source_token": lambda p: p.token,
    "reference": lambda p: p.attributes.get("reference"),
    "reference_origin": lambda p: p.attributes.get("reference_origin"),
    "order_id": lambda p: p.order_id,
    "created_at": lambda p: p.created_at,
    "updated_at": lambda p: p.created_at,
}
ORDER_FILTERS: Mapping[str, Getter[Order]] = {
    "id": lambda o: o.id,
    "number": lambda o: o.number,
    "status": lambda o: o.status,
    "payment_status": lambda o: "unpaid",
    "created_at": lambda o: o.created_at,
    "updated_at": lambda o: o.created_at,
}
PAYMENT_INCLUDES = frozenset({("order",)})
ORDER_INCLUDES = frozenset(
    {("payment_source",), ("payment_method",), ("payment_method", "payment_gateway")}
)
_LIST_PARAMS = frozenset({"page[size]", "page[number]", "include", "sort"})
_SHOW_PARAMS = frozenset({"include"})


class ReadParams:
    """The checked query of one GET: its include paths, sparse fields and raw params."""

    def __init__(
        self, request: web.Request, includes: Collection[IncludePath], *, listing: bool
    ) -> None:
        allowed = _LIST_PARAMS if listing else _SHOW_PARAMS
        self.params: dict[str, str] = {}
        fields: dict[str, frozenset[str]] = {}
        for key, value in request.query.items():
            if key.startswith("fields["):
                fields[key[7:-1]] = _field_names(key, value)
            elif key not in allowed and not (listing and is_filter(key)):
                raise not_allowed(key, f"{key} is not allowed.")
            self.params[key] = value
        self.fields: Fields = fields
        self.includes: list[IncludePath] = []
        for part in filter(None, self.params.get("include", "").split(",")):
            path = tuple(part.split("."))
            if path not in includes:
                raise not_allowed("include", f"{part!r} is not a valid include.")
            self.includes.append(path)


def _field_names(key: str, value: str) -> frozenset[str]:
    names = FIELD_NAMES.get(key[7:-1]) if key.endswith("]") else None
    if names is None:
        raise not_allowed(key, f"{key} names no resource type.")
    wanted = frozenset(filter(None, value.split(",")))
    unknown = sorted(wanted - names)
    if unknown:
        raise not_allowed(key, f"{', '.join(unknown)} is not a field of {key[7:-1]}.")
    return wanted


def _list(
    request: web.Request,
    query: ReadParams,
    found: list[Node],
    sandbox: Sandbox,
) -> web.Response:
    page, number, pages = page_of(found, query.params)
    data, included = render(
        page, query.includes, query.fields, base_url(request), sandbox.config.mode
    )
    body: dict[str, Any] = {
        "data": data,
        "meta": {"record_count": len(found), "page_count": pages},
        "links": _page_links(request, query.params, number, max(1, pages)),
    }
    if query.includes:
        body["included"] = included
    return document(200, body)


def _show(request: web.Request, query: ReadParams, node: Node, sandbox: Sandbox) -> web.Response:
    [data], included = render(
        [node], query.includes, query.fields, base_url(request), sandbox.config.mode
    )
    body: dict[str, Any] = {"data": data}
    if query.includes:
        body["included"] = included
    return document(200, body)


def _query(sandbox: Sandbox, fields: Mapping[str, Getter[T]], params: dict[str, str]) -> Query[T]:
    if sandbox.config.ignore_filters:
        params = {k: v for k, v in params.items() if not is_filter(k)}
    return Query(fields, params)


async def list_payments(request: web.Request) -> web.Response:
    """GET /api/external_payments: every payment matching the filters, orphans included."""
    sandbox = sandbox_of(request)
    query = ReadParams(request, PAYMENT_INCLUDES, listing=True)
    found = _query(sandbox, PAYMENT_FILTERS, query.params).apply(sandbox.store.payments())
    return _list(request, query, [payment_node(p, sandbox.store) for p in found], sandbox)


async def list_orders(request: web.Request) -> web.Response:
    """GET /api/orders: orders matching the filters, with their method and active source."""
    sandbox = sandbox_of(request)
    query = ReadParams(request, ORDER_INCLUDES, listing=True)
    filters = dict(ORDER_FILTERS)
    if not sandbox.config.number_filter:
        del filters["number"]
    order_query = _query(sandbox, filters, query.params)
    _open_named_orders(sandbox, order_query.values)
    found = order_query.apply(sandbox.store.orders())
    return _list(request, query, [order_node(o, sandbox.store) for o in found], sandbox)


def _open_named_orders(sandbox: Sandbox, values: Mapping[str, str]) -> None:
    """With open orders, the ids and numbers a lookup names exist (as pending orders)."""
    if not sandbox.config.open_orders:
        return
    named: dict[str, list[str]] = {"id": [], "number": []}
    for key, value in values.items():
        field, _, predicate = key.rpartition("_")
        if field in named and predicate in ("eq", "in"):
            named[field] += value.split(",") if predicate == "in" else [value]
    for order_id in named["id"]:
        sandbox.store.order(order_id)
    sandbox.store.open_numbers(named["number"])


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
    query = ReadParams(request, PAYMENT_INCLUDES, listing=False)
    payment = sandbox.store.payment(request.match_info["id"])
    if payment is None:
        raise _not_found("external payment", request.match_info["id"])
    return _show(request, query, payment_node(payment, sandbox.store), sandbox)


async def show_order(request: web.Request) -> web.Response:
    """GET /api/orders/{id}, optionally with its payment source and method included."""
    sandbox = sandbox_of(request)
    query = ReadParams(request, ORDER_INCLUDES, listing=False)
    order = sandbox.store.order(request.match_info["id"])
    if order is None:
        raise _not_found("order", request.match_info["id"])
    return _show(request, query, order_node(order, sandbox.store), sandbox)


def _not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError.one(
        404, "RECORD_NOT_FOUND", "Record not found", f"The {kind} {resource_id!r} was not found."
    )
