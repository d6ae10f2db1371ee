"""The server's advertised window is enforced as stated: 429 cuts never shrink it."""

from __future__ import annotations

from batch.ratelimit import RateLimiter, Window


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def advertised(limit: int, interval: int) -> dict[str, str]:
    return {"X-Ratelimit-Limit": str(limit), "X-Ratelimit-Interval": str(interval)}


def test_repeated_429s_cut_the_configured_windows_but_not_the_servers() -> None:
    clock = Clock()
    limiter = RateLimiter([Window(50, 1.0)], clock=clock, margin=0.0)
    limiter.observe(advertised(10, 6))
    limiter.on_throttled(1.0)
    clock.now = 3.0
    limiter.on_throttled(1.0)  # a repeat within a window: the limits are halved
    assert limiter.stats.decreases == 1
    assert limiter.windows == (Window(25, 1.0), Window(10, 6.0))


def test_the_servers_window_still_binds_after_a_cut() -> None:
    clock = Clock()
    limiter = RateLimiter([Window(50, 1.0)], clock=clock, margin=0.0)
    limiter.observe(advertised(10, 6))
    limiter.on_throttled(0.0)
    limiter.on_throttled(0.0)
    # 25/1s alone would send 11 requests within 1 s; the server's 10/6s holds the 11th to t=6.
    assert limiter.min_duration(11) == 6.0
