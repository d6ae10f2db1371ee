"""What the server showed about each window: ceilings, what it took, 429s, foreign load.

What each window allows (`Budget`)
----------------------------------
- `ceiling`: the most of our requests in one window. It starts at the told limit
  (`--rate-limit`, or the documented defaults): told limits are known, so no slow start.
- `proven`: the most the server took in one window: at an accepted request, our earlier
  sends in the span before it that were not refused. That many fit under both counting
  rules (a server that counts refusals counted at least those).
- A 429 gives an upper bound that also holds under both rules: the window had at most
  `count` of ours before the refused one, refused ones included. A cut sets the ceiling
  there, but only for a window that could have refused (count >= proven, and not the
  average window when Remaining said it had room), the fullest one; a window at its own
  limit suspects the pad first.
- `free`: up to here requests need no evidence. It is the told limit until a 429 cuts
  some ceiling (a told limit was wrong, so none is trusted; but the window the headers
  describe is), then what the server took. A request above both `free` and `proven` is a
  probe (the limiter keeps few in flight).
- After a cut, the ceiling grows back by one per RECOVER_WINDOWS window lengths, and only
  once the server took the last step: a failed probe is just another cut.

Other traffic on the same IP
----------------------------
With X-Ratelimit-* headers, Remaining is the truth for the average window: at the answered
request, what the server counted less what we sent in its interval is foreign load
(`ForeignLoad`), and the server's window is enforced at Limit minus the largest load seen
over the last interval. Without headers, a 429 that no window of ours explains (every
count below what was proven) is foreign load on the longest (average) window: its
ceiling is cut to our count there, or, when we had less than half of it, the window is
left to drain (another tool's burst, not a steady neighbour).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from batch.ratelimit._windows import Window, between, inside

# A cut window probes one request higher after this many of its lengths without a 429.
RECOVER_WINDOWS = 4
RECOVER_MIN_SECONDS = 10.0
# A 429 unexplained by our windows, with less than this share of the average window ours:
# another tool's burst. The window is left to drain instead of being cut.
TRANSIENT_SHARE = 0.5
# Sends logged at the same instant (clock ties): which went first is unknown.
SAME_SEND = 1e-7

Blame = Literal["cut", "pad", "drain", "none"]

log = logging.getLogger("batch.ratelimit")


@dataclass(slots=True)
class Budget:
    """One configured window: what we may send in it, and what the server showed."""

    told: Window
    ceiling: int
    free: int
    proven: int = 0
    cut_at: float | None = None
    # A burst window: Commerce Layer counts it per endpoint, so only the writes' own log
    # tells what it holds (the lookups go to other endpoints).
    per_endpoint: bool = False

    @property
    def probing(self) -> bool:
        """The ceiling is above everything known to be safe: the next request there probes."""
        return self.ceiling > max(self.free, self.proven)

    @property
    def safe(self) -> int:
        """Requests in one window known to be taken: no probe below this."""
        return min(self.ceiling, max(self.free, self.proven))


class Budgets:
    """Every configured window's budget, and what 429s and acceptances teach them."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self._longest = max(range(len(windows)), key=lambda i: windows[i].seconds)
        longest = windows[self._longest].seconds
        self.items = [
            Budget(w, w.limit, w.limit, per_endpoint=w.seconds < longest) for w in windows
        ]
        self.learned = 0

    def recover(self, now: float) -> None:
        """Probe back up: a cut ceiling grows by one per RECOVER_WINDOWS quiet window lengths."""
        for b in self.items:
            # Only a ceiling the server has taken rises: one step above it is in doubt.
            if b.cut_at is None or b.ceiling >= b.told.limit or b.probing:
                continue
            if now - b.cut_at >= max(RECOVER_WINDOWS * b.told.seconds, RECOVER_MIN_SECONDS):
                b.ceiling += 1
                b.cut_at = now

    def probes(
        self, sends: Sequence[float], writes: Sequence[float], now: float, pad: float
    ) -> bool:
        """Whether a request sent now is above what the server took in some window."""
        return any(
            b.probing
            and inside(writes if b.per_endpoint else sends, now - b.told.seconds - pad, now)
            >= b.safe
            for b in self.items
        )

    def prove(
        self,
        sends: Sequence[float],
        posts: Sequence[float],
        refused: Sequence[float],
        sent: float,
    ) -> None:
        """The request sent at `sent` was taken: so was everything (not refused) before it.

        A burst window counts only the `posts`: what surely shares the writes' endpoint.
        """
        for b in self.items:
            low, high = sent - b.told.seconds, sent + SAME_SEND
            log = posts if b.per_endpoint else sends
            taken = inside(log, low, high) - inside(refused, low, high)
            b.proven = max(b.proven, min(taken, b.ceiling))

    def blame(
        self,
        sends: Sequence[float],
        writes: Sequence[float],
        sent: float,
        now: float,
        *,
        wide: float,
        pad_suspect: bool,
        probe: bool = False,
        stated: float | None = None,
    ) -> Blame:
        """Learn from the 429 of the request sent at `sent`: cut a ceiling, or say what else.

        "pad": a window was at its limit and none well below could have refused (only when
        `pad_suspect`); "drain": someone else's burst filled the average window; "none":
        nothing to learn. Windows `stated` seconds long are the server's advertised one, whose
        Remaining said it had room: innocent, and never in doubt. A refused `probe` blames
        first the window it probed (above what that window had taken).
        """
        logs = [writes if b.per_endpoint else sends for b in self.items]
        counts = [
            between(log, sent - b.told.seconds, sent)
            for b, log in zip(self.items, logs, strict=True)
        ]
        # At its limit: the widest jitter could have put one more of ours in the window.
        full = [
            between(log, sent - b.told.seconds - wide, sent) >= b.ceiling - 1
            for b, log in zip(self.items, logs, strict=True)
        ]
        # A refused probe blames the window it may have gone above what was taken in: with
        # sends up to `wide` earlier (a burst of grants leaves in a trickle, behind the
        # journal's writes), and those logged at the same instant, which may have gone first.
        probed = [
            probe
            and b.probing
            and between(log, sent - b.told.seconds - wide, sent + SAME_SEND) - 1 >= b.safe
            for b, log in zip(self.items, logs, strict=True)
        ]
        suspects = [
            (probed[i], not at_limit, count / b.ceiling, i)
            for i, (b, count, at_limit) in enumerate(zip(self.items, counts, full, strict=True))
            if (probed[i] or max(1, b.proven) <= count < b.ceiling) and b.told.seconds != stated
        ]
        if pad_suspect and any(full) and not any(clear for _, clear, _, _ in suspects):
            return "pad"
        if suspects:
            *_, i = max(suspects)
            b, count = self.items[i], counts[i]
            if probed[i]:  # its probe failed: back to what was taken, below the ceiling
                count = min(b.ceiling - 1, max(b.proven, count if count < b.ceiling else 1))
            self.cut(b, count, now, stated=stated)
            return "cut"
        # Every window had room by what the server took before: foreign load.
        b, count = self.items[self._longest], counts[self._longest]
        if b.told.seconds == stated:
            return "pad" if pad_suspect else "none"
        if TRANSIENT_SHARE * b.ceiling <= count < b.ceiling:
            self.cut(b, count, now, stated=stated)
            return "cut"
        return "drain"

    @property
    def longest(self) -> Window:
        return self.items[self._longest].told

    def cut(self, b: Budget, count: int, now: float, *, stated: float | None = None) -> None:
        log.info("rate limit %s: a 429 with %d sent in the window", b.told, count)
        b.ceiling = max(1, min(b.ceiling, count))
        b.proven = min(b.proven, b.ceiling)
        b.cut_at = now
        self.learned += 1
        for other in self.items:
            # A told limit was wrong, so none is trusted: above what was taken is a probe.
            # The server's advertised window is not in doubt: its Remaining says the truth.
            if other is b or other.told.seconds != stated:
                other.free = min(other.free, other.proven)


class ForeignLoad:
    """Other traffic in the server's (average) window, read from X-Ratelimit-Remaining."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque()  # (seen at, foreign count)

    def note(self, now: float, used: int, ours: int) -> None:
        self._seen.append((now, max(0, used - ours)))

    def load(self, now: float, server: Window) -> int:
        """The largest foreign count seen over the last interval (the latest, if older)."""
        if not self._seen:
            return 0
        while len(self._seen) > 1 and self._seen[0][0] <= now - server.seconds:
            self._seen.popleft()
        load = max(count for _, count in self._seen)
        # Answers overtake each other on their way in: a few "foreign" are our own.
        return load if load >= max(3, server.limit // 20) else 0
