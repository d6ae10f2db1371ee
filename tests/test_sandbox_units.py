"""Unit tests of the sandbox's pieces: limit parsing, sliding windows, storms, seed data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from batch.sandbox import Faults, Limit, SandboxConfig, parse_limit
from batch.sandbox.create import CARD_NUMBER_RE
from batch.sandbox.faults import FaultPlan
from batch.sandbox.limits import SlidingWindows
from batch.sandbox.seed import load_seed_orders, read_seed_orders

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "orders.csv"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25/10s", Limit(25, 10.0, "class")),
        ("100/60s", Limit(100, 60.0, "class")),
        ("25/1s", Limit(25, 1.0, "class")),
        ("100/1m", Limit(100, 60.0, "class")),
        ("5/s", Limit(5, 1.0, "class")),
        ("2/0.5s", Limit(2, 0.5, "class")),
        ("25/10s:endpoint", Limit(25, 10.0, "endpoint")),
        ("200/60s@class", Limit(200, 60.0, "class")),
        (" 50 / 10 s endpoint ", Limit(50, 10.0, "endpoint")),
        ("1/1h", Limit(1, 3600.0, "class")),
    ],
)
def test_parse_limit(text: str, expected: Limit) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["", "25", "25/", "0/10s", "x/10s", "25/10d", "25/10s:burst"])
def test_parse_limit_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="limit"):
        parse_limit(text)


def test_windows_count_only_accepted_requests() -> None:
    windows = SlidingWindows([Limit(2, 10.0, "class")])
    assert [windows.check("GET /a", t).accepted for t in (0.0, 1.0, 2.0, 3.0)] == [
        True,
        True,
        False,
        False,
    ]
    # The window frees when the first accepted hit (t=0) leaves it, not later: the
    # refused requests at t=2 and t=3 were never counted.
    refused = windows.check("GET /a", 9.5)
    assert not refused.accepted
    assert refused.retry_after == 1  # 0.5 s rounded up
    assert windows.check("GET /a", 10.0).accepted


def test_windows_endpoint_scope_counts_each_route() -> None:
    windows = SlidingWindows([Limit(10, 60.0, "class"), Limit(1, 10.0, "endpoint")])
    assert windows.check("POST /x", 0.0).accepted
    assert not windows.check("POST /x", 1.0).accepted
    other = windows.check("GET /y", 1.0)
    assert other.accepted
    # Headers describe the class window: 2 of 10 used.
    assert other.header == Limit(10, 60.0, "class")
    assert other.remaining == 8


def test_windows_retry_after_is_the_longest_wait() -> None:
    windows = SlidingWindows([Limit(1, 60.0, "class"), Limit(1, 10.0, "endpoint")])
    windows.check("POST /x", 0.0)
    verdict = windows.check("POST /x", 5.2)
    assert not verdict.accepted
    assert verdict.retry_after == 55  # ceil(60 - 5.2)


def test_time_storm_closes_each_period() -> None:
    plan = FaultPlan(Faults(storm_every=10.0, storm_seconds=2.0), seed=1, started=100.0)
    assert plan.storm(100.0) is None
    assert plan.storm(107.9) is None
    assert plan.storm(108.5) == 2  # 1.5 s of storm left, rounded up
    assert plan.storm(119.9) == 1
    assert plan.storm(120.1) is None


def test_fault_draws_repeat_with_the_same_seed() -> None:
    def draws(seed: int) -> list[bool]:
        plan = FaultPlan(Faults(p_5xx=0.5), seed=seed, started=0.0)
        return [plan.server_error() is not None for _ in range(64)]

    assert draws(7) == draws(7)
    assert 0 < sum(draws(7)) < 64


def test_seed_rows_are_checked() -> None:
    text = "id,status,number,payment_method,payment_source\nA1,pending,1,external,card\n"
    [(order_id, seed)] = read_seed_orders(text).items()
    assert (order_id, seed.number, seed.sources()) == ("A1", "1", [None])
    for row, problem in [
        ("A1,paid,1,external,", "row 2: unknown order status 'paid'"),
        ("A1,pending,1,paypal,", "row 2: unknown payment method 'paypal'"),
        ("A1,pending,1,external,external:", "row 2: not a payment source"),
        (",pending,1,external,", "row 2: the id is blank"),
    ]:
        with pytest.raises(ValueError, match=re.escape(problem)):
            read_seed_orders("id,status,number,payment_method,payment_source\n" + row)
    # The old two-column form still works: an external method, no source.
    [old] = read_seed_orders("id,status\nB2,placed\n").values()
    assert (old.status, old.payment_method, old.sources()) == ("placed", "external", [])


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="p_5xx"):
        Faults(p_5xx=1.5)
    with pytest.raises(ValueError, match="latency_ms"):
        Faults(latency_ms=(5.0, 1.0))
    with pytest.raises(ValueError, match="second_source"):
        SandboxConfig(second_source="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "is_card"),
    [
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        ("4111111111111111", True),
        ("378282246310005", True),
        ("411111111111", False),  # 12 digits
        ("41111111111111111111", False),  # 20 digits
        ("tok_live_4111111111111111", False),
        ("4111  1111 1111 1111", False),  # a double space is no card grouping
    ],
)
def test_card_number_pattern(token: str, is_card: bool) -> None:
    assert bool(CARD_NUMBER_RE.match(token)) is is_card


def test_sample_data_matches_the_seed_orders_by_design() -> None:
    seeds = load_seed_orders()
    seed = {order_id: o.status for order_id, o in seeds.items()}
    with SAMPLE.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "Order ID",
        "Payment Source Token",
        "Reference",
        "Reference Origin",
        "Metadata",
        "Notes",
    ]
    assert 45 <= len(rows) <= 55
    ids = [row["Order ID"] for row in rows]
    assert all(len(i) == 10 and i.isalnum() for i in ids)
    assert sum(i not in seed for i in ids) == 1  # the one unknown order (404)
    assert sum(seed.get(i) == "placed" for i in ids) == 1
    assert len(ids) - len(set(ids)) == 1  # one repeated order
    tokens = [row["Payment Source Token"] for row in rows]
    assert sum(not t.strip() for t in tokens) == 1
    assert sum(bool(CARD_NUMBER_RE.match(t)) for t in tokens) == 1
    assert "4111 1111 1111 1111" in tokens
    metadata = [json.loads(row["Metadata"]) for row in rows if row["Metadata"]]
    assert metadata
    assert all(isinstance(m, dict) for m in metadata)
    # Everything else is a pending order, so the demo creates all the rest.
    assert sum(seed.get(i) == "pending" for i in ids) == len(rows) - 2
    # Every sample order can take an external payment and has no payment source yet.
    sampled = [seeds[i] for i in ids if i in seeds]
    assert {(s.payment_method, s.payment_source) for s in sampled} == {("external", "")}
    numbers = [s.number for s in seeds.values()]
    assert all(n is not None and n.isdigit() for n in numbers)
    assert len(set(numbers)) == len(numbers)
