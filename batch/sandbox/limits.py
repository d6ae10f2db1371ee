"""Sliding-window rate limiting; refused requests count only when configured to."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from batch.sandbox.config import Limit


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one check; `header` describes the window shown in X-Ratelimit-*."""

    accepted: bool
    retry_after: int  # whole seconds until every exceeded window frees a slot; 0 if accepted
    header: Limit | None
    remaining: int


class SlidingWindows:
    """All configured windows; `check` accepts a request only if every window has room.

    With `count_rejected`, a refused request is logged in every window it was checked
    against, so a client that keeps knocking keeps its windows full (the real API's rule
    is unconfirmed). Not thread-safe: the sandbox calls it from its single event loop.
    """

    def __init__(self, limits: Sequence[Limit], *, count_rejected: bool = False) -> None:
        self._limits = tuple(limits)
        self._count_rejected = count_rejected
        self._hits: dict[tuple[int, str], deque[float]] = {}
        # X-Ratelimit-* reflect the average (class) window, as Commerce Layer documents.
        classes = [limit for limit in self._limits if limit.scope == "class"]
        self._header = classes[0] if classes else (self._limits[0] if self._limits else None)

    def _window(self, index: int, limit: Limit, endpoint: str, now: float) -> deque[float]:
        key = (index, endpoint if limit.scope == "endpoint" else "")
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - limit.seconds:
            hits.popleft()
        return hits

    def _count(self, windows: list[tuple[Limit, deque[float]]], now: float) -> list[float]:
        """Waits of the full windows; the request is logged unless refused and not counted."""
        waits = [
            hits[len(hits) - limit.limit] + limit.seconds - now
            for limit, hits in windows
            if len(hits) >= limit.limit
        ]
        if not waits or self._count_rejected:
            for _, hits in windows:
                hits.append(now)
        return waits

    def check(self, endpoint: str, now: float) -> Verdict:
        """Count the request at `now` against every window, or refuse it."""
        windows = [
            (limit, self._window(i, limit, endpoint, now)) for i, limit in enumerate(self._limits)
        ]
        waits = self._count(windows, now)
        remaining = 0
        for limit, hits in windows:
            if limit is self._header:
                remaining = max(0, limit.limit - len(hits))
        retry = max(1, math.ceil(max(waits))) if waits else 0
        return Verdict(not waits, retry, self._header, remaining)

    def check_foreign(self, now: float) -> bool:
        """Another integration's request on the same key: only the class windows see it."""
        windows = [
            (limit, self._window(i, limit, "", now))
            for i, limit in enumerate(self._limits)
            if limit.scope == "class"
        ]
        return not self._count(windows, now)
