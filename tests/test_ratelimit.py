"""The rate limiter, run in virtual time on a real asyncio event loop."""

from __future__ import annotations

import asyncio
import itertools
import random
import selectors
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch.errors import UsageError
from batch.ratelimit import (
    RateLimiter,
    Window,
    concurrency_for,
    default_windows,
    greedy_schedule,
    parse_window,
)

# Virtual time makes every test here instant; a busy-looping limiter would spin forever.
pytestmark = pytest.mark.timeout(30)


class VirtualClock:
    """Seconds that pass only when the event loop has nothing to do."""

    def __init__(self) -> None:
        self.now = 0.0

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

    A request is counted `one_way` of its round trip after it is sent (half, by default).
    """
    sends: list[float] = []
    arrivals: list[float] = []
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await limiter.acquire()
            sent = clock.now
            took = latency()
            sends.append(sent)
            arrivals.append(sent + one_way * took)
            await asyncio.sleep(took)
            limiter.record_latency(took)
            limiter.on_accepted()

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    run_virtual(clock, main)
    return sends, arrivals


# -- parsing and defaults -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50/10s", Window(50, 10.0)),
        ("200/60s", Window(200, 60.0)),
        ("25/1s", Window(25, 1.0)),
        ("2/500ms", Window(2, 0.5)),
        ("100/1m", Window(100, 60.0)),
        ("30/m", Window(30, 60.0)),
        (" 5 / 2.5 S ", Window(5, 2.5)),
        ("1000/1h", Window(1000, 3600.0)),
        ("7/10sec", Window(7, 10.0)),
    ],
)
def test_parse_window_accepts(text: str, expected: Window) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "50", "50/10", "0/10s", "5/0s", "-1/10s", "50/10x", "50/10s 3", "1.5/1s"]
)
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="not a rate limit"):
        parse_window(text)


def test_default_windows_per_environment() -> None:
    assert default_windows("test") == (Window(100, 60.0), Window(25, 10.0))
    assert default_windows("live") == (Window(200, 60.0), Window(50, 10.0))
    assert default_windows("LIVE") == default_windows("live")
    assert default_windows(None) == default_windows("test")
    assert default_windows("staging") == default_windows("test")


def test_concurrency_for_follows_littles_law() -> None:
    assert concurrency_for(5.0, 0.4) == 2
    assert concurrency_for(5.0, 0.41) == 3
    assert concurrency_for(200 / 60, 0.3) == 1
    assert concurrency_for(50.0, 0.8) == 40
    assert concurrency_for(1000.0, 1.0) == 64
    assert concurrency_for(1000.0, 1.0, cap=10) == 10
    assert concurrency_for(0.0, 1.0, floor=3) == 3
    assert concurrency_for(float("inf"), 1.0, cap=8) == 8
    with pytest.raises(ValueError, match="floor"):
        concurrency_for(1.0, 1.0, floor=5, cap=4)


# -- the greedy schedule --------------------------------------------------------------


def test_greedy_schedule_known_answers() -> None:
    assert greedy_schedule([Window(2, 1.0)], 5) == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert greedy_schedule([Window(3, 1.0), Window(4, 10.0)], 6, start=5.0) == [
        5.0,
        5.0,
        5.0,
        6.0,
        15.0,
        15.0,
    ]
    assert greedy_schedule([Window(1, 1.0)], 0) == []


@given(
    windows=st.lists(
        st.builds(Window, st.integers(1, 6), st.sampled_from([0.5, 1.0, 2.0, 3.0, 10.0])),
        min_size=1,
        max_size=3,
    ),
    n=st.integers(1, 40),
)
def test_greedy_schedule_is_legal_and_tight(windows: list[Window], n: int) -> None:
    times = greedy_schedule(windows, n)
    assert times == sorted(times)
    # Legal: the server's half-open window (t - seconds, t] never holds more than `limit`.
    for w in windows:
        for i in range(len(times) - w.limit):
            assert times[i + w.limit] - times[i] >= w.seconds
    # Tight: every send that waited was blocked by some window just before it.
    for i, t in enumerate(times):
        if t > 0:
            assert any(i >= w.limit and times[i - w.limit] + w.seconds == t for w in windows)


# -- acquire: FIFO, exact wake-ups, cancellation --------------------------------------


def test_acquire_matches_greedy_schedule_exactly() -> None:
    clock = VirtualClock()
    naps: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        naps.append(seconds)
        await asyncio.sleep(seconds)

    windows = [Window(3, 1.0), Window(5, 4.0)]
    limiter = RateLimiter(windows, clock=clock, sleep=counting_sleep, margin=0.0)
    sends, _ = drive(limiter, clock, 20, workers=8, latency=lambda: 0.01)
    assert sends == pytest.approx(greedy_schedule(windows, 20), abs=1e-9)
    # One nap per distinct future slot: no busy loop, no oversleeping.
    assert len(naps) == len(set(sends)) - 1
    assert limiter.stats.acquired == 20


def test_acquire_is_first_come_first_served() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(1, 1.0)], clock=clock, margin=0.0)
    order: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await limiter.acquire()
        order.append((i, clock.now))

    async def main() -> None:
        tasks = []
        for i in range(6):
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(0)  # arrive in order
        await asyncio.gather(*tasks)

    run_virtual(clock, main)
    assert [i for i, _ in order] == list(range(6))
    assert [t for _, t in order] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


def test_cancelled_waiters_take_no_slot() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(1, 10.0)], clock=clock, margin=0.0)
    got: list[tuple[str, float]] = []

    async def one(name: str) -> None:
        await limiter.acquire()
        got.append((name, clock.now))

    async def main() -> None:
        await limiter.acquire()  # t=0 fills the window until t=10
        head = asyncio.ensure_future(one("head"))
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(one("queued"))
        await asyncio.sleep(0)
        last = asyncio.ensure_future(one("last"))
        await asyncio.sleep(1.0)
        head.cancel()  # cancelled while napping, holding the lock
        queued.cancel()  # cancelled while waiting for the lock
        await last
        for task in (head, queued):
            with pytest.raises(asyncio.CancelledError):
                await task

    run_virtual(clock, main)
    assert [name for name, _ in got] == ["last"]
    assert got[0][1] == pytest.approx(10.0)
    assert limiter.stats.acquired == 2


def test_waiter_wakes_early_when_limits_recover() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(2, 10.0)], clock=clock, margin=0.0)
    limiter.on_throttled(0.0)
    limiter.on_throttled(0.0)  # a repeat: the limit halves to 1/10s
    assert limiter.windows == (Window(1, 10.0),)
    got: list[float] = []

    async def main() -> None:
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(1.0)
        assert not waiter.done()
        limiter.on_accepted()  # back to 2/10s: the waiter fits now, not at t=10
        await waiter
        got.append(clock.now)

    run_virtual(clock, main)
    assert got == [pytest.approx(1.0)]


def test_waiter_wakes_early_when_the_server_relents() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(3, 10.0)], clock=clock, margin=0.0)
    limiter.observe(headers(1, 10))
    got: list[float] = []

    async def main() -> None:
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(2.0)
        assert not waiter.done()
        limiter.observe(headers(3, 10))
        await waiter
        got.append(clock.now)

    run_virtual(clock, main)
    assert got == [pytest.approx(2.0)]


# -- jitter: counted at server arrival --------------------------------------------------


def test_without_the_pad_jitter_overruns_and_with_it_does_not() -> None:
    window = Window(2, 1.0)
    trips = iter([1.0, 1.0, 0.2])

    clock = VirtualClock()
    blind = RateLimiter([window], clock=clock, margin=0.0)
    _, arrivals = drive(blind, clock, 3, workers=3, latency=lambda: next(trips))
    assert overruns(arrivals, [window])  # a slow pair then a fast one land in one window

    trips = iter([1.0, 1.0, 0.2])
    clock = VirtualClock()
    padded = RateLimiter([window], clock=clock, margin=0.01)
    padded.record_latency(0.2)
    padded.record_latency(1.0)
    assert padded.pad == pytest.approx(0.41)  # margin + half the round-trip spread
    _, arrivals = drive(padded, clock, 3, workers=3, latency=lambda: next(trips))
    assert not overruns(arrivals, [window])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    windows=st.lists(
        st.builds(Window, st.integers(1, 12), st.floats(0.2, 5.0)), min_size=1, max_size=3
    ),
    jitter=st.floats(0.0, 0.5),
    extra=st.floats(0.0, 1.5),
    margin=st.floats(0.001, 0.1),
    workers=st.integers(1, 16),
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_no_window_overrun_at_server_arrival(
    windows: list[Window],
    jitter: float,
    extra: float,
    margin: float,
    workers: int,
    n: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    low, high = extra, extra + 2 * jitter  # latency = (extra + jitter) ± jitter
    clock = VirtualClock()
    limiter = RateLimiter(windows, clock=clock, margin=margin)
    limiter.record_latency(low)  # the spread was learned from earlier responses
    limiter.record_latency(high)
    sends, arrivals = drive(limiter, clock, n, workers, latency=lambda: rng.uniform(low, high))
    assert len(sends) == n
    assert overruns(arrivals, windows) == []


def test_utilisation_close_to_greedy_minimum() -> None:
    windows = default_windows("test")
    rng = random.Random(7)
    clock = VirtualClock()
    limiter = RateLimiter(windows, clock=clock)
    limiter.record_latency(0.2)
    limiter.record_latency(0.4)
    n = 300
    sends, arrivals = drive(limiter, clock, n, workers=32, latency=lambda: rng.uniform(0.2, 0.4))
    ideal = greedy_schedule(windows, n)[-1]
    assert ideal == pytest.approx(150.0)
    assert max(sends) <= ideal * 1.02 + limiter.pad
    # Send for send, between the raw greedy schedule and the one padded by the widest pad.
    padded = [Window(w.limit, w.seconds + 0.05 + 0.2) for w in windows]
    fastest = greedy_schedule(windows, n)
    slowest = greedy_schedule(padded, n)
    assert all(a <= s <= b + 1e-6 for a, s, b in zip(fastest, sends, slowest, strict=True))
    assert overruns(arrivals, windows) == []
    assert limiter.min_duration(0) == 0.0


# -- 429s ---------------------------------------------------------------------------------


def test_retry_after_pauses_every_waiter() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(4, 1.0)], clock=clock, margin=0.0)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(clock.now)

    async def throttle_at(when: float, retry_after: float) -> None:
        await asyncio.sleep(when - clock.now)
        limiter.on_throttled(retry_after)

    async def main() -> None:
        for _ in range(3):
            await limiter.acquire()
        limiter.on_throttled(2.0)
        await asyncio.gather(*(one() for _ in range(4)))
        # 4/1s is full until t=3; a 429 while the next waiter naps pushes it back too.
        await asyncio.gather(one(), throttle_at(2.5, 3.0))

    run_virtual(clock, main)
    assert times == pytest.approx([2.0, 2.0, 2.0, 2.0, 5.5])
    assert limiter.stats.throttled == 2
    assert limiter.stats.paused_seconds == pytest.approx(2.0 + 3.0)


def test_without_retry_after_waits_for_the_fullest_window() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(2, 1.0), Window(5, 10.0)], clock=clock, margin=0.0)
    times: list[float] = []

    async def main() -> None:
        await limiter.acquire()
        await limiter.acquire()  # 2/1s is full (100%), 5/10s is at 40%
        clock.now = 0.25
        limiter.on_throttled(None)
        await limiter.acquire()
        times.append(clock.now)

    run_virtual(clock, main)
    assert times == [pytest.approx(1.0)]

    empty = RateLimiter([Window(2, 1.0), Window(5, 10.0)], clock=clock, margin=0.0)
    start = clock.now
    empty.on_throttled(None)  # our log is empty: someone else used the budget
    assert empty.min_duration(1) == pytest.approx(1.0)
    assert clock.now == start


def test_repeated_429s_halve_and_successes_recover() -> None:
    clock = VirtualClock()
    configured = default_windows("test")
    limiter = RateLimiter(configured, clock=clock, margin=0.0)

    limiter.on_throttled(1.0)  # t=0: episode until t=1
    clock.now = 0.5
    limiter.on_throttled(1.0)  # in-flight requests of the same episode: no cut
    assert limiter.windows == configured
    assert limiter.stats.decreases == 0

    clock.now = 3.0
    limiter.on_throttled(None)  # after the pause ended, within a window: a repeat
    assert limiter.windows == (Window(50, 60.0), Window(12, 10.0))
    assert limiter.stats.decreases == 1

    clock.now = 10.0
    limiter.on_throttled(1.0)  # inside the new pause: same episode
    clock.now = 20.0
    limiter.on_throttled(1.0)
    assert limiter.windows == (Window(25, 60.0), Window(6, 10.0))

    seen = [limiter.windows]
    for _ in range(200):
        limiter.on_accepted()
        seen.append(limiter.windows)
    for before, after in itertools.pairwise(seen):
        assert all(a.limit >= b.limit for a, b in zip(after, before, strict=True))
        assert all(a.limit <= c.limit for a, c in zip(after, configured, strict=True))
    assert seen[1] == (Window(26, 60.0), Window(6, 10.0))  # additive: +1 of the largest
    assert seen[75] == configured
    assert seen[-1] == configured


def test_a_429_long_after_the_last_is_not_a_repeat() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 5.0)], clock=clock, margin=0.0)
    limiter.on_throttled(1.0)
    clock.now = 100.0
    limiter.on_throttled(1.0)
    assert limiter.windows == (Window(10, 5.0),)


def test_decrease_never_goes_below_one() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(3, 1.0), Window(8, 10.0)], clock=clock, margin=0.0)
    for _ in range(12):
        limiter.on_throttled(0.0)
        clock.now += 0.1
    assert limiter.windows == (Window(1, 1.0), Window(1, 10.0))


# -- learning from the server ---------------------------------------------------------


def headers(limit: object, interval: object, remaining: object | None = None) -> dict[str, str]:
    found = {"X-RateLimit-Limit": str(limit), "x-ratelimit-interval": str(interval)}
    if remaining is not None:
        found["X-RATELIMIT-REMAINING"] = str(remaining)
    return found


def test_observe_tightens_to_a_stricter_server() -> None:
    limiter = RateLimiter(default_windows("live"), clock=VirtualClock())
    limiter.observe(headers(100, 60))  # a test credential after all
    assert limiter.windows == (Window(100, 60.0), Window(50, 10.0))
    limiter.observe(headers(30, 30))  # an interval we did not configure, stricter
    widened: tuple[Window, ...] = limiter.windows
    assert widened == (Window(200, 60.0), Window(50, 10.0), Window(30, 30.0))


@pytest.mark.parametrize(
    "found",
    [
        headers(400, 60),  # looser than 200/60s
        headers(160, 30),  # 50/10s already allows at most 150 in any 30 s
        headers("abc", 60),
        headers(10, "soon"),
        headers(0, 60),
        headers(10, -1),
        {"X-RateLimit-Remaining": "0"},
        {},
    ],
)
def test_observe_never_loosens_and_ignores_garbage(found: dict[str, str]) -> None:
    limiter = RateLimiter(default_windows("live"), clock=VirtualClock())
    limiter.observe(found)
    assert limiter.windows == default_windows("live")


def test_observe_loosens_back_only_to_configured() -> None:
    limiter = RateLimiter([Window(100, 60.0)], clock=VirtualClock())
    limiter.observe(headers(40, 60))
    assert limiter.windows == (Window(40, 60.0),)
    limiter.observe(headers(500, 60))
    assert limiter.windows == (Window(100, 60.0),)


def test_remaining_below_our_count_reserves_budget_for_others() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 60.0)], clock=clock, margin=0.0)

    async def two() -> None:
        await limiter.acquire()
        await limiter.acquire()

    run_virtual(clock, two)
    clock.now = 1.0
    assert limiter.min_duration(8) == 0.0
    limiter.observe(headers(10, 60, remaining=3))  # 7 used, 2 of them ours
    assert limiter.min_duration(3) == 0.0
    assert limiter.min_duration(4) == pytest.approx(59.0)  # our first send leaves at 60
    limiter.observe(headers(10, 60, remaining=3))  # the same news again changes nothing
    assert limiter.min_duration(4) == pytest.approx(59.0)


def test_remaining_that_matches_our_count_changes_nothing() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 60.0)], clock=clock, margin=0.0)
    run_virtual(clock, limiter.acquire)
    limiter.observe(headers(20, 60, remaining=19))
    assert limiter.min_duration(9) == 0.0
    assert limiter.min_duration(10) == pytest.approx(60.0)


# -- ETA and stats ------------------------------------------------------------------------


def test_min_duration_uses_the_log_the_pause_and_the_pad() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(2, 1.0)], clock=clock, margin=0.05)
    assert limiter.min_duration(1) == 0.0
    assert limiter.min_duration(5) == pytest.approx(2 * 1.05)
    run_virtual(clock, limiter.acquire)
    assert limiter.min_duration(2) == pytest.approx(1.05)
    limiter.on_throttled(3.0)
    assert limiter.min_duration(1) == pytest.approx(3.0)
    assert limiter.stats.acquired == 1
    assert limiter.stats.throttled == 1


def test_limiter_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        RateLimiter([])
    with pytest.raises(ValueError, match="margin"):
        RateLimiter([Window(1, 1.0)], margin=-1.0)
    with pytest.raises(ValueError, match="positive"):
        Window(0, 1.0)


def test_real_clock_smoke() -> None:
    limiter = RateLimiter([Window(2, 0.05)], margin=0.0)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(3):
            await limiter.acquire()
        return loop.time() - start

    took = asyncio.run(main())
    assert 0.04 <= took < 1.0


# -- learning the server's real windows from 429s ---------------------------------------


class ScriptedServer:
    """Sliding windows counted at arrival; a 429 is not counted and says when to retry."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self.windows = list(windows)
        self.accepted: list[float] = []

    def check(self, at: float) -> float | None:
        """None if the request arriving at `at` is accepted, else its Retry-After (whole s)."""
        waits = []
        for w in self.windows:
            inside = [t for t in self.accepted if t > at - w.seconds]
            if len(inside) >= w.limit:
                waits.append(inside[-w.limit] + w.seconds - at)
        if waits:
            return float(max(1, -int(-max(waits) // 1)))
        self.accepted.append(at)
        return None


def serve(
    limiter: RateLimiter, server: ScriptedServer, n: int, workers: int, seed: int
) -> list[float]:
    """n requests against `server`, resent after 429s; returns the times of the 429s.

    Like the sandbox: a request arrives 2 ms after it is sent, a 429 comes straight back,
    an accepted request answers 40-160 ms after it is sent.
    """
    clock = limiter._clock
    assert isinstance(clock, VirtualClock)
    rng = random.Random(seed)
    left = [n]
    refused: list[float] = []

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            while True:
                await asyncio.sleep(rng.uniform(0.0, 0.002))  # the worker's own work
                await limiter.acquire()
                sent = clock.now
                await asyncio.sleep(0.002)
                retry_after = server.check(clock.now)
                if retry_after is not None:
                    await asyncio.sleep(0.002)
                    limiter.record_latency(clock.now - sent)
                    limiter.on_throttled(retry_after)
                    refused.append(clock.now)
                    continue
                await asyncio.sleep(rng.uniform(0.04, 0.16) - 0.002)
                limiter.record_latency(clock.now - sent)
                limiter.on_accepted()
                break

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    run_virtual(clock, main)
    assert len(server.accepted) == n
    return refused


TRUE_WINDOWS = (Window(25, 1.0), Window(100, 6.0))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mis_told_limiter_learns_the_true_windows_then_stops_hitting_429s(seed: int) -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(50, 1.0), Window(200, 6.0)], clock=clock)
    refused = serve(limiter, ScriptedServer(TRUE_WINDOWS), 600, workers=25, seed=seed)
    assert limiter.windows == TRUE_WINDOWS
    assert limiter.stats.learned >= 2
    assert limiter.stats.decreases == 0
    # One episode per wrong window (plus one that widens the pad), then none. An episode
    # refuses a whole burst that was already in flight when its first 429 came back.
    episodes = [b for a, b in itertools.pairwise([-1.0, *refused]) if b - a > 0.5]
    assert 2 <= len(episodes) <= 3
    assert len(refused) <= 0.06 * 600
    assert max(refused) < 20.0
    ideal = greedy_schedule(TRUE_WINDOWS, 600)[-1]
    assert clock.now < ideal * 1.15


@pytest.mark.parametrize("seed", [1, 2])
def test_told_limiter_never_hits_a_429(seed: int) -> None:
    clock = VirtualClock()
    limiter = RateLimiter(TRUE_WINDOWS, clock=clock)
    refused = serve(limiter, ScriptedServer(TRUE_WINDOWS), 400, workers=25, seed=seed)
    assert refused == []
    assert limiter.windows == TRUE_WINDOWS
    ideal = greedy_schedule(TRUE_WINDOWS, 400)[-1]
    assert clock.now < ideal * 1.05


def test_only_the_window_that_was_wrong_is_learned() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(25, 1.0), Window(200, 6.0)], clock=clock)
    refused = serve(limiter, ScriptedServer(TRUE_WINDOWS), 400, workers=25, seed=5)
    assert limiter.windows == TRUE_WINDOWS
    assert refused
    assert max(refused) < 20.0


def _refuse(limiter: RateLimiter, clock: VirtualClock, sent: float, retry_after: float) -> None:
    limiter.record_latency(clock.now - sent)
    limiter.on_throttled(retry_after)


def test_a_429_at_our_own_limit_widens_the_pad_before_anything_else() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(4, 1.0)], clock=clock, margin=0.01)
    limiter.record_latency(0.1)
    limiter.record_latency(0.3)
    assert limiter.pad == pytest.approx(0.11)

    async def four() -> None:
        for _ in range(4):
            await limiter.acquire()
            clock.now += 0.1

    run_virtual(clock, four)
    _refuse(limiter, clock, sent=0.3, retry_after=1.0)  # the 4th: our window was full
    assert limiter.pad == pytest.approx(0.21)  # the whole spread now
    assert limiter.windows == (Window(4, 1.0),)
    assert limiter.stats.learned == limiter.stats.decreases == 0


def test_a_429_well_below_our_limit_is_learned_and_never_loosened() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 1.0), Window(40, 10.0)], clock=clock, margin=0.0)

    async def five() -> None:
        for _ in range(5):
            await limiter.acquire()
            clock.now += 0.01

    run_virtual(clock, five)
    clock.now = 0.05
    _refuse(limiter, clock, sent=0.04, retry_after=1.0)  # 4 got in before the 5th: 4/1s
    assert limiter.windows == (Window(4, 1.0), Window(40, 10.0))
    assert limiter.stats.learned == 1
    # The cut-and-recover fallback stays below what was learned.
    limiter._wide = True
    for at in (3.0, 5.0):
        clock.now = at
        limiter.on_throttled(0.0)
    assert limiter.stats.decreases == 2
    assert limiter.windows == (Window(1, 1.0), Window(10, 10.0))
    seen = []
    for _ in range(200):
        limiter.on_accepted()
        seen.append(limiter.windows)
    assert seen[-1] == (Window(4, 1.0), Window(40, 10.0))
    assert all(w[0].limit <= 4 and w[1].limit <= 40 for w in seen)


def test_acquire_stays_cheap_with_a_big_window() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(1_000_000, 1.0)], clock=clock)

    async def many() -> None:
        for _ in range(20_000):
            clock.now += 0.001  # 1,000 requests a second
            await limiter.acquire()
            limiter.record_latency(0.05)
            limiter.on_accepted()

    run_virtual(clock, many)
    # Pruned as it goes: the log holds about what the window and its history need.
    assert len(limiter._sends) <= 2 * 1024 + 2_500
    assert limiter.min_duration(10) == 0.0
