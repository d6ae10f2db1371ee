"""Sliding windows and their schedule math: parsing, defaults, the greedy schedule, sorted logs."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from batch.errors import UsageError

# (limit, window length including the pad, sorted send times) – one enforced window.
Rule = tuple[int, float, Sequence[float]]

# Latency samples kept for the spread: recent enough to follow the network, enough to be fair.
LATENCY_SAMPLES = 256


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` requests in any `seconds`."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"a window needs a positive limit and length, got {self}")

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"


_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_WINDOW_RE = re.compile(
    r"^\s*(?P<limit>\d+)\s*/\s*(?P<num>\d+(?:\.\d+)?)?\s*(?P<unit>ms|sec|s|min|m|h)\s*$"
)


def parse_window(text: str) -> Window:
    """Parse "50/10s", "200/1m", "2/500ms", "25/s" (unit required: ms, s, m or h)."""
    match = _WINDOW_RE.match(text.lower())
    if match is None:
        raise UsageError(f"not a rate limit: {text!r} (expected e.g. 50/10s, 200/1m or 2/500ms)")
    limit = int(match["limit"])
    seconds = float(match["num"] or 1) * _UNITS[match["unit"]]
    if limit < 1 or seconds <= 0:
        raise UsageError(f"not a rate limit: {text!r} (count and length must be positive)")
    return Window(limit, seconds)


_DEFAULTS = {
    "test": (Window(100, 60.0), Window(25, 10.0)),
    "live": (Window(200, 60.0), Window(50, 10.0)),
}


def default_windows(environment: str | None) -> tuple[Window, ...]:
    """Commerce Layer's write-class windows for "test" or "live"; anything else is test."""
    return _DEFAULTS.get((environment or "").strip().lower(), _DEFAULTS["test"])


def earliest(rules: Sequence[Rule], start: float) -> float:
    """The earliest time >= start at which every (limit, span, sorted sends) rule has room."""
    at = start
    for limit, span, sends in rules:
        if len(sends) >= limit:
            # Once the limit-th most recent send has left the window, at most limit-1 remain.
            at = max(at, sends[-limit] + span)
    return at


def schedule(rules: Sequence[Rule], n: int, start: float) -> list[float]:
    """Greedy earliest send times of n more requests, given each rule's past sends."""
    # Only the last `limit` sends of a log can hold a request back.
    logs = [(limit, span, list(sends[-limit:])) for limit, span, sends in rules]
    times: list[float] = []
    for _ in range(n):
        at = earliest(logs, start)
        for _, _, sends in logs:
            sends.append(at)
        times.append(at)
    return times


def greedy_schedule(windows: Sequence[Window], n: int, start: float = 0.0) -> list[float]:
    """The earliest possible send times of n requests under `windows` (optimal for sliding logs)."""
    return schedule([(w.limit, w.seconds, ()) for w in windows], n, start)


def implied_limit(windows: Sequence[Window], seconds: float) -> float:
    """The most requests `windows` can let through in any span of `seconds`."""
    return min((w.limit * math.ceil(seconds / w.seconds) for w in windows), default=math.inf)


def between(log: Sequence[float], low: float, high: float) -> int:
    """How many entries of a sorted log lie in the open interval (low, high)."""
    return max(0, bisect_left(log, high) - bisect_right(log, low))


def inside(log: Sequence[float], low: float, high: float) -> int:
    """How many entries of a sorted log lie in the half-open interval (low, high]."""
    return max(0, bisect_right(log, high) - bisect_right(log, low))


class Latencies:
    """The last LATENCY_SAMPLES send->response times, with their spread in O(log n)."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        if len(self._recent) == LATENCY_SAMPLES:
            old = self._recent.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        insort(self._sorted, seconds)

    @property
    def spread(self) -> float:
        return self._sorted[-1] - self._sorted[0] if self._sorted else 0.0

    @property
    def longest(self) -> float:
        return self._sorted[-1] if self._sorted else 0.0
