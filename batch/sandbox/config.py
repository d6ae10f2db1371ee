"""Sandbox settings: rate-limit windows, faults and the server configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["class", "endpoint"]
SecondSource = Literal["repoint", "refuse"]
Mode = Literal["test", "live"]
# "external": a method on an external gateway; "stripe": a card gateway; "none": not chosen.
PaymentMethodKind = Literal["external", "stripe", "none"]
PAYMENT_METHOD_KINDS = ("external", "stripe", "none")
ORDER_STATUSES = ("draft", "pending", "editing", "placing", "placed", "approved", "cancelled")


@dataclass(frozen=True, slots=True)
class Limit:
    """A sliding window: at most `limit` accepted requests in any `seconds`.

    scope "class" counts every /api/* endpoint together (Commerce Layer's average limit);
    "endpoint" counts each method + route on its own (the burst limit).
    """

    limit: int
    seconds: float
    scope: Scope = "class"

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError(f"a limit needs a positive count and window, got {self}")
        if self.scope not in ("class", "endpoint"):
            raise ValueError(f"scope must be 'class' or 'endpoint', got {self.scope!r}")


# Commerce Layer's documented windows for POST and uncacheable GET requests.
DEFAULT_TEST_LIMITS = (Limit(100, 60.0, "class"), Limit(25, 10.0, "endpoint"))
DEFAULT_LIVE_LIMITS = (Limit(200, 60.0, "class"), Limit(50, 10.0, "endpoint"))
# /oauth/token has its own window in both environments.
DEFAULT_TOKEN_LIMIT = Limit(30, 60.0, "class")

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_LIMIT_RE = re.compile(
    r"^\s*(?P<limit>\d+)\s*/\s*(?P<num>\d+(?:\.\d+)?)?\s*(?P<unit>s|sec|m|min|h)?"
    r"\s*(?:[:@ ]\s*(?P<scope>class|endpoint))?\s*$"
)


def parse_limit(text: str) -> Limit:
    """Parse "25/10s", "100/1m", "25/s" or "25/10s:endpoint" (scope defaults to class)."""
    match = _LIMIT_RE.match(text.lower())
    if match is None or (match["num"] is None and match["unit"] is None):
        raise ValueError(f"not a rate limit: {text!r} (expected e.g. 25/10s or 100/1m:class)")
    seconds = float(match["num"] or 1) * _UNITS[match["unit"] or ""]
    scope: Scope = "endpoint" if match["scope"] == "endpoint" else "class"
    return Limit(int(match["limit"]), seconds, scope)


@dataclass(frozen=True, kw_only=True, slots=True)
class Faults:
    """Injected failures; probabilities apply to POST /api/external_payments only.

    `latency_ms` (uniform min..max) is added to every /api/* request. A time-based 429
    storm lasts `storm_seconds` at the end of every `storm_every` seconds.
    """

    p_5xx: float = 0.0
    p_drop_before: float = 0.0
    p_drop_after: float = 0.0
    p_late: float = 0.0
    late_seconds: float = 0.0
    storm_p: float = 0.0
    storm_every: float = 0.0
    storm_seconds: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("p_5xx", "p_drop_before", "p_drop_after", "p_late", "storm_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("late_seconds", "storm_every", "storm_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        low, high = self.latency_ms
        if not 0.0 <= low <= high:
            raise ValueError(f"latency_ms must be (min, max) with 0 <= min <= max, got {low, high}")


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderSeed:
    """An order as the sandbox starts with it; `number` defaults to a fresh numeric one.

    `payment_source` lists the sources the order already has, oldest first, joined by "|":
    "card" (a stripe_payments source from checkout) or "external:TOKEN" (an external
    payment made by another tool). The last is the active one; the others are orphans.
    """

    status: str = "pending"
    number: str | None = None
    payment_method: PaymentMethodKind = "external"
    payment_source: str = ""

    def __post_init__(self) -> None:
        if self.status not in ORDER_STATUSES:
            raise ValueError(f"unknown order status {self.status!r}")
        if self.payment_method not in PAYMENT_METHOD_KINDS:
            raise ValueError(f"unknown payment method {self.payment_method!r}")
        if self.number is not None and not self.number.strip():
            raise ValueError("an order number must not be blank")
        self.sources()

    def sources(self) -> list[str | None]:
        """The seeded sources, oldest first: None for a card, else an external payment token."""
        found: list[str | None] = []
        for part in filter(None, (p.strip() for p in self.payment_source.split("|"))):
            kind, _, token = part.partition(":")
            if part == "card":
                found.append(None)
            elif kind == "external" and token.strip():
                found.append(token.strip())
            else:
                raise ValueError(f"not a payment source: {part!r} (card or external:TOKEN)")
        return found


@dataclass(frozen=True, kw_only=True, slots=True)
class SandboxConfig:
    """Everything a sandbox run can vary; the defaults mimic the Commerce Layer test environment.

    `limits=None` or `()` disables the /api/* limits; `token_limit=None` the /oauth/token one.
    `orders=None` loads the packaged seed_orders.csv; otherwise it maps order ids to a status
    or an OrderSeed. `open_orders` makes every other order id (or number, when looked up)
    exist as a pending order. `second_source` decides what a payment for an order that
    already has a payment source does: "repoint" makes it the order's source and leaves the
    old one orphaned (the likely real behaviour), "refuse" answers 422.

    Reads: `ignore_filters` answers filtered lists as if unfiltered (a server that ignores a
    filter), `number_filter=False` answers 400 to filters on the order number (unconfirmed).

    Rate-limit modes, for the facts the API leaves unconfirmed: `count_rejected` logs a
    refused (429) request in every window it was checked against (the /oauth/token one
    too; a storm's 429s are checked against none); `retry_after=False`
    sends 429s without Retry-After; `ratelimit_headers=False` sends no X-Ratelimit-*;
    `foreign_rate=(n, seconds)` spends the class windows at that steady rate from a task
    inside the sandbox, as another integration on the same IP would.
    """

    mode: Mode = "test"
    limits: tuple[Limit, ...] | None = DEFAULT_TEST_LIMITS
    token_limit: Limit | None = DEFAULT_TOKEN_LIMIT
    retry_after: bool = True
    count_rejected: bool = False
    foreign_rate: tuple[int, float] | None = None
    ratelimit_headers: bool = True
    token_ttl: float = 7200.0
    open_orders: bool = False
    orders: Mapping[str, str | OrderSeed] | None = None
    second_source: SecondSource = "repoint"
    ignore_filters: bool = False
    number_filter: bool = True
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    organization: str = "sandbox"

    def __post_init__(self) -> None:
        if self.mode not in ("test", "live"):
            raise ValueError(f"mode must be 'test' or 'live', got {self.mode!r}")
        if self.second_source not in ("repoint", "refuse"):
            raise ValueError(
                f"second_source must be 'repoint' or 'refuse', got {self.second_source!r}"
            )
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        if self.foreign_rate is not None:
            count, seconds = self.foreign_rate
            if count < 1 or seconds <= 0:
                raise ValueError(
                    f"foreign_rate needs a positive count and window, got {count}/{seconds}"
                )
