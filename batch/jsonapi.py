"""Reading Commerce Layer's JSON:API documents into what the policy needs; no HTTP here.

Every function takes the decoded body (anything `json` produced, or None) and never
trusts its shape: a missing or odd field is treated as absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from batch.policy import OrderView, Source
from batch.rows import token_hash

DETAIL_LIMIT = 500


def clip(text: str) -> str:
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def payment_id_of(doc: Any) -> str:
    """The created external payment's ID, or "" when the body does not show one."""
    data = _dict(_dict(doc).get("data"))
    value = data.get("id")
    if isinstance(value, str) and value and data.get("type") == "external_payments":
        return value
    return ""


def error_of(status: int, text: str, doc: Any) -> tuple[str, str, str]:
    """The first error's code and pointer, and every error's detail; non-JSON is quoted."""
    errors = _dict(doc).get("errors")
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        code = str(errors[0].get("code") or f"HTTP_{status}")
        pointer = str(_dict(errors[0].get("source")).get("pointer") or "")
        details = []
        for error in errors:
            detail = str(error.get("detail") or error.get("title") or "")
            where = _dict(error.get("source")).get("pointer")
            details.append(f"{detail} ({where})" if where else detail)
        return code, clip("; ".join(d for d in details if d)), pointer
    if 200 <= status < 300:
        return "", "", ""
    plain = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return f"HTTP_{status}", clip(f"unexpected answer: {plain or '(empty body)'}"), ""


def page_count(doc: dict[str, Any], page: int, size: int) -> int:
    """Pages to read: meta.page_count, else record_count / page size, else follow links.next."""
    meta = _dict(doc.get("meta"))
    try:
        if meta.get("page_count") is not None:
            return int(meta["page_count"])
        if meta.get("record_count") is not None:
            return max(1, -(-int(meta["record_count"]) // size))
    except (TypeError, ValueError):
        pass
    return page + 1 if _dict(doc.get("links")).get("next") else page


def _linkage(resource: dict[str, Any], name: str) -> tuple[str, str] | None:
    data = _dict(_dict(_dict(resource.get("relationships")).get(name)).get("data"))
    if isinstance(data.get("type"), str) and isinstance(data.get("id"), str):
        return data["type"], data["id"]
    return None


def found_payment(item: Any, *, order_id: str | None = None) -> tuple[str, str, str] | None:
    """(payment ID, order ID, token hash) from the linkage or the one order asked for."""
    resource = _dict(item)
    payment_id = resource.get("id")
    if not isinstance(payment_id, str) or not payment_id:
        return None
    token = str(_dict(resource.get("attributes")).get("payment_source_token") or "")
    owner = _linkage(resource, "order")
    if owner is None:
        if order_id is None:
            return None
        return payment_id, order_id, token_hash(token)
    return payment_id, owner[1], token_hash(token)


def _is_external(method: dict[str, Any]) -> bool:
    """A payment method whose source is an external payment, through an external gateway."""
    if _dict(method.get("attributes")).get("payment_source_type") == "external_payments":
        return True
    gateway = _linkage(method, "payment_gateway")
    return gateway is not None and gateway[0] == "external_gateways"


def order_views_of(docs: Sequence[Any], by: str, wanted: Sequence[str]) -> dict[str, OrderView]:
    """One view per asked key ("id" or "number"); keys the server did not return are not found.

    A record whose ID (or number) was not asked for is dropped; a number that two orders
    carry is not found, and `ambiguous`.
    """
    asked = set(wanted)
    included: dict[tuple[str, str], dict[str, Any]] = {}
    orders: list[dict[str, Any]] = []
    for doc in docs:
        for item in _dict(doc).get("included") or []:
            res = _dict(item)
            if isinstance(res.get("type"), str) and isinstance(res.get("id"), str):
                included[(res["type"], res["id"])] = res
        orders += [_dict(item) for item in _dict(doc).get("data") or []]
    views: dict[str, OrderView] = {}
    seen: dict[str, int] = {}
    for order in orders:
        if order.get("type") not in (None, "orders") or not isinstance(order.get("id"), str):
            continue
        attrs = _dict(order.get("attributes"))
        number = str(attrs.get("number") or "")
        key = order["id"] if by == "id" else number
        if key not in asked:
            continue
        seen[key] = seen.get(key, 0) + 1
        views[key] = _view(order, attrs, number, included)
    for key in wanted:
        if key not in views:
            views[key] = OrderView(order_id=key if by == "id" else "", found=False, number=key)
        elif seen.get(key, 0) > 1:
            views[key] = OrderView(order_id="", found=False, number=key, ambiguous=True)
    return views


def _view(
    order: dict[str, Any],
    attrs: dict[str, Any],
    number: str,
    included: dict[tuple[str, str], dict[str, Any]],
) -> OrderView:
    method_link = _linkage(order, "payment_method")
    method = included.get(method_link, {}) if method_link else {}
    source_link = _linkage(order, "payment_source")
    active = None
    if source_link is not None:
        source = included.get(source_link, {})
        token = _dict(source.get("attributes")).get("payment_source_token")
        active = Source(source_link[0], source_link[1], token_hash(token) if token else "")
    return OrderView(
        order_id=order["id"],
        found=True,
        status=str(attrs.get("status") or ""),
        number=number,
        external_gateway=bool(method) and _is_external(method),
        active=active,
    )
