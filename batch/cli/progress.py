"""Progress for people (a tqdm bar on a terminal) and for cron (a log line every N seconds)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

log = logging.getLogger("batch.progress")


class BarProgress:
    """A tqdm bar: rows done of total, counts by status, and an ETA from the rate limits."""

    def __init__(self) -> None:
        self._bar: tqdm[Any] | None = None
        self._counts: Counter[str] = Counter()
        self._eta: float | None = None

    def start(self, total: int) -> None:
        self._bar = tqdm(total=total, unit="row", dynamic_ncols=True, leave=True)

    def advance(self, status: str) -> None:
        self._counts[status] += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(self._postfix(), refresh=False)

    def eta(self, seconds: float) -> None:
        self._eta = seconds

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _postfix(self) -> str:
        parts = [f"{status}={n}" for status, n in sorted(self._counts.items())]
        if self._eta is not None:
            parts.append(f"limit-eta≥{self._eta:.0f}s")
        return " ".join(parts)


class LogProgress:
    """No carriage returns under cron: one INFO line every `every` seconds."""

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self._total = 0
        self._done = 0
        self._counts: Counter[str] = Counter()
        self._eta: float | None = None

    def start(self, total: int) -> None:
        self._total = total

    def advance(self, status: str) -> None:
        self._done += 1
        self._counts[status] += 1
        if self._clock() >= self._next:
            self._next = self._clock() + self._every
            self._emit()

    def eta(self, seconds: float) -> None:
        self._eta = seconds

    def close(self) -> None:
        pass

    def _emit(self) -> None:
        log.info(
            "progress: %d of %d rows",
            self._done,
            self._total,
            extra={"done": self._done, "total": self._total, "counts": dict(self._counts)},
        )
