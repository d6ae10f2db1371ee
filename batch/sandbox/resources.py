"""The resources the sandbox serves, as nodes a JSON:API document can include.

A node knows its type, id, attributes and relationships; a relationship resolves to its
target node lazily, so a document walks only the include paths it was asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batch.sandbox.config import PaymentMethodKind
from batch.sandbox.store import CardSource, Order, Payment, Store


@dataclass(frozen=True, slots=True)
class Node:
    """One resource; `relationships` maps every relationship name to its resolver."""

    type: str
    id: str
    attributes: Mapping[str, Any]
    relationships: Mapping[str, Callable[[], Node | None]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A payment method and its gateway, fixed per kind."""

    id: str
    name: str
    source_type: str
    gateway_type: str
    gateway_id: str
    gateway_name: str


PAYMENT_METHODS: Mapping[PaymentMethodKind, MethodSpec] = {
    "external": MethodSpec(
        "PMexternal",
        "External payment",
        "external_payments",
        "external_gateways",
        "GWexternal",
        "External gateway",
    ),
    "stripe": MethodSpec(
        "PMstripe01", "Credit card", "stripe_payments", "stripe_gateways", "GWstripe01", "Stripe"
    ),
}

PAYMENT_RELATIONSHIPS = ("order", "payment_gateway", "wallet", "versions")
ORDER_RELATIONSHIPS = ("market", "customer", "line_items", "payment_method", "payment_source")


def _no_target() -> Node | None:
    """A relationship the sandbox keeps no data for (wallet, market, ...)."""
    return None


def payment_node(payment: Payment, store: Store) -> Node:
    """An external_payments resource shaped like the create response in the API reference."""
    attrs = payment.attributes
    relationships = dict.fromkeys(PAYMENT_RELATIONSHIPS, _no_target)
    relationships["order"] = lambda: _order_or_none(store.order(payment.order_id), store)
    return Node(
        "external_payments",
        payment.id,
        {
            "payment_source_token": payment.token,
            "options": attrs.get("options") or {},
            "payment_instrument": {"issuer_type": "external_payment"},
            "created_at": payment.created_at,
            "updated_at": payment.created_at,
            "reference": attrs.get("reference"),
            "reference_origin": attrs.get("reference_origin"),
            "metadata": attrs.get("metadata") or {},
        },
        relationships,
    )


def card_node(card: CardSource, store: Store) -> Node:
    """A stripe_payments resource: the customer's card, saved at checkout."""
    return Node(
        "stripe_payments",
        card.id,
        {
            "payment_instrument": {
                "issuer_type": "card",
                "card_type": "visa",
                "card_last_digits": "4242",
            },
            "options": {},
            "created_at": card.created_at,
            "updated_at": card.created_at,
        },
        {
            "order": lambda: _order_or_none(store.order(card.order_id), store),
            "payment_gateway": lambda: gateway_node("stripe"),
        },
    )


def order_node(order: Order, store: Store) -> Node:
    """An orders resource with the attributes a payment run cares about."""
    relationships = dict.fromkeys(ORDER_RELATIONSHIPS, _no_target)
    relationships["payment_method"] = lambda: method_node(order.payment_method)
    relationships["payment_source"] = lambda: _source_node(order, store)
    return Node(
        "orders",
        order.id,
        {
            "number": order.number,
            "status": order.status,
            "payment_status": "unpaid",
            "created_at": order.created_at,
            "updated_at": order.created_at,
        },
        relationships,
    )


def method_node(kind: PaymentMethodKind) -> Node | None:
    """The payment_methods resource of a kind; None when no method is selected."""
    spec = PAYMENT_METHODS.get(kind)
    if spec is None:
        return None
    return Node(
        "payment_methods",
        spec.id,
        {"name": spec.name, "payment_source_type": spec.source_type, "currency_code": "EUR"},
        {"payment_gateway": lambda: gateway_node(kind)},
    )


def gateway_node(kind: PaymentMethodKind) -> Node | None:
    """The gateway behind a payment method kind."""
    spec = PAYMENT_METHODS.get(kind)
    if spec is None:
        return None
    return Node(spec.gateway_type, spec.gateway_id, {"name": spec.gateway_name}, {})


def _order_or_none(order: Order | None, store: Store) -> Node | None:
    return None if order is None else order_node(order, store)


def _source_node(order: Order, store: Store) -> Node | None:
    source = order.payment_source
    if source is None:
        return None
    if source.type == "external_payments":
        payment = store.payment(source.id)
        return None if payment is None else payment_node(payment, store)
    card = store.card(source.id)
    return None if card is None else card_node(card, store)


# The names sparse fieldsets may list, per type.
FIELD_NAMES: Mapping[str, frozenset[str]] = {
    "external_payments": frozenset(
        {
            "payment_source_token",
            "options",
            "payment_instrument",
            "created_at",
            "updated_at",
            "reference",
            "reference_origin",
            "metadata",
            *PAYMENT_RELATIONSHIPS,
        }
    ),
    "stripe_payments": frozenset(
        {"payment_instrument", "options", "created_at", "updated_at", "order", "payment_gateway"}
    ),
    "orders": frozenset(
        {"number", "status", "payment_status", "created_at", "updated_at", *ORDER_RELATIONSHIPS}
    ),
    "payment_methods": frozenset(
        {"name", "payment_source_type", "currency_code", "payment_gateway"}
    ),
    "external_gateways": frozenset({"name"}),
    "stripe_gateways": frozenset({"name"}),
}
