"""Client-side rate limiting against Commerce Layer's sliding windows (see `_limiter`)."""

from batch.ratelimit._limiter import DEFAULT_MARGIN, LimiterStats, RateLimiter
from batch.ratelimit._windows import (
    Window,
    default_windows,
    greedy_schedule,
    parse_window,
)

__all__ = [
    "DEFAULT_MARGIN",
    "LimiterStats",
    "RateLimiter",
    "Window",
    "default_windows",
    "greedy_schedule",
    "parse_window",
]
