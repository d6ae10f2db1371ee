"""Client-side sliding-window rate limiting that spends the whole budget and never overruns it.

How the limiter stays under the server's count
----------------------------------------------
Commerce Layer counts a request when it *arrives*; we only know when we *send* it. A
request sent at t arrives at t + d with d somewhere in [d_min, d_max]. Two requests sent
at t1 < t2 arrive at least (t2 - t1) - (d_max - d_min) apart, so if the sends of every
`limit + 1` consecutive requests span at least `seconds + spread` (spread = d_max - d_min),
their arrivals span at least `seconds` and the server never sees `limit + 1` in one window.

So each window is enforced on the send log with its length padded by

    pad = margin + half the spread of recent send->response times (`record_latency`)

A request travels one way before it is counted, so its arrival offset varies by about half
the round trip's spread (the rest is the server's own time and the way back). If a 429 is
explained by a window that was at its limit, the half was not enough: the pad widens to the
whole spread for the rest of the run. `margin` covers clock granularity and the server's
treatment of the window edge. Sends are logged at acquisition, the latest moment the
request can leave.

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
frees a slot. Then it asks which window was too generous. `record_latency` tells it when
the refused request was sent (s); for each configured window W it counts c_W, the requests
sent in (s - W, s) and not refused. Every accepted request proves the server took the
requests in the span W before it (P_W, the largest such count), so a window with
c_W < P_W had room and is innocent. Among the others, the one fullest against its
configured limit is the cause: its limit becomes c_W, an upper bound never loosened again
(the server refused the (c_W + 1)-th). So a limiter told twice the real limits converges
in one 429 episode per window.

What cannot be learned falls back, in order: a 429 where one of our windows was already at
its limit first widens the pad; a repeated one (within one window after the previous
throttling episode ended) halves every limit (floor 1), and each accepted request gives
back one request of the largest limit, up to the configured or learned limit. The
server's advertised window is kept as stated.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from bisect import bisect_left, bisect_right, insort
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
# A latency's send-time estimate lands a few microseconds after the logged send; no other
# send can be logged in between (nothing awaits there), and clock ties are the same send.
_SAME_SEND = 1e-7
# Logs are pruned when they reach this length, then whenever they double.
_PRUNE_FIRST = 1024


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
    # Only the last `limit` sends of a log can hold a request back.
    logs = [(limit, span, list(sends[-limit:])) for limit, span, sends in rules]
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
    learned: int = 0  # limits tightened to what a 429 showed


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _between(log: Sequence[float], low: float, high: float) -> int:
    """How many entries of a sorted log lie in the open interval (low, high)."""
    return max(0, bisect_left(log, high) - bisect_right(log, low))


class _Latencies:
    """The last LATENCY_SAMPLES send->response times, with their spread in O(log n)."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        if len(self._recent) == LATENCY_SAMPLES:
            old = self._recent.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        insort(self._sorted, seconds)

    @property
    def spread(self) -> float:
        return self._sorted[-1] - self._sorted[0] if self._sorted else 0.0

    @property
    def longest(self) -> float:
        return self._sorted[-1] if self._sorted else 0.0


class RateLimiter:
    """Sliding-window logs for every window; `acquire()` waits, FIFO, until all have room.

    Feedback per response, with no await in between: `record_latency`, then `observe`,
    then `on_throttled` or `on_accepted` (the latency tells which send was answered).
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
        # Per configured window: the most it may allow (configured, or learned from 429s),
        # and the most it was seen to accept (P_W in the module docstring).
        self._ceilings = [w.limit for w in self._configured]
        self._proven = [0] * len(self._configured)
        self._scale = 1.0
        self._limits = tuple(self._ceilings)  # in force: ceilings times scale
        self._sends: list[float] = []  # ours, sorted: appended at the clock's time
        self._counted: list[float] = []  # ours and foreign, for the server's window
        self._refused: list[float] = []  # send times of our 429s, sorted
        self._prune_at = _PRUNE_FIRST
        self._latencies = _Latencies()
        self._wide = False
        self._answered: float | None = None  # send time of the response being reported
        self._resume_at = -math.inf
        self._episode_end: float | None = None
        self._acquired = 0
        self._throttled = 0
        self._paused = 0.0
        self._decreases = 0
        self._learned = 0
        # Created lazily so the limiter can be built outside the loop that uses it.
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None

    # -- what is in force -------------------------------------------------------------

    def _rescale(self) -> None:
        # The epsilon keeps k additive steps of 1/limit from flooring to k - 1.
        self._limits = tuple(max(1, math.floor(c * self._scale + 1e-9)) for c in self._ceilings)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The effective windows: configured (scaled, learned), tightened or joined by the server's.

        The server's own window is never scaled: it states the server's count exactly, so
        cutting it only wastes budget (the configured windows take the cuts).
        """
        server = self._server
        found = [
            Window(limit, w.seconds)
            for limit, w in zip(self._limits, self._configured, strict=True)
        ]
        if server is not None and server.limit < _implied_limit(found, server.seconds):
            same = [i for i, w in enumerate(found) if w.seconds == server.seconds]
            for i in same:
                found[i] = server
            if not same:
                found.append(server)
        return tuple(found)

    @property
    def pad(self) -> float:
        """Seconds added to every window's length: margin plus the arrival-time spread."""
        spread = self._latencies.spread
        return self._margin + (spread if self._wide else spread / 2)

    @property
    def stats(self) -> LimiterStats:
        """Counters so far."""
        return LimiterStats(
            self._acquired, self._throttled, self._paused, self._decreases, self._learned
        )

    def _rules(self) -> list[Rule]:
        pad = self.pad
        rules: list[Rule] = [
            (limit, w.seconds + pad, self._sends)
            for limit, w in zip(self._limits, self._configured, strict=True)
        ]
        if self._server is not None:
            # Always enforced, even when looser: foreign sends count against it alone.
            rules.append((self._server.limit, self._server.seconds + pad, self._counted))
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
            self._sends.append(now)
            self._counted.append(now)
            self._acquired += 1
            if len(self._sends) >= self._prune_at:
                self._prune(now)

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
        """Forget sends no window can see; run when the log doubled, so O(1) amortised."""
        longest = max(w.seconds for w in self._configured)
        if self._server is not None:
            longest = max(longest, self._server.seconds)
        # Keep enough history to compare our count with the server's over its interval,
        # and to count a late answer's window with the widest pad.
        wide = self._margin + self._latencies.spread
        horizon = now - (longest + wide + self._latencies.longest + 1.0)
        for log in (self._sends, self._counted, self._refused):
            del log[: bisect_left(log, horizon)]
        self._prune_at = max(_PRUNE_FIRST, 2 * len(self._sends))

    def paused_until(self) -> float:
        """When the next request may go, on the limiter's clock (in the past: now); reads only."""
        return max(self._resume_at, _earliest(self._rules(), self._clock()))

    def min_duration(self, n: int) -> float:
        """Seconds from now until the last of n more requests may be sent, at the earliest."""
        if n <= 0:
            return 0.0
        now = self._clock()
        times = _schedule(self._rules(), n, max(now, self._resume_at))
        return times[-1] - now

    # -- feedback -----------------------------------------------------------------------

    def record_latency(self, seconds: float) -> None:
        """Learn one send->response time; its spread sets the safety pad."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            self._answered = None
            return
        self._latencies.add(seconds)
        self._answered = self._clock() - seconds

    def _answered_send(self) -> float | None:
        """The logged send the latest `record_latency` answered, if it is still in the log."""
        estimate, self._answered = self._answered, None
        if estimate is None:
            return None
        # The send was logged just before the latency clock started: the last one before it.
        i = bisect_right(self._sends, estimate + _SAME_SEND) - 1
        return self._sends[i] if i >= 0 else None

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the server's window and the budget others use from X-Ratelimit-* headers."""
        found = {k.lower(): v for k, v in headers.items() if k[:12].lower() == "x-ratelimit-"}
        limit = _number(found.get("x-ratelimit-limit"))
        interval = _number(found.get("x-ratelimit-interval"))
        if limit is None or interval is None or limit < 1 or interval <= 0:
            return
        before = self.windows
        self._server = Window(int(limit), interval)
        remaining = _number(found.get("x-ratelimit-remaining"))
        if remaining is not None:
            self._account_foreign(int(limit) - max(0, int(remaining)), interval)
        if self.windows != before:
            self._wake()

    def _account_foreign(self, used: int, interval: float) -> None:
        now = self._clock()
        # The server's window ended when this request arrived, up to one latency ago.
        since = now - interval - self.pad - self._latencies.longest
        counted = len(self._counted) - bisect_right(self._counted, since)
        if used > counted:
            # When the others sent is unknown; logging them now is the safe assumption.
            self._counted.extend([now] * (used - counted))

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: pause every waiter; learn which window was too generous, else widen or cut."""
        now = self._clock()
        self._throttled += 1
        sent = self._answered_send()
        if retry_after is not None and retry_after >= 0 and math.isfinite(retry_after):
            resume = now + retry_after
        else:
            resume = self._fullest_frees(now)
        learned = False
        if sent is not None:
            learned = self._learn(sent)
            insort(self._refused, sent)
        latest = self._latencies.longest
        if self._episode_end is None or now >= self._episode_end:
            if not learned:
                longest = max(w.seconds for w in self.windows) + self.pad
                if not self._wide:
                    self._wide = True
                elif self._episode_end is not None and now - self._episode_end <= longest:
                    self._decrease()
            self._episode_end = resume + latest
        else:
            # In-flight requests sent before the pause: the same episode, not a repeat.
            self._episode_end = max(self._episode_end, resume + latest)
        if resume > self._resume_at:
            self._paused += resume - max(self._resume_at, now)
            self._resume_at = resume

    def _learn(self, sent: float) -> bool:
        """Tighten the window that refused the request sent at `sent`; False if none can be told."""
        wide = self._margin + self._latencies.spread
        best: tuple[float, int, int] | None = None
        for i, w in enumerate(self._configured):
            limit = self._limits[i]
            if not self._wide and _between(self._sends, sent - w.seconds - wide, sent) >= limit - 1:
                return False  # this window was at its limit: suspect the pad first
            count = _between(self._sends, sent - w.seconds, sent)
            count -= _between(self._refused, sent - w.seconds, sent)
            # Below a count the server once accepted, or no tighter than now: not the cause.
            if count < max(1, self._proven[i]) or count >= limit:
                continue
            load = count / w.limit
            if best is None or load > best[0]:
                best = (load, i, count)
        if best is None:
            return False
        _, i, count = best
        self._ceilings[i] = count
        self._learned += 1
        self._rescale()
        return True

    def _fullest_frees(self, now: float) -> float:
        """When the window nearest its limit frees one slot (the shortest window if all empty)."""
        best: tuple[float, float] | None = None
        for limit, span, sends in self._rules():
            first = bisect_right(sends, now - span)
            inside = len(sends) - first
            if inside:
                load = inside / limit
                if best is None or load > best[0]:
                    best = (load, sends[first] + span)
        if best is None:
            return now + min(w.seconds for w in self.windows) + self.pad
        return best[1]

    def _decrease(self) -> None:
        self._scale = max(self._scale * DECREASE_FACTOR, 1.0 / self._largest_limit())
        self._decreases += 1
        self._rescale()

    def _largest_limit(self) -> int:
        limits = list(self._ceilings)
        if self._server is not None:
            limits.append(self._server.limit)
        return max(limits)

    def on_accepted(self) -> None:
        """A request got through: note what it proves; give back one request of the largest."""
        sent = self._answered_send()
        if sent is not None:
            for i, w in enumerate(self._configured):
                # Everything sent in the span before it (and not refused) was let in with it.
                taken = _between(self._sends, sent - w.seconds, sent + _SAME_SEND)
                taken -= _between(self._refused, sent - w.seconds, sent + _SAME_SEND)
                self._proven[i] = max(self._proven[i], taken)
        if self._scale < 1.0:
            self._scale = min(1.0, self._scale + 1.0 / self._largest_limit())
            self._rescale()
            self._wake()
