"""The sandbox's in-memory state: orders, payments and the request log."""

from __future__ import annotations

import csv
import io
import random
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

ORDER_STATUSES = ("draft", "pending", "editing", "placing", "placed", "approved", "cancelled")
_ID_ALPHABET = string.ascii_letters + string.digits
# Ids only need to look random and not collide; secrets.choice cost 5% of the server's CPU.
_ids = random.Random()


def new_id() -> str:
    """A Commerce Layer-looking resource id: 10 random alphanumerics."""
    return "".join(_ids.choices(_ID_ALPHABET, k=10))


def utc_timestamp() -> str:
    """Now as the API writes timestamps: ISO 8601, milliseconds, Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_seed_orders() -> dict[str, str]:
    """The packaged seed_orders.csv as {order id: status}."""
    text = resources.files("batch.sandbox").joinpath("seed_orders.csv").read_text("utf-8")
    return {row["id"]: row["status"] for row in csv.DictReader(io.StringIO(text))}


@dataclass(slots=True)
class Order:
    """An order; `payment_source_id` is the latest external payment attached to it."""

    id: str
    status: str
    created_at: str = field(default_factory=utc_timestamp)
    payment_source_id: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A created external payment; `created` is the monotonic time it was recorded."""

    id: str
    order_id: str
    token: str
    attributes: Mapping[str, Any]  # options, reference, reference_origin, metadata as sent
    created: float
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as the control endpoint and `payments_by_order` show it."""
        return {**asdict(self), "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the sandbox answered; `status` is None when the connection was dropped.

    `at` is the monotonic arrival time (when rate limits counted it); `accepted` is False
    only for requests refused by a rate limit or a 429 storm.
    """

    method: str
    path: str
    query: str
    status: int | None
    at: float
    accepted: bool


class Store:
    """Orders, payments and requests, safe to read from other threads while serving."""

    def __init__(self, orders: Mapping[str, str], *, open_orders: bool) -> None:
        for order_id, status in orders.items():
            if status not in ORDER_STATUSES:
                raise ValueError(f"order {order_id}: unknown status {status!r}")
        self._lock = threading.Lock()
        self._orders = {oid: Order(oid, status) for oid, status in orders.items()}
        self._open_orders = open_orders
        self._payments: dict[str, Payment] = {}
        self._requests: list[RequestRecord] = []
        self._foreign = {"accepted": 0, "refused": 0}

    def order(self, order_id: str) -> Order | None:
        """The order, created as pending on first sight when orders are open."""
        with self._lock:
            found = self._orders.get(order_id)
            if found is None and self._open_orders and order_id:
                found = self._orders[order_id] = Order(order_id, "pending")
            return found

    def add_payment(self, order: Order, token: str, attributes: Mapping[str, Any]) -> Payment:
        """Record a payment and make it the order's payment source."""
        with self._lock:
            payment_id = new_id()
            while payment_id in self._payments:
                payment_id = new_id()
            payment = Payment(
                id=payment_id,
                order_id=order.id,
                token=token,
                attributes=dict(attributes),
                created=time.monotonic(),
                created_at=utc_timestamp(),
            )
            self._payments[payment_id] = payment
            order.payment_source_id = payment_id
            return payment

    def payment(self, payment_id: str) -> Payment | None:
        """One payment by id."""
        with self._lock:
            return self._payments.get(payment_id)

    def payments(self, where: Callable[[Payment], bool] | None = None) -> list[Payment]:
        """Payments in creation order, optionally filtered."""
        with self._lock:
            snapshot = list(self._payments.values())
        return [p for p in snapshot if where is None or where(p)]

    def payments_by_order(self) -> dict[str, list[dict[str, Any]]]:
        """Every payment grouped by order id, so tests can count duplicates and gaps."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for payment in self.payments():
            grouped.setdefault(payment.order_id, []).append(payment.as_dict())
        return grouped

    def record(self, entry: RequestRecord) -> None:
        """Append one answered (or dropped) request to the log."""
        with self._lock:
            self._requests.append(entry)

    def count_foreign(self, accepted: bool) -> None:
        """Count one background (foreign) request; they are not in the request log."""
        with self._lock:
            self._foreign["accepted" if accepted else "refused"] += 1

    def foreign(self) -> dict[str, int]:
        """How many foreign requests the windows accepted and refused."""
        with self._lock:
            return dict(self._foreign)

    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in completion order."""
        with self._lock:
            return list(self._requests)
