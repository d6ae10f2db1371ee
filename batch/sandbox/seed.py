"""Seed orders from CSV: the packaged seed_orders.csv, or a file given to the sandbox.

Columns: `id` and `status` (required), `number`, `payment_method` (external, stripe or
none; default external) and `payment_source` (see OrderSeed: "", "card", "external:TOKEN",
several joined by "|").

The packaged file holds the orders sample_data/orders.csv uses, all with an external
payment method and no payment source, and these orders for the server-check cases:

| id | number | status | payment method | payment sources (oldest first) |
|---|---|---|---|---|
| CardChk001 | 24101 | pending | stripe | a card from checkout |
| CardExt001 | 24102 | pending | external | a card from checkout (method switched since) |
| ExtOther01 | 24103 | pending | external | external payment `ext_seeded_other_0001` |
| ExtTwice01 | 24104 | pending | external | `ext_seeded_first_0001`, then `ext_seeded_second_0001` |
| StripeNo01 | 24105 | pending | stripe | none |
| NoMethod01 | 24106 | pending | none | none |
| Cancel0001 | 24107 | cancelled | external | none |
| Placed0001 | 24108 | placed | external | external payment `ext_seeded_placed_0001` |
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from importlib import resources

from batch.sandbox.config import PAYMENT_METHOD_KINDS, OrderSeed, PaymentMethodKind


def parse_seed_orders(rows: Iterable[Mapping[str, str | None]]) -> dict[str, OrderSeed]:
    """Seeds from CSV rows; a ValueError names the row (header is row 1) and the problem."""
    seeds: dict[str, OrderSeed] = {}
    for line, row in enumerate(rows, start=2):
        order_id = (row.get("id") or "").strip()
        try:
            if not order_id:
                raise ValueError("the id is blank")
            method = (row.get("payment_method") or "external").strip()
            if method not in PAYMENT_METHOD_KINDS:
                raise ValueError(f"unknown payment method {method!r}")
            kind: PaymentMethodKind = method  # type: ignore[assignment]
            seeds[order_id] = OrderSeed(
                status=(row.get("status") or "").strip(),
                number=(row.get("number") or "").strip() or None,
                payment_method=kind,
                payment_source=row.get("payment_source") or "",
            )
        except ValueError as exc:
            raise ValueError(f"seed orders, row {line}: {exc}") from None
    return seeds


def read_seed_orders(text: str) -> dict[str, OrderSeed]:
    """Seeds from CSV text with a header row."""
    return parse_seed_orders(csv.DictReader(io.StringIO(text)))


def load_seed_orders() -> dict[str, OrderSeed]:
    """The packaged seed_orders.csv."""
    text = resources.files("batch.sandbox").joinpath("seed_orders.csv").read_text("utf-8")
    return read_seed_orders(text)
