"""JSON:API documents: error objects and the resources the sandbox serves."""

from __future__ import annotations

from typing import Any

from batch.sandbox.store import Order, Payment

MEDIA_TYPE = "application/vnd.api+json"

_PAYMENT_RELATIONSHIPS = ("order", "payment_gateway", "wallet", "versions")
_ORDER_RELATIONSHIPS = ("market", "customer", "line_items", "payment_method", "payment_source")


class ApiError(Exception):
    """An error answer; handlers raise it and the middleware renders it."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors

    @classmethod
    def one(
        cls,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ApiError:
        """An error answer carrying a single error object."""
        return cls(status, [error(status, code, title, detail, pointer, parameter, meta)])


def error(
    status: int,
    code: str,
    title: str,
    detail: str,
    pointer: str | None = None,
    parameter: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One JSON:API error object; `source` names the body pointer or the query parameter."""
    obj: dict[str, Any] = {"title": title, "detail": detail, "code": code, "status": str(status)}
    if pointer is not None:
        obj["source"] = {"pointer": pointer}
    elif parameter is not None:
        obj["source"] = {"parameter": parameter}
    if meta is not None:
        obj["meta"] = meta
    return obj


def _relationships(self_url: str, names: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
    rels: dict[str, Any] = {}
    for name in names:
        rel: dict[str, Any] = {
            "links": {
                "self": f"{self_url}/relationships/{name}",
                "related": f"{self_url}/{name}",
            }
        }
        if name in data:  # linkage only when the relationship was included, as JSON:API says
            rel["data"] = data[name]
        rels[name] = rel
    return rels


def payment_resource(
    payment: Payment, base: str, mode: str, *, with_order: bool = False
) -> dict[str, Any]:
    """An external_payments resource shaped like the create response in the API reference."""
    self_url = f"{base}/api/external_payments/{payment.id}"
    attrs = payment.attributes
    linkage = {"order": {"type": "orders", "id": payment.order_id}} if with_order else {}
    return {
        "id": payment.id,
        "type": "external_payments",
        "links": {"self": self_url},
        "attributes": {
            "payment_source_token": payment.token,
            "options": attrs.get("options") or {},
            "payment_instrument": {"issuer_type": "external_payment"},
            "created_at": payment.created_at,
            "updated_at": payment.created_at,
            "reference": attrs.get("reference"),
            "reference_origin": attrs.get("reference_origin"),
            "metadata": attrs.get("metadata") or {},
        },
        "relationships": _relationships(self_url, _PAYMENT_RELATIONSHIPS, linkage),
        "meta": {"mode": mode},
    }


def order_resource(
    order: Order, base: str, mode: str, *, with_payment_source: bool = False
) -> dict[str, Any]:
    """An orders resource with the attributes a payment run cares about."""
    self_url = f"{base}/api/orders/{order.id}"
    linkage: dict[str, Any] = {}
    if with_payment_source:
        linkage["payment_source"] = (
            {"type": "external_payments", "id": order.payment_source_id}
            if order.payment_source_id
            else None
        )
    return {
        "id": order.id,
        "type": "orders",
        "links": {"self": self_url},
        "attributes": {
            "number": order.id,
            "status": order.status,
            "payment_status": "unpaid",
            "created_at": order.created_at,
            "updated_at": order.created_at,
        },
        "relationships": _relationships(self_url, _ORDER_RELATIONSHIPS, linkage),
        "meta": {"mode": mode},
    }
