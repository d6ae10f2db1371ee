"""Client-side sliding-window rate limiting that spends the whole budget and never overruns it.

How the limiter stays under the server's count
----------------------------------------------
Commerce Layer counts a request when it *arrives*; we only know when we *send* it. A
request sent at t arrives at t + d with d somewhere in [d_min, d_max]. Two requests sent
at t1 < t2 arrive at least (t2 - t1) - (d_max - d_min) apart, so if the sends of every
`limit + 1` consecutive requests span at least `seconds + spread` (spread = d_max - d_min),
their arrivals span at least `seconds` and the server never sees `limit + 1` in one window.

So each window is enforced on the send log with its length padded by

    pad = margin + spread of recent latencies (send -> response, from `record_latency`)

The send->response spread over-estimates the one-way spread (it adds the server's own
time), which errs on the safe side; `margin` covers clock granularity and the server's
treatment of the window edge. Sends are logged at acquisition, which is the latest moment
the request can leave.

Learning from the server
------------------------
`observe` reads X-Ratelimit-Limit / -Interval / -Remaining. The server's window joins the
configured ones (it can only tighten: the configured windows always apply), and when
Remaining says more of the budget is used than we sent, the difference is other traffic
on the same key: it is logged as "foreign" sends at the time we learned of it, counted
against the server's window only.

429s
----
`on_throttled` pauses every waiter until Retry-After, or else until the fullest window
frees a slot. A 429 within one window after the previous throttling episode ended means
our picture is wrong: every configured limit is halved (floor 1); the server's advertised
window is kept as stated. Each accepted request gives back one request of the largest
window's limit, up to the configured limit.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from batch.errors import UsageError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# (limit, window length including the pad, sorted send times) – one enforced window.
Rule = tuple[int, float, Sequence[float]]

DEFAULT_MARGIN = 0.05
# Latency samples kept for the spread: recent enough to follow the network, enough to be fair.
LATENCY_SAMPLES = 256
# Halve on repeated 429s; never below one request per window.
DECREASE_FACTOR = 0.5
# A slot this close is taken now: event loops may wake a clock tick early, and the pad
# is orders of magnitude larger.
_EARLY_OK = 1e-6


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` requests in any `seconds`."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"a window needs a positive limit and length, got {self}")

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"


_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_WINDOW_RE = re.compile(
    r"^\s*(?P<limit>\d+)\s*/\s*(?P<num>\d+(?:\.\d+)?)?\s*(?P<unit>ms|sec|s|min|m|h)\s*$"
)


def parse_window(text: str) -> Window:
    """Parse "50/10s", "200/1m", "2/500ms", "25/s" (unit required: ms, s, m or h)."""
    match = _WINDOW_RE.match(text.lower())
    if match is None:
        raise UsageError(f"not a rate limit: {text!r} (expected e.g. 50/10s, 200/1m or 2/500ms)")
    limit = int(match["limit"])
    seconds = float(match["num"] or 1) * _UNITS[match["unit"]]
    if limit < 1 or seconds <= 0:
        raise UsageError(f"not a rate limit: {text!r} (count and length must be positive)")
    return Window(limit, seconds)


_DEFAULTS = {
    "test": (Window(100, 60.0), Window(25, 10.0)),
    "live": (Window(200, 60.0), Window(50, 10.0)),
}


def default_windows(environment: str | None) -> tuple[Window, ...]:
    """Commerce Layer's write-class windows for "test" or "live"; anything else is test."""
    return _DEFAULTS.get((environment or "").strip().lower(), _DEFAULTS["test"])


def concurrency_for(rate_per_s: float, latency_s: float, *, floor: int = 1, cap: int = 64) -> int:
    """Requests to keep in flight so `rate_per_s` is sustained at `latency_s` (Little's law)."""
    if floor < 1 or cap < floor:
        raise ValueError("need 1 <= floor <= cap")
    wanted = rate_per_s * latency_s
    if not math.isfinite(wanted) or wanted <= 0:
        return floor if math.isfinite(wanted) else cap
    return max(floor, min(cap, math.ceil(wanted)))


def _earliest(rules: Sequence[Rule], start: float) -> float:
    """The earliest time >= start at which every (limit, span, sorted sends) rule has room."""
    at = start
    for limit, span, sends in rules:
        if len(sends) >= limit:
            # Once the limit-th most recent send has left the window, at most limit-1 remain.
            at = max(at, sends[-limit] + span)
    return at


def _schedule(rules: Sequence[Rule], n: int, start: float) -> list[float]:
    """Greedy earliest send times of n more requests, given each rule's past sends."""
    logs = [(limit, span, list(sends)) for limit, span, sends in rules]
    times: list[float] = []
    for _ in range(n):
        at = _earliest(logs, start)
        for _, _, sends in logs:
            sends.append(at)
        times.append(at)
    return times


def greedy_schedule(windows: Sequence[Window], n: int, start: float = 0.0) -> list[float]:
    """The earliest possible send times of n requests under `windows` (optimal for sliding logs)."""
    return _schedule([(w.limit, w.seconds, ()) for w in windows], n, start)


def _implied_limit(windows: Sequence[Window], seconds: float) -> float:
    """The most requests `windows` can let through in any span of `seconds`."""
    return min((w.limit * math.ceil(seconds / w.seconds) for w in windows), default=math.inf)


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """Counters for the run summary."""

    acquired: int
    throttled: int
    paused_seconds: float
    decreases: int


def _header(headers: Mapping[str, str], name: str) -> float | None:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                number = float(value.strip())
            except ValueError:
                return None
            return number if math.isfinite(number) else None
    return None


class RateLimiter:
    """Sliding-window logs for every window; `acquire()` waits, FIFO, until all have room.

    Not thread-safe: use it from one event loop. The token endpoint is not limited here.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        if not windows:
            raise ValueError("a rate limiter needs at least one window")
        if margin < 0 or not math.isfinite(margin):
            raise ValueError("margin must be a finite number >= 0")
        self._configured = tuple(windows)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._server: Window | None = None
        self._scale = 1.0
        self._sends: list[float] = []
        self._foreign: list[float] = []
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._spread = 0.0
        self._latency_max = 0.0
        self._resume_at = -math.inf
        self._episode_end: float | None = None
        self._acquired = 0
        self._throttled = 0
        self._paused = 0.0
        self._decreases = 0
        # Created lazily so the limiter can be built outside the loop that uses it.
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None

    # -- what is in force -------------------------------------------------------------

    def _scaled(self, window: Window) -> Window:
        # The epsilon keeps k additive steps of 1/limit from flooring to k - 1.
        return Window(max(1, math.floor(window.limit * self._scale + 1e-9)), window.seconds)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The effective windows: configured (scaled), tightened or joined by the server's.

        The server's own window is never scaled: it states the server's count exactly, so
        cutting it only wastes budget (the configured windows take the cuts).
        """
        server = self._server
        found = [self._scaled(w) for w in self._configured]
        if server is not None and server.limit < _implied_limit(found, server.seconds):
            same = [i for i, w in enumerate(found) if w.seconds == server.seconds]
            for i in same:
                found[i] = server
            if not same:
                found.append(server)
        return tuple(found)

    @property
    def pad(self) -> float:
        """Seconds added to every window's length: margin plus the observed latency spread."""
        return self._margin + self._spread

    @property
    def stats(self) -> LimiterStats:
        """Counters so far."""
        return LimiterStats(self._acquired, self._throttled, self._paused, self._decreases)

    def _rules(self) -> list[Rule]:
        pad = self.pad
        rules: list[Rule] = [
            (w.limit, w.seconds + pad, self._sends) for w in map(self._scaled, self._configured)
        ]
        if self._server is not None:
            # Always enforced, even when looser: foreign sends count against it alone.
            server = self._server
            sends = sorted(self._sends + self._foreign) if self._foreign else self._sends
            rules.append((server.limit, server.seconds + pad, sends))
        return rules

    # -- acquiring ----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait, first come first served, until a request fits every window; then log it.

        Cancelling a waiter logs nothing and lets the next waiter in.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._changed = asyncio.Event()
        async with self._lock:
            while True:
                assert self._changed is not None
                self._changed.clear()
                now = self._clock()
                at = max(self._resume_at, _earliest(self._rules(), now))
                if at <= now + _EARLY_OK:
                    break
                await self._nap(at - now, self._changed)
            self._prune(now)
            self._sends.append(now)
            self._acquired += 1

    async def _nap(self, seconds: float, changed: asyncio.Event) -> None:
        """Sleep `seconds`, or less if the limits loosen meanwhile (so we never oversleep)."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            await asyncio.wait((sleeper, waker))

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _prune(self, now: float) -> None:
        longest = max(w.seconds for w in self._configured)
        if self._server is not None:
            longest = max(longest, self._server.seconds)
        # Keep enough history to compare our count with the server's over its interval.
        horizon = now - (longest + self.pad + self._latency_max + 1.0)
        for log in (self._sends, self._foreign):
            drop = 0
            while drop < len(log) and log[drop] < horizon:
                drop += 1
            del log[:drop]

    def min_duration(self, n: int) -> float:
        """Seconds from now until the last of n more requests may be sent, at the earliest."""
        if n <= 0:
            return 0.0
        now = self._clock()
        times = _schedule(self._rules(), n, max(now, self._resume_at))
        return times[-1] - now

    # -- feedback -----------------------------------------------------------------------

    def record_latency(self, seconds: float) -> None:
        """Learn one send->response time; its spread widens the safety pad."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            return
        self._latencies.append(seconds)
        self._spread = max(self._latencies) - min(self._latencies)
        self._latency_max = max(self._latencies)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the server's window and the budget others use from X-Ratelimit-* headers."""
        limit = _header(headers, "x-ratelimit-limit")
        interval = _header(headers, "x-ratelimit-interval")
        if limit is None or interval is None or limit < 1 or interval <= 0:
            return
        before = self.windows
        self._server = Window(int(limit), interval)
        remaining = _header(headers, "x-ratelimit-remaining")
        if remaining is not None:
            self._account_foreign(int(limit) - max(0, int(remaining)), interval)
        if self.windows != before:
            self._wake()

    def _account_foreign(self, used: int, interval: float) -> None:
        now = self._clock()
        # The server's window ended when this request arrived, up to one latency ago.
        since = now - interval - self.pad - self._latency_max
        ours = sum(1 for t in self._sends if t > since) + sum(1 for t in self._foreign if t > since)
        if used > ours:
            # When the others sent is unknown; logging them now is the safe assumption.
            self._foreign.extend([now] * (used - ours))

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: pause every waiter; halve the limits if 429s keep coming."""
        now = self._clock()
        self._throttled += 1
        if retry_after is not None and retry_after >= 0 and math.isfinite(retry_after):
            resume = now + retry_after
        else:
            resume = self._fullest_frees(now)
        if self._episode_end is None or now >= self._episode_end:
            longest = max(w.seconds for w in self.windows) + self.pad
            if self._episode_end is not None and now - self._episode_end <= longest:
                self._decrease()
            self._episode_end = resume + self._latency_max
        else:
            # In-flight requests sent before the pause: the same episode, not a repeat.
            self._episode_end = max(self._episode_end, resume + self._latency_max)
        if resume > self._resume_at:
            self._paused += resume - max(self._resume_at, now)
            self._resume_at = resume

    def _fullest_frees(self, now: float) -> float:
        """When the window nearest its limit frees one slot (the shortest window if all empty)."""
        best: tuple[float, float] | None = None
        for limit, span, sends in self._rules():
            inside = [t for t in sends if t + span > now]
            if inside:
                load = len(inside) / limit
                if best is None or load > best[0]:
                    best = (load, inside[0] + span)
        if best is None:
            return now + min(w.seconds for w in self.windows) + self.pad
        return best[1]

    def _decrease(self) -> None:
        self._scale = max(self._scale * DECREASE_FACTOR, 1.0 / self._largest_limit())
        self._decreases += 1

    def _largest_limit(self) -> int:
        limits = [w.limit for w in self._configured]
        if self._server is not None:
            limits.append(self._server.limit)
        return max(limits)

    def on_accepted(self) -> None:
        """A request got through: give back one request of the largest window, up to 100%."""
        if self._scale < 1.0:
            self._scale = min(1.0, self._scale + 1.0 / self._largest_limit())
            self._wake()
