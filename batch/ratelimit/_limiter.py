"""The adaptive limiter: spend the whole budget, learn from 429s under either counting rule.

Enforcing a window
------------------
Commerce Layer counts a request when it *arrives*; we only know when we *send* it. Each
window is enforced on our send log with its length padded by margin + half the spread of
recent send->response times (the whole spread once a 429 shows half was not enough), so
jitter cannot squeeze `limit + 1` arrivals into one window. Sends are logged at
acquisition, refused ones included: whether the server counts a refused request is
unconfirmed, so we always count it, and a window that refused us drains only once the
refusals have left it too.

Learning
--------
Every answer feeds `_evidence`: an accepted request proves what the server took, a 429
cuts the window that could have refused it (or says the pad, or someone else's burst, is
to blame), and X-Ratelimit-Remaining measures other traffic on the same IP. Requests
above what the server took, and any request sent on a stale Remaining while others spend
the budget, are probes: at most PROBES are in flight, so a wrong limit costs a few 429s,
not a burst of them. Pauses come from Retry-After when the server sends it; otherwise
the logs, refused requests included, hold every waiter back until the window drained.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from batch.ratelimit._evidence import SAME_SEND, Budgets, ForeignLoad
from batch.ratelimit._windows import (
    Latencies,
    Rule,
    Window,
    between,
    earliest,
    implied_limit,
    inside,
    schedule,
)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_MARGIN = 0.05
# Requests in flight above what the server has taken: what a wrong limit can cost at once.
PROBES = 6
# Foreign load read from Remaining is this share of the interval old: refresh it with probes
# before a burst (another integration may have spent more meanwhile).
STALE_SHARE = 0.1
# A slot this close is taken now: event loops may wake a clock tick early, and the pad
# is orders of magnitude larger.
_EARLY_OK = 1e-6
# Logs are pruned when they reach this length, then whenever they double.
_PRUNE_FIRST = 1024


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """Counters for the run summary."""

    acquired: int
    throttled: int
    paused_seconds: float
    learned: int = 0  # ceilings cut to what a 429 showed
    probes: int = 0  # requests sent above what the server had accepted


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class RateLimiter:
    """Sliding-window logs for every window; `acquire()` waits, FIFO, until all have room.

    `acquire()` returns the send time it logged: the request's ticket. Feedback per
    response, with no await in between: `record_latency` with that ticket (which send was
    answered), then `observe`, then `on_throttled` or `on_accepted`. Any extra request (a
    resend after a token refresh) takes its own slot, and ticket, with `acquire()`.
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
        self._budgets = Budgets(windows)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._server: Window | None = None  # as the headers state it
        self._foreign = ForeignLoad()
        self._sends: list[float] = []  # ours, sorted, refused ones included
        self._writes: list[float] = []  # the same, only the writes' endpoint (burst windows)
        # The same without the GETs on the writes' path: whether the API counts those in the
        # writes' burst window is unconfirmed, so they are held by it but prove nothing.
        self._posts: list[float] = []
        self._refused: list[float] = []  # send times of our 429s, sorted
        self._probes: list[float] = []  # send times of probes not answered yet
        self._prune_at = _PRUNE_FIRST
        self._latencies = Latencies()
        self._wide = False
        self._answered: float | None = None  # send time of the response being reported
        self._seen_at = -math.inf  # the last Remaining we read
        self._reacted_at = -math.inf  # when a 429 last changed what we send
        self._blamed = math.inf  # the send time of the 429 learned from then
        self._resume_at = -math.inf
        self._acquired = 0
        self._throttled = 0
        self._paused = 0.0
        self._probes_sent = 0
        # Created lazily so the limiter can be built outside the loop that uses it.
        self._lock: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None

    # -- what is in force -------------------------------------------------------------

    @property
    def windows(self) -> tuple[Window, ...]:
        """The ceilings in force, tightened or joined by the server's window (less foreign load)."""
        found = [Window(b.ceiling, b.told.seconds) for b in self._budgets.items]
        server = self._server_window(self._clock())
        if server is not None and server.limit < implied_limit(found, server.seconds):
            same = [i for i, w in enumerate(found) if w.seconds == server.seconds]
            for i in same:
                found[i] = server
            if not same:
                found.append(server)
        return tuple(found)

    @property
    def _widest_pad(self) -> float:
        """The pad if half the spread is not enough: how far an arrival may trail its send."""
        return self._margin + self._latencies.spread

    @property
    def pad(self) -> float:
        """Seconds added to every window's length: margin plus the arrival-time spread."""
        spread = self._latencies.spread
        return self._margin + (spread if self._wide else spread / 2)

    @property
    def stats(self) -> LimiterStats:
        """Counters so far."""
        return LimiterStats(
            self._acquired,
            self._throttled,
            self._paused,
            self._budgets.learned,
            self._probes_sent,
        )

    def _server_window(self, now: float) -> Window | None:
        if self._server is None:
            return None
        foreign = self._foreign_load(now)
        return Window(max(1, self._server.limit - foreign), self._server.seconds)

    def _foreign_load(self, now: float) -> int:
        return 0 if self._server is None else self._foreign.load(now, self._server)

    def _rules(self, now: float, *, lookup: bool = False) -> list[Rule]:
        """The windows a request must fit: a lookup is not held by the writes' burst window."""
        pad = self.pad
        self._budgets.recover(now)
        rules: list[Rule] = [
            (b.ceiling, b.told.seconds + pad, self._writes if b.per_endpoint else self._sends)
            for b in self._budgets.items
            if not (lookup and b.per_endpoint)
        ]
        server = self._server_window(now)
        if server is not None:
            rules.append((server.limit, server.seconds + pad, self._sends))
        return rules

    def _probe_horizon(self) -> float:
        return max(b.told.seconds for b in self._budgets.items) + self.pad

    def _probes_full(self, now: float) -> bool:
        """Whether PROBES probes are unanswered; one lost for a whole window no longer counts."""
        if self._probes:
            horizon = now - self._probe_horizon() + _EARLY_OK
            self._probes = [p for p in self._probes if p > horizon]
        return len(self._probes) >= PROBES

    def _is_probe(self, now: float) -> bool:
        """A request above what the server took, or sent on a stale Remaining, probes."""
        server = self._server
        stale = server is not None and now - self._seen_at > STALE_SHARE * server.seconds
        if stale and self._foreign_load(now):
            return True  # another integration is spending the budget: maybe more since
        return self._budgets.probes(self._sends, self._writes, now, self.pad)

    # -- acquiring ----------------------------------------------------------------------

    async def acquire(self, *, lookup: bool = False, same_path: bool = False) -> float:
        """Wait, first come first served, until a request fits every window; log it, and
        return the send time logged (give it back with the answer, to `record_latency`).

        A `lookup` counts in the shared average window, not in the writes' burst window,
        which the API counts per endpoint; unless it is on the writes' path (`same_path`,
        the external payments): then it is held by their burst window too, since the API
        may count it there. Cancelling a waiter logs nothing and lets the next waiter in.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._changed = asyncio.Event()
        async with self._lock:
            while True:
                assert self._changed is not None
                self._changed.clear()
                now = self._clock()
                held = lookup and not same_path
                at = max(self._resume_at, earliest(self._rules(now, lookup=held), now))
                if at <= now + _EARLY_OK:
                    if not (self._is_probe(now) and self._probes_full(now)):
                        break
                    at = self._probes[0] + self._probe_horizon()  # or an answer, sooner
                await self._nap(at - now, self._changed)
            if self._is_probe(now):
                self._probes.append(now)
                self._probes_sent += 1
            self._sends.append(now)
            if same_path or not lookup:
                self._writes.append(now)
            if not lookup:
                self._posts.append(now)
            self._acquired += 1
            if len(self._sends) >= self._prune_at:
                self._prune(now)
            return now

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

    def _horizon(self, now: float) -> float:
        """Sends before this no window can see (with the widest pad and a late answer)."""
        longest = max(b.told.seconds for b in self._budgets.items)
        if self._server is not None:
            longest = max(longest, self._server.seconds)
        wide = self._widest_pad
        return now - (longest + wide + self._latencies.longest + 1.0)

    def _prune(self, now: float) -> None:
        """Forget sends no window can see; run when the log doubled, so O(1) amortised."""
        horizon = self._horizon(now)
        for log in (self._sends, self._writes, self._posts, self._refused):
            del log[: bisect_left(log, horizon)]
        self._prune_at = max(_PRUNE_FIRST, 2 * len(self._sends))

    def paused_until(self) -> float:
        """When the next request may go, on the limiter's clock (in the past: now); reads only."""
        now = self._clock()
        return max(self._resume_at, earliest(self._rules(now), now))

    def min_duration(self, n: int) -> float:
        """Seconds from now until the last of n more requests may be sent, at the earliest."""
        if n <= 0:
            return 0.0
        now = self._clock()
        times = schedule(self._rules(now), n, max(now, self._resume_at))
        return times[-1] - now

    # -- an earlier run's sends -----------------------------------------------------------

    def seed(self, sends: Iterable[tuple[float, bool]]) -> None:
        """Sends made before this limiter existed, as (clock time, refused): they still count."""
        taken = []
        for at, refused in sends:
            if math.isfinite(at):
                insort(self._sends, at)
                insort(self._writes, at)  # of unknown kind: held as writes, proving none
                if refused:
                    insort(self._refused, at)
                else:
                    taken.append(at)
        for at in taken:  # what the server took then is evidence now (the limits are per IP)
            self._budgets.prove(self._sends, self._posts, self._refused, at)
        self._wake()

    def history(self) -> list[tuple[float, bool]]:
        """Our sends some window can still see, as (clock time, refused), oldest first."""
        horizon = self._horizon(self._clock())
        refused = set(self._refused)
        return [(at, at in refused) for at in self._sends if at > horizon]

    # -- feedback -----------------------------------------------------------------------

    def record_latency(self, seconds: float, *, sent: float | None = None) -> None:
        """Learn one send->response time (its spread sets the safety pad), and which send
        was answered: `sent` is the ticket `acquire()` returned for it.

        The ticket is the only reliable link: between the grant and the request the Sender
        writes the journal, so a burst of grants leaves in a trickle, and the answer's
        latency no longer points at its own send.
        """
        self._answered = sent
        if seconds >= 0 and math.isfinite(seconds):
            self._latencies.add(seconds)

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
        if remaining is not None and self._answered is not None:
            used = int(limit) - max(0, int(remaining))
            self._note_foreign(used, interval, self._answered)
            self._seen_at = self._clock()
        if self.windows != before:
            self._wake()

    def _note_foreign(self, used: int, interval: float, sent: float) -> None:
        # What the server counted, less ours in its interval up to the answered request.
        # The server's interval ends at the request's arrival and counts arrivals: sends up
        # to the widest jitter before ours-minus-interval may still be in it. Counted as
        # ours, they never pass for foreign load (a few such ones made a run told the true
        # limits slow itself down by 4%).
        low = sent - interval - self._widest_pad
        ours = inside(self._sends, low, sent + SAME_SEND)
        ours -= inside(self._refused, low, sent + SAME_SEND)
        self._foreign.note(self._clock(), used, ours)

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: find the window that refused it and wait until it has drained."""
        now = self._clock()
        self._throttled += 1
        sent, self._answered = self._answered, None
        if retry_after is not None and retry_after >= 0 and math.isfinite(retry_after):
            resume: float | None = now + retry_after
        else:
            resume = None
        if sent is None:
            resume = resume if resume is not None else self._fullest_frees(now)
        else:
            probe = self._resolve_probe(sent)
            insort(self._refused, sent)
            drained = self._blame(sent, now, probe=probe)
            resume = resume if resume is not None else drained
        if resume is not None and resume > self._resume_at:
            self._paused += resume - max(self._resume_at, now)
            self._resume_at = resume
        self._wake()

    def _resolve_probe(self, sent: float) -> bool:
        i = bisect_left(self._probes, sent - SAME_SEND)
        if i < len(self._probes) and self._probes[i] <= sent + SAME_SEND:
            del self._probes[i]
            return True
        return False

    def _blame(self, sent: float, now: float, *, probe: bool) -> float | None:
        """Change what we send after the 429 of the request sent at `sent`.

        Returns when to resume if our logs cannot say it (someone else's burst), else None:
        the logs, the refused request included, hold every waiter back as long as needed.
        """
        if sent <= self._reacted_at and sent >= self._blamed:
            return None  # sent before we reacted to this episode: already explained
        if sent > self._reacted_at:
            self._reacted_at = now
        # A refusal of an earlier grant in the same episode is learned from too: requests
        # granted together reach the server in any order, so the earliest grant refused
        # is the one whose count is nearest the limit.
        self._blamed = sent
        server = self._server_window(now)
        stated = None
        if server is not None:
            ours = between(self._sends, sent - server.seconds, sent)
            if ours >= server.limit - 1:
                return None  # the average window, foreign load included, was full
            stated = server.seconds
        wide = self._widest_pad
        found = self._budgets.blame(
            self._sends,
            self._writes,
            sent,
            now,
            wide=wide,
            pad_suspect=not (probe or self._wide),
            probe=probe,
            stated=stated,
        )
        if found == "pad":
            self._wide = True  # at our own limit, and nothing else explains it: the pad
        elif found == "drain":
            return now + self._budgets.longest.seconds + self.pad
        return None

    def _fullest_frees(self, now: float) -> float:
        """When the window nearest its limit frees one slot (the shortest window if all empty)."""
        best: tuple[float, float] | None = None
        for limit, span, sends in self._rules(now):
            first = bisect_right(sends, now - span)
            held = len(sends) - first
            if held:
                load = held / limit
                if best is None or load > best[0]:
                    best = (load, sends[first] + span)
        if best is None:
            return now + min(w.seconds for w in self.windows) + self.pad
        return best[1]

    def on_accepted(self) -> None:
        """A request got through: everything sent in the span before it (not refused) fit."""
        sent, self._answered = self._answered, None
        if sent is None:
            return
        self._budgets.prove(self._sends, self._posts, self._refused, sent)
        if self._resolve_probe(sent):
            self._wake()
