"""The rate limiter, run in virtual time on a real asyncio event loop."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ratelimit_sim import VirtualClock, doubted, drive, headers, overruns, run_virtual

from batch.errors import UsageError
from batch.ratelimit import (
    RateLimiter,
    Window,
    default_windows,
    greedy_schedule,
    parse_window,
)
from batch.ratelimit._limiter import PROBES
from batch.tuning import concurrency_for

# Virtual time makes every test here instant; a busy-looping limiter would spin forever.
pytestmark = pytest.mark.timeout(30)


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


def test_waiter_wakes_early_when_a_probe_is_answered() -> None:
    clock = VirtualClock()
    limiter = doubted(RateLimiter([Window(50, 1.0), Window(200, 10.0)], clock=clock, margin=0.0))
    got: list[float] = []

    async def main() -> None:
        probes = [await limiter.acquire() for _ in range(PROBES)]
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(1.0)
        assert not waiter.done()  # nothing taken yet and PROBES unanswered: it waits
        limiter.record_latency(1.0, sent=probes[-1])
        limiter.on_accepted()  # one probe got through: the waiter goes now, not at t=10
        await waiter
        got.append(clock.now)

    run_virtual(clock, main)
    assert got == [pytest.approx(1.0)]
    assert limiter.stats.probes == PROBES + 1


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


def test_acquire_stays_cheap_with_a_big_window() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(1_000_000, 1.0)], clock=clock)

    async def many() -> None:
        for _ in range(20_000):
            clock.now += 0.001  # 1,000 requests a second
            sent = await limiter.acquire()
            limiter.record_latency(0.05, sent=sent)
            limiter.on_accepted()

    run_virtual(clock, many)
    # Pruned as it goes: the log holds about what the window and its history need.
    assert len(limiter._sends) <= 2 * 1024 + 2_500
    assert limiter.min_duration(10) == 0.0


def test_lookups_share_the_average_window_but_not_the_writes_burst_window() -> None:
    """The API counts a burst window per endpoint and the average one for the class: a
    lookup (another endpoint) waits for neither the writes' full burst window, nor does it
    count there; it does count in the average window."""
    clock = VirtualClock()
    limiter = RateLimiter(
        (Window(5, 1.0), Window(8, 6.0)), clock=clock, sleep=asyncio.sleep, margin=0.0
    )

    async def main() -> tuple[list[float], list[float], float]:
        writes = []
        for _ in range(5):  # the writes' burst window is full...
            await limiter.acquire()
            writes.append(clock())
        lookups = []
        for _ in range(3):  # ...a lookup still goes at once, until the average window is full
            await limiter.acquire(lookup=True)
            lookups.append(clock())
        await limiter.acquire()  # the average window (8 in 6 s) holds this write back
        return writes, lookups, clock()

    writes, lookups, last = run_virtual(clock, main)
    assert writes == [0.0] * 5
    assert lookups == [0.0] * 3
    assert last >= 6.0


def test_a_lookup_on_the_writes_path_is_held_by_their_burst_window_but_proves_nothing() -> None:
    """Whether the API counts a GET on the POSTs' path in their burst window is unconfirmed:
    the limiter holds it there (the stricter reading), and learns from the POSTs alone what
    that window takes (the reading that holds either way)."""
    clock = VirtualClock()
    limiter = RateLimiter((Window(3, 1.0), Window(100, 6.0)), clock=clock, margin=0.0)

    async def main() -> tuple[float, float]:
        for _ in range(2):
            await limiter.acquire()
        same = await limiter.acquire(lookup=True, same_path=True)
        limiter.record_latency(0.0, sent=same)
        limiter.on_accepted()
        other = asyncio.ensure_future(limiter.acquire(lookup=True))
        held = asyncio.ensure_future(limiter.acquire(lookup=True, same_path=True))
        return await other, await held

    other, held = run_virtual(clock, main)
    assert other == 0.0  # the orders lookup goes at once
    assert held == pytest.approx(1.0)  # three on the writes' path: the window is full
    assert limiter._budgets.items[0].proven == 2  # the two POSTs, not the GET
