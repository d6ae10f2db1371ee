"""What the limiter learns from 429s and from X-Ratelimit-* headers, in virtual time."""

from __future__ import annotations

import asyncio

import pytest
from ratelimit_sim import VirtualClock, doubted, headers, run_virtual

from batch.ratelimit import RateLimiter, Window, default_windows
from batch.ratelimit._evidence import RECOVER_MIN_SECONDS
from batch.ratelimit._limiter import PROBES

pytestmark = pytest.mark.timeout(30)


def sent_at(limiter: RateLimiter, clock: VirtualClock, times: list[float]) -> None:
    """Log sends at exactly these times."""

    async def main() -> None:
        for at in times:
            clock.now = at
            await limiter.acquire()

    run_virtual(clock, main)


def traffic(limiter: RateLimiter, clock: VirtualClock, times: list[float]) -> None:
    """Requests sent at these times, each accepted 40 ms later."""

    async def main() -> None:
        for at in times:
            clock.now = at
            await limiter.acquire()
            clock.now = at + 0.04
            answer(limiter, clock, at, refused=False)

    run_virtual(clock, main)


def answer(limiter: RateLimiter, clock: VirtualClock, sent: float, *, refused: bool) -> None:
    """Report the answer to the request granted at `sent`, as the API client does."""
    limiter.record_latency(clock.now - sent, sent=sent)
    if refused:
        limiter.on_throttled(None)
    else:
        limiter.on_accepted()


# -- pausing ------------------------------------------------------------------------------


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


def test_a_429_with_none_of_ours_in_the_window_waits_for_it_to_drain() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(25, 1.0), Window(100, 6.0)], clock=clock, margin=0.0)
    sent_at(limiter, clock, [0.0])
    clock.now = 0.01
    answer(limiter, clock, 0.0, refused=True)  # another tool's burst filled the windows
    assert limiter.windows == (Window(25, 1.0), Window(100, 6.0))  # nothing learned
    assert limiter.stats.learned == 0
    assert limiter.min_duration(1) == pytest.approx(6.0)  # the average window drains first


# -- learning from 429s -------------------------------------------------------------------


def test_a_429_well_below_our_limit_is_learned_under_either_counting_rule() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 1.0), Window(40, 10.0)], clock=clock, margin=0.0)
    sends = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    sent_at(limiter, clock, sends)
    clock.now = 0.06
    for at in sends[:4]:
        answer(limiter, clock, at, refused=False)
    answer(limiter, clock, 0.04, refused=True)  # 4 got in before the 5th: at most 4/1s
    assert limiter.windows == (Window(4, 1.0), Window(40, 10.0))
    answer(limiter, clock, 0.05, refused=True)  # in flight before we knew: same episode
    assert limiter.windows == (Window(4, 1.0), Window(40, 10.0))
    assert limiter.stats.learned == 1
    # The refused ones count in our log: the window drains only once they left it too.
    assert limiter.min_duration(1) == pytest.approx(0.02 + 1.0 + limiter.pad - 0.06)


def test_a_cut_ceiling_probes_back_up_slowly_and_only_once_taken() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 1.0)], clock=clock, margin=0.0)
    sends = [0.0, 0.01, 0.02, 0.03, 0.04]
    sent_at(limiter, clock, sends)
    clock.now = 0.05
    for at in sends[:4]:
        answer(limiter, clock, at, refused=False)
    answer(limiter, clock, 0.04, refused=True)
    assert limiter.windows == (Window(4, 1.0),)
    clock.now += RECOVER_MIN_SECONDS
    assert limiter.windows == (Window(4, 1.0),)  # read lazily: the next acquire raises it
    assert limiter.min_duration(1) == 0.0
    assert limiter.windows == (Window(5, 1.0),)
    clock.now += 3 * RECOVER_MIN_SECONDS
    limiter.min_duration(1)
    assert limiter.windows == (Window(5, 1.0),)  # the 5th was never taken: no higher
    start = clock.now
    burst = [start + i * 0.01 for i in range(5)]
    sent_at(limiter, clock, burst)
    assert limiter.stats.probes == 1  # the 5th in one window
    clock.now = start + 0.1
    for at in burst:
        answer(limiter, clock, at, refused=False)
    clock.now += RECOVER_MIN_SECONDS
    limiter.min_duration(1)
    assert limiter.windows == (Window(6, 1.0),)


def test_a_failed_probe_puts_the_ceiling_back() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 1.0)], clock=clock, margin=0.0)
    sent_at(limiter, clock, [0.0, 0.01, 0.02, 0.03, 0.04])
    clock.now = 0.05
    for at in (0.0, 0.01, 0.02, 0.03):
        answer(limiter, clock, at, refused=False)
    answer(limiter, clock, 0.04, refused=True)
    clock.now = 20.0
    burst = [20.0 + i * 0.01 for i in range(5)]
    sent_at(limiter, clock, burst)
    assert limiter.stats.probes == 1
    clock.now = 20.1
    answer(limiter, clock, burst[-1], refused=True)
    assert limiter.windows == (Window(4, 1.0),)
    assert limiter.stats.learned == 2


def test_above_what_the_server_took_requests_go_as_probes() -> None:
    clock = VirtualClock()
    limiter = doubted(RateLimiter([Window(50, 1.0)], clock=clock, margin=0.0))
    sent_at(limiter, clock, [i * 0.001 for i in range(PROBES)])
    assert limiter.stats.probes == PROBES  # nothing taken yet, nothing trusted: all probe
    clock.now = 0.1
    for i in range(PROBES):
        answer(limiter, clock, i * 0.001, refused=False)  # the server took PROBES in 1 s
    sent_at(limiter, clock, [1.5 + i * 0.001 for i in range(PROBES + 1)])
    assert limiter.stats.probes == PROBES + 1  # only the one above what was taken


def test_a_seeded_history_is_evidence_too() -> None:
    clock = VirtualClock(10.0)
    limiter = doubted(RateLimiter([Window(25, 1.0)], clock=clock, margin=0.0))
    limiter.seed([(8.0 + i * 0.01, False) for i in range(20)] + [(8.5, True)])
    sent_at(limiter, clock, [10.0 + i * 0.001 for i in range(21)])
    assert limiter.stats.probes == 1  # the server took 20 in a second before, not 21


def test_an_unexplained_429_cuts_the_average_window_to_our_share() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(25, 1.0), Window(100, 6.0)], clock=clock, margin=0.0)
    # 80 accepted over 4 s, then one refused with 60 of ours in 6 s: someone else took 40.
    traffic(limiter, clock, [i * 0.05 for i in range(80)])
    traffic(limiter, clock, [10.0 + i * 0.05 for i in range(60)])
    sent_at(limiter, clock, [13.0])
    clock.now = 13.002
    answer(limiter, clock, 13.0, refused=True)
    assert limiter.windows == (Window(25, 1.0), Window(60, 6.0))


def _refuse(limiter: RateLimiter, clock: VirtualClock, sent: float, retry_after: float) -> None:
    limiter.record_latency(clock.now - sent, sent=sent)
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
    assert limiter.stats.learned == 0


# -- headers ------------------------------------------------------------------------------


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
    sent_at(limiter, clock, [0.0, 0.0])
    clock.now = 1.0
    assert limiter.min_duration(8) == 0.0
    limiter.record_latency(1.0, sent=0.0)
    limiter.observe(headers(10, 60, remaining=3))  # 7 used, 2 of them ours
    limiter.on_accepted()
    assert limiter.min_duration(3) == 0.0
    assert limiter.min_duration(4) == pytest.approx(59.0)  # our first send leaves at 60
    limiter.record_latency(1.0, sent=0.0)
    limiter.observe(headers(10, 60, remaining=3))  # the same news again changes nothing
    assert limiter.min_duration(4) == pytest.approx(59.0)


def test_foreign_load_is_the_largest_seen_over_one_interval() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(100, 6.0)], clock=clock, margin=0.0)
    sent_at(limiter, clock, [0.0])
    clock.now = 0.1
    limiter.record_latency(0.1, sent=0.0)
    limiter.observe(headers(100, 6, remaining=69))  # 31 used, 1 ours
    assert limiter.windows == (Window(70, 6.0),)
    clock.now = 3.0
    limiter.record_latency(2.9, sent=0.0)
    limiter.observe(headers(100, 6, remaining=89))  # a lower reading does not lift it yet
    assert limiter.windows == (Window(70, 6.0),)
    clock.now = 6.5
    limiter.record_latency(6.4, sent=0.0)
    limiter.observe(headers(100, 6, remaining=89))
    assert limiter.windows == (Window(90, 6.0),)


def test_remaining_that_matches_our_count_changes_nothing() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(10, 60.0)], clock=clock, margin=0.0)
    run_virtual(clock, limiter.acquire)
    limiter.record_latency(0.0, sent=0.0)
    limiter.observe(headers(20, 60, remaining=19))
    assert limiter.min_duration(9) == 0.0
    assert limiter.min_duration(10) == pytest.approx(60.0)


def test_our_own_late_arrivals_at_the_window_edge_are_not_foreign_load() -> None:
    """The server's interval counts arrivals up to the answered request's: a burst sent
    just before ours-minus-interval that arrived late is still in it, and it is ours."""
    clock = VirtualClock()
    limiter = RateLimiter([Window(100, 6.0)], clock=clock, margin=0.0)
    limiter.record_latency(0.1)
    limiter.record_latency(0.3)  # a spread of 0.2 s
    sent_at(limiter, clock, [0.0] * 10 + [6.05])  # the ten arrive at 0.1, in its window
    clock.now = 6.1
    limiter.record_latency(0.05, sent=6.05)
    limiter.observe(headers(100, 6, remaining=89))  # 11 used: all ours
    limiter.on_accepted()
    assert limiter.windows == (Window(100, 6.0),)


def test_the_servers_window_full_with_foreign_load_is_not_learned() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(25, 1.0), Window(100, 6.0)], clock=clock, margin=0.0)
    sends = [i * 0.1 for i in range(40)]
    sent_at(limiter, clock, sends)
    clock.now = 4.0
    limiter.record_latency(clock.now - sends[-1], sent=sends[-1])
    limiter.observe(headers(100, 6, remaining=0))  # 60 of the 100 are someone else's
    limiter.on_throttled(None)
    assert limiter.stats.learned == 0
    assert limiter.windows == (Window(25, 1.0), Window(40, 6.0))
