"""The server's advertised window is enforced as stated (less foreign load): 429s never cut it."""

from __future__ import annotations

from ratelimit_sim import VirtualClock, headers, run_virtual

from batch.ratelimit import RateLimiter, Window


def test_a_429_cuts_the_configured_window_but_not_the_servers() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(50, 1.0)], clock=clock, margin=0.0)

    async def five() -> None:
        for i in range(5):
            clock.now = i * 0.01
            await limiter.acquire()

    run_virtual(clock, five)
    clock.now = 0.05
    for i in range(5):
        limiter.record_latency(clock.now - i * 0.01, sent=i * 0.01)
        limiter.observe(headers(10, 6, remaining=9 - i))
        if i < 4:
            limiter.on_accepted()
    limiter.on_throttled(None)  # the 5th refused with 4 before it: at most 4/1s
    assert limiter.windows == (Window(4, 1.0), Window(10, 6.0))


def test_the_servers_window_still_binds_after_a_pause() -> None:
    clock = VirtualClock()
    limiter = RateLimiter([Window(50, 1.0)], clock=clock, margin=0.0)
    limiter.observe(headers(10, 6))
    limiter.on_throttled(0.0)
    limiter.on_throttled(0.0)
    # 50/1s alone would send 11 requests at once; the server's 10/6s holds the 11th to t=6.
    assert limiter.min_duration(11) == 6.0
