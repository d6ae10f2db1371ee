"""The limiter against a simulated strict server, in every mode the real API leaves open.

Refused requests counted or not, Retry-After sent or not, X-Ratelimit-* sent or not,
other traffic on the same IP or not: the limiter converges in all of them, in virtual time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ratelimit_sim import SimServer, VirtualClock, overruns, serve

from batch.ratelimit import RateLimiter, Window, greedy_schedule
from batch.ratelimit._evidence import RECOVER_MIN_SECONDS
from batch.ratelimit._windows import schedule

pytestmark = pytest.mark.timeout(60)

TRUE = (Window(25, 1.0), Window(100, 6.0))
MIS_TOLD = (Window(50, 1.0), Window(200, 6.0))
COUNTING = pytest.mark.parametrize("count_rejected", [False, True], ids=["uncounted", "counted"])
RETRY_AFTER = pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "none"])
HEADERS = pytest.mark.parametrize("headers", [True, False], ids=["headers", "no-headers"])


def run(
    told: tuple[Window, ...], server: SimServer, n: int, seed: int = 1, commit: float = 0.0
) -> tuple[RateLimiter, list[float], float]:
    """(limiter, 429 times, seconds from the first send to the last accepted arrival)."""
    clock = VirtualClock()
    limiter = RateLimiter(told, clock=clock)
    refused = serve(limiter, server, n, workers=25, seed=seed, commit=commit)
    return limiter, refused, max(server.accepted)


@COUNTING
@RETRY_AFTER
@HEADERS
def test_told_the_true_limits_never_a_429(
    count_rejected: bool, retry_after: bool, headers: bool
) -> None:
    server = SimServer(TRUE, count_rejected, retry_after, headers)
    _, refused, span = run(TRUE, server, 400)
    assert refused == []
    # The first window is probed (nothing was taken yet), then every window is full.
    assert greedy_schedule(TRUE, 400)[-1] / span >= 0.94


@COUNTING
@RETRY_AFTER
@HEADERS
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("commit", [0.0, 0.004], ids=["no-journal", "journal"])
def test_mis_told_twice_the_limits_converges(
    count_rejected: bool, retry_after: bool, headers: bool, seed: int, commit: float
) -> None:
    """With a journal write between each grant and its send (as the Sender does), a burst
    of grants leaves in a trickle: a 429 must still be matched to its own send."""
    server = SimServer(TRUE, count_rejected, retry_after, headers)
    limiter, refused, span = run(MIS_TOLD, server, 1000, seed, commit)
    assert len(refused) <= 0.03 * (1000 + len(refused))
    assert greedy_schedule(TRUE, 1000)[-1] / span >= 0.85
    # Learned within the first windows; later 429s are the rare probes back up, one per
    # window every RECOVER_MIN_SECONDS at most.
    assert sum(1 for t in refused if t > 8.0) <= len(TRUE) * (span / RECOVER_MIN_SECONDS + 1)
    assert all(w.limit <= t.limit + 1 for w, t in zip(limiter.windows, TRUE, strict=True))


@COUNTING
@RETRY_AFTER
def test_foreign_traffic_with_headers_is_read_from_remaining(
    count_rejected: bool, retry_after: bool
) -> None:
    server = SimServer(TRUE, count_rejected, retry_after, headers=True, foreign_rate=5.0)
    _, refused, span = run(TRUE, server, 600)
    left = (Window(25, 1.0), Window(70, 6.0))  # 30 of the 100 are someone else's
    assert len(refused) <= 0.03 * (600 + len(refused))
    assert span <= greedy_schedule(left, 600)[-1] / 0.80


@COUNTING
@RETRY_AFTER
def test_foreign_traffic_without_headers_is_inferred_from_429s(
    count_rejected: bool, retry_after: bool
) -> None:
    server = SimServer(TRUE, count_rejected, retry_after, headers=False, foreign_rate=5.0)
    limiter, refused, span = run(TRUE, server, 600)
    left = (Window(25, 1.0), Window(70, 6.0))
    assert len(refused) <= 0.05 * (600 + len(refused))
    assert span <= greedy_schedule(left, 600)[-1] / 0.70
    assert limiter.windows[1].limit < 100  # the average window's share was cut


@COUNTING
@RETRY_AFTER
def test_a_run_seeded_with_the_last_runs_sends_neither_storms_nor_hangs(
    count_rejected: bool, retry_after: bool
) -> None:
    server = SimServer(TRUE, count_rejected, retry_after, headers=False)
    first, _, end = run(TRUE, server, 300)
    seeded = [(w.limit, w.seconds, sorted(server.accepted)) for w in TRUE]
    clock = VirtualClock(end + 0.5)
    again = RateLimiter(TRUE, clock=clock)
    again.seed(first.history())
    refused = serve(again, server, 300, workers=25, seed=2)
    assert refused == []
    ideal = schedule(seeded, 300, end + 0.5)[-1] - (end + 0.5)
    assert max(server.accepted) - (end + 0.5) <= ideal / 0.9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    windows=st.lists(
        st.builds(Window, st.integers(2, 12), st.floats(0.2, 5.0)), min_size=1, max_size=3
    ),
    factor=st.sampled_from([1, 2, 3]),
    retry_after=st.booleans(),
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_refused_requests_counted_never_overrun_a_known_window(
    windows: list[Window], factor: int, retry_after: bool, n: int, seed: int
) -> None:
    """Told `factor` times too much, against a server counting refusals: every request we
    send, refused ones included, still fits the windows we were told, and all get in."""
    true = [Window(max(1, w.limit // factor), w.seconds) for w in windows]
    server = SimServer(true, count_rejected=True, retry_after=retry_after, headers=False)
    clock = VirtualClock()
    limiter = RateLimiter(windows, clock=clock)
    serve(limiter, server, n, workers=8, seed=seed)
    arrivals = sorted(server.accepted + server.refused)
    assert overruns(arrivals, windows) == []
