"""Retry backoff: bounded, jittered, exponential."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.backoff import Backoff


@given(
    base=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 100.0),
    attempt=st.integers(1, 10_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_delay_is_between_zero_and_cap(base: float, cap: float, attempt: int, seed: int) -> None:
    backoff = Backoff(base=base, cap=cap)
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= cap
    assert delay <= base * 2.0 ** min(attempt - 1, 64)


def test_ceiling_doubles_until_the_cap() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(a) for a in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_delays_are_jittered_across_the_whole_range() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    rng = random.Random(1)
    delays = [backoff.delay(4, rng) for _ in range(2000)]
    assert min(delays) < 0.5
    assert max(delays) > 7.5
    assert len(set(delays)) == len(delays)


def test_gives_up_on_attempts_or_total_time() -> None:
    backoff = Backoff(max_attempts=3, max_total=10.0)
    assert not backoff.gives_up(1, 0.0)
    assert not backoff.gives_up(2, 9.9)
    assert backoff.gives_up(3, 0.0)
    assert backoff.gives_up(1, 10.0)


def test_defaults_and_refusals() -> None:
    assert Backoff() == Backoff(base=0.5, cap=30.0, max_attempts=5, max_total=300.0)
    with pytest.raises(ValueError, match="negative"):
        Backoff(base=-1.0)
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)
    with pytest.raises(ValueError, match="attempt counts from 1"):
        Backoff().delay(0, random.Random(0))
