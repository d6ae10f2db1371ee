"""Virtual time for the rate limiter's tests, and a simulated strict server in it.

`run_virtual` runs a coroutine on a real asyncio loop whose clock jumps instead of
waiting, so minutes of rate limiting take milliseconds. `SimServer` counts requests at
arrival in sliding windows, in every mode the real API leaves unconfirmed.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch.ratelimit import RateLimiter, Window


class VirtualClock:
    """Seconds that pass only when the event loop has nothing to do."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _TimeWarpSelector(selectors.SelectSelector):
    """Instead of blocking for `timeout`, jump the clock forward by it."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout > 0:
            self._clock.now += timeout
        return super().select(0)


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_TimeWarpSelector(clock))
        self._virtual = clock

    def time(self) -> float:
        return self._virtual.now


def run_virtual(clock: VirtualClock, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run `main()` on a loop whose asyncio.sleep advances `clock` instead of waiting."""
    loop = _VirtualLoop(clock)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def overruns(arrivals: Sequence[float], windows: Sequence[Window]) -> list[tuple[Window, float]]:
    """Every (window, time) where more than `limit` arrivals fall in [time - seconds, time]."""
    times = sorted(arrivals)
    found = []
    for w in windows:
        for i in range(len(times) - w.limit):
            if times[i + w.limit] - times[i] <= w.seconds:
                found.append((w, times[i + w.limit]))
    return found


def drive(
    limiter: RateLimiter,
    clock: VirtualClock,
    n: int,
    workers: int,
    latency: Callable[[], float],
    one_way: float = 0.5,
) -> tuple[list[float], list[float]]:
    """n requests through `workers` concurrent workers; returns (send times, arrival times).

    Every request is accepted; it is counted `one_way` of its round trip after it is sent.
    """
    sends: list[float] = []
    arrivals: list[float] = []
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            sent = await limiter.acquire()
            took = latency()
            sends.append(sent)
            arrivals.append(sent + one_way * took)
            await asyncio.sleep(took)
            limiter.record_latency(took, sent=sent)
            limiter.on_accepted()

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    run_virtual(clock, main)
    return sends, arrivals


@dataclass
class SimServer:
    """Sliding windows counted at arrival, in each of the unconfirmed modes.

    `windows[-1]` is the average window: foreign traffic (`foreign_rate` requests a second,
    steady, from t=0) counts there only, and X-Ratelimit-* describe it when `headers`.
    `count_rejected` counts a refused request in every window; `retry_after` sends
    whole seconds until the fullest window frees a slot, like the sandbox.
    """

    windows: Sequence[Window]
    count_rejected: bool = False
    retry_after: bool = True
    headers: bool = True
    foreign_rate: float = 0.0
    hits: list[list[float]] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    _foreign_due: float = 0.0

    def __post_init__(self) -> None:
        self.hits = [[] for _ in self.windows]

    def _check(self, at: float, indexes: Sequence[int]) -> list[float]:
        waits = []
        for i in indexes:
            w, hits = self.windows[i], self.hits[i]
            inside = [t for t in hits if t > at - w.seconds]
            self.hits[i] = inside
            if len(inside) >= w.limit:
                waits.append(inside[-w.limit] + w.seconds - at)
        if not waits or self.count_rejected:
            for i in indexes:
                self.hits[i].append(at)
        return waits

    def _foreign_until(self, at: float) -> None:
        if self.foreign_rate <= 0:
            return
        while self._foreign_due <= at:
            self._check(self._foreign_due, [len(self.windows) - 1])
            self._foreign_due += 1.0 / self.foreign_rate

    def request(self, at: float) -> tuple[bool, float | None, dict[str, str]]:
        """(accepted, Retry-After, headers) for the request arriving at `at`."""
        self._foreign_until(at)
        waits = self._check(at, range(len(self.windows)))
        (self.refused if waits else self.accepted).append(at)
        average = self.windows[-1]
        headers = {}
        if self.headers:
            counted = len(self.hits[-1])
            headers = {
                "X-Ratelimit-Limit": str(average.limit),
                "X-Ratelimit-Interval": str(math.ceil(average.seconds)),
                "X-Ratelimit-Remaining": str(max(0, average.limit - counted)),
            }
        retry = float(max(1, math.ceil(max(waits)))) if waits and self.retry_after else None
        return not waits, retry, headers


def serve(
    limiter: RateLimiter,
    server: SimServer,
    n: int,
    workers: int,
    seed: int,
    commit: float = 0.0,
) -> list[float]:
    """n requests against `server`, resent after 429s; returns the times of the 429s.

    Like the sandbox: a request arrives 2 ms after it is sent, a 429 comes straight back,
    an accepted request answers 40-160 ms after it is sent. Like the Sender, each grant is
    followed by a journal write of `commit` seconds, one at a time, before the request
    goes. Feedback in the order the API client gives it: latency, headers, then the
    verdict, for the send the grant logged.
    """
    clock = limiter._clock
    assert isinstance(clock, VirtualClock)
    rng = random.Random(seed)
    left = [n]
    refused: list[float] = []
    before = len(server.accepted)
    journal = asyncio.Lock()

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            while True:
                await asyncio.sleep(rng.uniform(0.0, 0.002))  # the worker's own work
                ticket = await limiter.acquire()
                if commit:
                    async with journal:
                        await asyncio.sleep(commit)
                await asyncio.sleep(0.002)
                accepted, retry_after, headers = server.request(clock.now)
                if not accepted:
                    await asyncio.sleep(0.002)
                    limiter.record_latency(clock.now - ticket, sent=ticket)
                    limiter.observe(headers)
                    limiter.on_throttled(retry_after)
                    refused.append(clock.now)
                    continue
                await asyncio.sleep(rng.uniform(0.04, 0.16) - 0.002)
                limiter.record_latency(clock.now - ticket, sent=ticket)
                limiter.observe(headers)
                limiter.on_accepted()
                break

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    run_virtual(clock, main)
    assert len(server.accepted) - before == n
    return refused


def headers(limit: object, interval: object, remaining: object | None = None) -> dict[str, str]:
    """X-Ratelimit-* as a server sends them, in mixed case."""
    found = {"X-RateLimit-Limit": str(limit), "x-ratelimit-interval": str(interval)}
    if remaining is not None:
        found["X-RATELIMIT-REMAINING"] = str(remaining)
    return found


def doubted(limiter: RateLimiter) -> RateLimiter:
    """As after a wrong told limit: every request above what the server took is a probe."""
    for budget in limiter._budgets.items:
        budget.free = 0
    return limiter
