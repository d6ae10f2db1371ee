"""The sandbox's in-memory state: orders, their payment sources, and the request log."""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from batch.sandbox.config import OrderSeed, PaymentMethodKind

_ID_ALPHABET = string.ascii_letters + string.digits
# Ids only need to look random and not collide; secrets.choice cost 5% of the server's CPU.
_ids = random.Random()
# Numbers given to orders without one (open orders, add_order) start here.
FIRST_FREE_NUMBER = 90001


def new_id() -> str:
    """A Commerce Layer-looking resource id: 10 random alphanumerics."""
    return "".join(_ids.choices(_ID_ALPHABET, k=10))


def utc_timestamp() -> str:
    """Now as the API writes timestamps: ISO 8601, milliseconds, Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Linkage:
    """A JSON:API resource identifier: what a to-one relationship points at."""

    type: str
    id: str

    def as_dict(self) -> dict[str, str]:
        """The `data` member of a relationship."""
        return {"type": self.type, "id": self.id}


@dataclass(slots=True)
class Order:
    """An order; `payment_source` is the active source (the newest one attached)."""

    id: str
    number: str
    status: str
    payment_method: PaymentMethodKind = "external"
    created_at: str = field(default_factory=utc_timestamp)
    payment_source: Linkage | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """An external payment; `created` is the monotonic time it was recorded.

    `seeded` marks payments the sandbox started with (made by "another tool").
    """

    id: str
    order_id: str
    token: str
    attributes: Mapping[str, Any]  # options, reference, reference_origin, metadata as sent
    created: float
    created_at: str
    seeded: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as the control endpoint and `payments_by_order` show it."""
        return {**asdict(self), "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class CardSource:
    """A card payment source from checkout (a stripe_payments resource)."""

    id: str
    order_id: str
    created_at: str = field(default_factory=utc_timestamp)


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

    def __init__(self, orders: Mapping[str, OrderSeed], *, open_orders: bool) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._open_orders = open_orders
        self._payments: dict[str, Payment] = {}
        self._cards: dict[str, CardSource] = {}
        self._requests: list[RequestRecord] = []
        self._foreign = {"accepted": 0, "refused": 0}
        self._numbers: set[str] = set()  # every order number in use
        self._next_number = FIRST_FREE_NUMBER
        for order_id, seed in orders.items():
            self.seed_order(order_id, seed)

    def seed_order(self, order_id: str, seed: OrderSeed) -> Order:
        """Add (or replace) an order with its seeded payment sources."""
        with self._lock:
            number = seed.number or self._free_number()
            order = self._orders[order_id] = Order(order_id, number, seed.status)
            order.payment_method = seed.payment_method
            self._numbers.add(number)
        for token in seed.sources():
            if token is None:
                self._add_card(order)
            else:
                self.add_payment(order, token, {}, seeded=True)
        return order

    def add_order(
        self,
        order_id: str,
        *,
        number: str | None = None,
        status: str = "pending",
        payment_method: PaymentMethodKind = "external",
        payment_source: str = "",
    ) -> Order:
        """Seed one order (for tests); see OrderSeed for `payment_source`."""
        seed = OrderSeed(
            status=status,
            number=number,
            payment_method=payment_method,
            payment_source=payment_source,
        )
        return self.seed_order(order_id, seed)

    def _free_number(self) -> str:
        """The next number not in use, marked as used; call with the lock held."""
        while str(self._next_number) in self._numbers:
            self._next_number += 1
        number = str(self._next_number)
        self._numbers.add(number)
        return number

    def order(self, order_id: str) -> Order | None:
        """The order, created as pending on first sight when orders are open."""
        with self._lock:
            found = self._orders.get(order_id)
            if found is None and self._open_orders and order_id:
                found = self._orders[order_id] = Order(order_id, self._free_number(), "pending")
            return found

    def orders(self, where: Callable[[Order], bool] | None = None) -> list[Order]:
        """Orders in creation order, optionally filtered."""
        with self._lock:
            snapshot = list(self._orders.values())
        return [o for o in snapshot if where is None or where(o)]

    def open_numbers(self, numbers: Collection[str]) -> None:
        """With open orders, make each unknown number a pending order with a fresh id."""
        if not self._open_orders:
            return
        with self._lock:
            for number in numbers:
                if number and number not in self._numbers:
                    order_id = new_id()
                    while order_id in self._orders:
                        order_id = new_id()
                    self._orders[order_id] = Order(order_id, number, "pending")
                    self._numbers.add(number)

    def add_payment(
        self, order: Order, token: str, attributes: Mapping[str, Any], *, seeded: bool = False
    ) -> Payment:
        """Record an external payment and make it the order's active payment source."""
        with self._lock:
            payment_id = self._fresh_id()
            payment = Payment(
                id=payment_id,
                order_id=order.id,
                token=token,
                attributes=dict(attributes),
                created=time.monotonic(),
                created_at=utc_timestamp(),
                seeded=seeded,
            )
            self._payments[payment_id] = payment
            order.payment_source = Linkage("external_payments", payment_id)
            return payment

    def _add_card(self, order: Order) -> CardSource:
        with self._lock:
            card = CardSource(self._fresh_id(), order.id)
            self._cards[card.id] = card
            order.payment_source = Linkage("stripe_payments", card.id)
            return card

    def _fresh_id(self) -> str:
        resource_id = new_id()
        while resource_id in self._payments or resource_id in self._cards:
            resource_id = new_id()
        return resource_id

    def payment(self, payment_id: str) -> Payment | None:
        """One external payment by id."""
        with self._lock:
            return self._payments.get(payment_id)

    def card(self, card_id: str) -> CardSource | None:
        """One card source by id."""
        with self._lock:
            return self._cards.get(card_id)

    def payments(self, where: Callable[[Payment], bool] | None = None) -> list[Payment]:
        """External payments in creation order, optionally filtered."""
        with self._lock:
            snapshot = list(self._payments.values())
        return [p for p in snapshot if where is None or where(p)]

    def payments_of(self, order_id: str) -> list[Payment]:
        """Every external payment of one order, orphans included, oldest first."""
        return self.payments(lambda p: p.order_id == order_id)

    def payments_by_order(self, *, seeded: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Payments created through the API (and the seeded ones if asked), by order id,
        so tests can count duplicates and gaps."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for payment in self.payments(lambda p: seeded or not p.seeded):
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
