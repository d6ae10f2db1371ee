"""Retry delays: exponential backoff with full jitter, bounded in attempts and total time."""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_BASE = 0.5
DEFAULT_CAP = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_TOTAL = 300.0

# 2**64 times any sane base is far past any cap; stops float overflow on absurd attempt numbers.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retrying, and when to stop.

    `attempt` counts the attempts already made (1 after the first failure). The delay is
    drawn uniformly from [0, min(cap, base * 2**(attempt - 1))] ("full jitter"), so
    concurrent workers that failed together do not retry together.
    """

    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_total: float = DEFAULT_MAX_TOTAL

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.max_total < 0:
            raise ValueError("backoff base, cap and max_total must not be negative")
        if self.max_attempts < 1:
            raise ValueError("backoff max_attempts must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay `delay(attempt)` can return."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        return min(self.cap, self.base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A random delay in [0, ceiling(attempt)]."""
        return rng.uniform(0.0, self.ceiling(attempt))

    def gives_up(self, attempt: int, elapsed: float) -> bool:
        """True once `attempt` attempts were made or `elapsed` seconds were spent retrying."""
        return attempt >= self.max_attempts or elapsed >= self.max_total
