"""Seeded fault decisions, so a rehearsal with the same seed fails the same way."""

from __future__ import annotations

import math
import random

from batch.sandbox.config import Faults


class FaultPlan:
    """Draws the faults for each request from one seeded RNG."""

    def __init__(self, faults: Faults, seed: int | None, started: float) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        # Storms draw from their own stream: the n-th create request is stormed or not by the
        # seed alone, however the other faults' draws interleave with it.
        self._storms = random.Random(None if seed is None else f"{seed}:storms")
        self._started = started

    def roll(self, probability: float) -> bool:
        """True with the given probability; draws nothing when it is 0 or 1."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self._rng.random() < probability

    def latency(self) -> float:
        """Seconds of jitter to add to one /api/* request."""
        low, high = self.faults.latency_ms
        if high <= 0.0:
            return 0.0
        return self._rng.uniform(low, high) / 1000.0

    def storm(self, now: float) -> int | None:
        """Whole seconds left in the current 429 storm, or None if no storm hits this request."""
        every, length = self.faults.storm_every, self.faults.storm_seconds
        if every > 0 and length > 0:
            # The storm closes each period, so a run starts calm.
            phase = (now - self._started) % every
            if phase >= every - length:
                return max(1, math.ceil(every - phase))
        if self.faults.storm_p > 0 and self._storms.random() < self.faults.storm_p:
            return 1
        return None

    def server_error(self) -> int | None:
        """500 or 503 when the 5xx fault fires, else None."""
        if not self.roll(self.faults.p_5xx):
            return None
        return self._rng.choice((500, 503))
