"""Checking a create-external-payment document as strictly as the real API.

Choices where the API reference is silent, documented for client authors:
- a body that is not JSON, or a member with the wrong JSON type (e.g. a number as the
  token, a string as metadata) → 400 INVALID_DATA_FORMAT with a pointer to the member;
- a `data.type` other than external_payments, or an order linkage type other than orders
  → 409 TYPE_MISMATCH;
- an unknown member of `data`, `attributes` or `relationships`, or a client-chosen `id`
  → 400 PARAM_NOT_ALLOWED;
- a missing or blank token, a card-number token, a missing order relationship, an order
  not `pending` (or one that already has a payment source, when configured) → 422
  VALIDATION_ERROR, all such errors reported together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batch.sandbox.jsonapi import ApiError, error

# 13-19 digits, optionally grouped with spaces or dashes: what a card number looks like.
CARD_NUMBER_RE = re.compile(r"^\d(?:[ -]?\d){12,18}$")

_DATA_MEMBERS = frozenset({"type", "attributes", "relationships"})
_ATTRIBUTE_TYPES: Mapping[str, type] = {
    "payment_source_token": str,
    "options": dict,
    "reference": str,
    "reference_origin": str,
    "metadata": dict,
}
_TYPE_NAMES: Mapping[type, str] = {str: "a string", dict: "an object"}
TOKEN_POINTER = "/data/attributes/payment_source_token"
ORDER_POINTER = "/data/relationships/order"


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A structurally valid create request; business rules are checked against the store."""

    order_id: str | None  # None when the order relationship is missing (a 422, not a 400)
    token: str | None
    attributes: Mapping[str, Any]  # the optional attributes that were sent, non-null


def _bad_format(pointer: str, detail: str) -> ApiError:
    return ApiError.one(400, "INVALID_DATA_FORMAT", "Invalid data format", detail, pointer=pointer)


def _not_allowed(pointer: str, name: str) -> ApiError:
    return ApiError.one(
        400, "PARAM_NOT_ALLOWED", "Param not allowed", f"{name} is not allowed.", pointer=pointer
    )


def _object(value: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_format(pointer, f"{pointer or 'The document'} must be an object.")
    return value


def parse_create(body: bytes) -> NewPayment:
    """Parse the POST body, raising ApiError for anything the API would refuse as malformed."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad_format("", "The request body is not valid JSON.") from None
    data = _object(_object(document, "").get("data"), "/data")
    for name in data:
        if name not in _DATA_MEMBERS:
            raise _not_allowed(f"/data/{name}", name)
    if data.get("type") != "external_payments":
        raise ApiError.one(
            409,
            "TYPE_MISMATCH",
            "Type mismatch",
            f"{data.get('type')!r} is not a valid resource type for this endpoint.",
            pointer="/data/type",
        )
    attributes = _object(data.get("attributes", {}), "/data/attributes")
    sent: dict[str, Any] = {}
    for name, value in attributes.items():
        pointer = f"/data/attributes/{name}"
        expected = _ATTRIBUTE_TYPES.get(name)
        if expected is None:
            raise _not_allowed(pointer, name)
        if value is not None and not isinstance(value, expected):
            raise _bad_format(pointer, f"{name} must be {_TYPE_NAMES[expected]}.")
        if value is not None:
            sent[name] = value
    token = sent.pop("payment_source_token", None)
    return NewPayment(_order_id(data), token, sent)


def _order_id(data: Mapping[str, Any]) -> str | None:
    relationships = _object(data.get("relationships", {}), "/data/relationships")
    for name in relationships:
        if name != "order":
            raise _not_allowed(f"/data/relationships/{name}", name)
    if "order" not in relationships:
        return None
    order = _object(relationships["order"], ORDER_POINTER)
    linkage = _object(order.get("data"), ORDER_POINTER + "/data")
    if linkage.get("type") != "orders":
        raise ApiError.one(
            409,
            "TYPE_MISMATCH",
            "Type mismatch",
            "The order relationship must link a resource of type orders.",
            pointer=ORDER_POINTER + "/data/type",
        )
    order_id = linkage.get("id")
    if not isinstance(order_id, str) or not order_id.strip():
        raise _bad_format(ORDER_POINTER + "/data/id", "The order id must be a non-blank string.")
    return order_id


def token_errors(token: str | None) -> list[dict[str, Any]]:
    """422 errors for a blank or card-number-looking payment_source_token."""
    if token is None or not token.strip():
        return [
            error(
                422,
                "VALIDATION_ERROR",
                "can't be blank",
                "payment_source_token - can't be blank",
                TOKEN_POINTER,
                meta={"error": "blank"},
            )
        ]
    if CARD_NUMBER_RE.match(token.strip()):
        return [
            error(
                422,
                "VALIDATION_ERROR",
                "is invalid",
                "payment_source_token - credit card numbers are not accepted",
                TOKEN_POINTER,
                meta={"error": "invalid"},
            )
        ]
    return []
