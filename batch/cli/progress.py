"""Progress for people (a tqdm bar on a terminal) and for cron (a log line every N seconds).

Both hear from the run core about once a second (`eta`), so the bar redraws and the cron
line comes on time even while no row finishes: during a rate-limit wait, a lookup, a stall.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from batch.config import duration_text

log = logging.getLogger("batch.progress")

BAR_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} rows [{elapsed}{postfix}]"


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))


def _phase(text: str, detail: str) -> str:
    return f"{text}, {detail}" if text and detail else text


class BarProgress:
    """A tqdm bar: rows done of total, counts by status, one ETA (the limiter's) and the phase."""

    def __init__(self, *, file: TextIO | None = None) -> None:
        self._file = file
        self._bar: tqdm[Any] | None = None
        self._counts: Counter[str] = Counter()
        self._eta: float | None = None
        self._phase = ""

    def start(self, total: int) -> None:
        # miniters=1: tqdm's dynamic miniters would hold the bar still after a burst of
        # skipped rows; the run core's once-a-second `eta` redraws it during waits.
        self._bar = tqdm(
            total=total,
            unit="row",
            dynamic_ncols=True,
            leave=True,
            bar_format=BAR_FORMAT,
            miniters=1,
            file=self._file,
        )

    def advance(self, status: str) -> None:
        self._counts[str(status)] += 1
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix(), refresh=False)
            self._bar.update(1)

    def eta(self, seconds: float) -> None:
        self._eta = seconds
        self._redraw()

    def phase(self, text: str, detail: str = "") -> None:
        self._phase = _phase(text, detail)
        self._redraw()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def postfix(self) -> str:
        """`ETA ≥ 3 min 10 s · 12 created, 1 failed · waiting for the rate limit, ...`."""
        parts = []
        if self._eta is not None:
            parts.append(f"ETA ≥ {duration_text(self._eta)}")
        if self._counts:
            parts.append(_counts(self._counts))
        if self._phase:
            parts.append(self._phase)
        return " · ".join(parts)

    def _redraw(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix(), refresh=False)
            self._bar.refresh()


class LogProgress:
    """No carriage returns under cron: one INFO line every `every` seconds, on a timer,
    and one line at each phase change, saying what the run waits on."""

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self._total = 0
        self._done = 0
        self._counts: Counter[str] = Counter()
        self._eta: float | None = None
        self._phase = ""
        self._detail = ""
        self._logged = ""  # the last phase logged, and when
        self._logged_at = -float("inf")

    def start(self, total: int) -> None:
        self._total = total
        self._next = self._clock() + self._every

    def advance(self, status: str) -> None:
        self._done += 1
        self._counts[str(status)] += 1
        self._tick()

    def eta(self, seconds: float) -> None:
        self._eta = seconds
        self._tick()

    def phase(self, text: str, detail: str = "") -> None:
        changed = text != self._phase
        self._phase, self._detail = text, detail
        if not (changed and text):
            return  # a countdown, or back to sending: the next progress line says so
        now = self._clock()
        if text == self._logged and now < self._logged_at + self._every:
            return  # the same wait again (a limiter pacing bursts): once per interval is enough
        self._logged, self._logged_at = text, now
        log.info("%s", _phase(text, detail), extra={"phase": text})

    def close(self) -> None:
        pass

    def _tick(self) -> None:
        now = self._clock()
        if now >= self._next:
            self._next = now + self._every
            self._emit()

    def _emit(self) -> None:
        parts = [f"progress: {self._done} of {self._total} rows"]
        if self._counts:
            parts.append(_counts(self._counts))
        if self._eta is not None:
            parts.append(f"at least {duration_text(self._eta)} left at the rate limits")
        if self._phase:
            parts.append(_phase(self._phase, self._detail))
        log.info(
            "%s",
            "; ".join(parts),
            extra={
                "done": self._done,
                "total": self._total,
                "counts": dict(self._counts),
                "eta_s": None if self._eta is None else round(self._eta, 1),
                "phase": self._phase,
            },
        )
