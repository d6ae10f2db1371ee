"""How many POSTs to keep in flight: Little's law from the rate limit and observed latency."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable

from batch.ratelimit import RateLimiter

MAX_WORKERS = 64
ASSUMED_LATENCY = 1.0  # seconds, until the first answers tell us better
RETUNE_SECONDS = 0.05  # how often the in-flight target follows the latency estimate


def concurrency_for(rate_per_s: float, latency_s: float, *, floor: int = 1, cap: int = 64) -> int:
    """Requests to keep in flight so `rate_per_s` is sustained at `latency_s` (Little's law)."""
    if floor < 1 or cap < floor:
        raise ValueError("need 1 <= floor <= cap")
    wanted = rate_per_s * latency_s
    if not math.isfinite(wanted) or wanted <= 0:
        return floor if math.isfinite(wanted) else cap
    return max(floor, min(cap, math.ceil(wanted)))


class Tuner:
    """The in-flight target, and the slots the Sender's workers take under it."""

    def __init__(
        self, limiter: RateLimiter, *, fixed: int | None, clock: Callable[[], float]
    ) -> None:
        self._limiter = limiter
        self._fixed = fixed
        self._clock = clock
        self.latency = ASSUMED_LATENCY
        self.target = fixed or self._little(ASSUMED_LATENCY)
        self.in_flight = 0
        self._tuned_at = -math.inf
        self._capacity = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._capacity:
            await self._capacity.wait_for(lambda: self.in_flight < self.target)
            self.in_flight += 1
        try:
            yield
        finally:
            async with self._capacity:
                self.in_flight -= 1
                self._capacity.notify_all()

    async def drained(self, seconds: float) -> None:
        """Wait until nothing is in flight, for at most `seconds`."""
        async with self._capacity:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._capacity.wait_for(lambda: self.in_flight == 0), seconds
                )

    def learn(self, seconds: float) -> None:
        if self._fixed:
            return
        self.latency = 0.8 * self.latency + 0.2 * seconds
        now = self._clock()
        if now - self._tuned_at >= RETUNE_SECONDS:
            self._tuned_at = now
            self.target = max(1, self._little(self.latency * 1.5))

    def _little(self, latency: float) -> int:
        """Little's law for the sustained rate, but at least half the shortest window's
        burst, so a freed window refills within a couple of latencies instead of trickling.
        Half, not all: when the configured limits overstate the server's, a whole burst in
        flight would meet the first 429 together.
        """
        windows = self._limiter.windows
        rate = min(w.limit / w.seconds for w in windows)
        burst = min(windows, key=lambda w: w.seconds).limit // 2
        return min(MAX_WORKERS, max(concurrency_for(rate, latency, cap=MAX_WORKERS), burst))
