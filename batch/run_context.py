"""What the parts of one run share: the injected world, the stop, the rows still owed.

RunContext   the run's ID, journal, API, limiter, options, progress, clocks, the stop
Work         rows handed to a part and not yet at their status for this run
FailFast     stops the run when its first answers all fail alike (wrong organization)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from batch.api import CommerceLayer
from batch.config import RunOptions
from batch.errors import AuthRefusedError, PaybatchError
from batch.journal import AsyncJournal, Journal
from batch.progress import Progress
from batch.ratelimit import RateLimiter

log = logging.getLogger(__name__)

FAIL_FAST_STATUSES = frozenset({401, 403, 404})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Work:
    """Rows handed out and not yet at their status for this run."""

    outstanding: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def add(self) -> None:
        self.outstanding += 1
        self.idle.clear()

    def done(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.idle.set()


@dataclass(kw_only=True)
class RunContext:
    run_id: str
    journal: AsyncJournal
    api: CommerceLayer
    limiter: RateLimiter
    options: RunOptions
    progress: Progress
    stopping: asyncio.Event
    clock: Clock
    sleep: Sleep
    wall: Clock
    total_rows: int = 0
    work: Work = field(default_factory=Work)
    finished: int = 0
    stopped_by: PaybatchError | None = None  # why the run stopped early, if it did
    crashed: Exception | None = None
    _eta_at: float = -math.inf

    def advance(self, status: str) -> None:
        """One row reached its status; refresh the rate-limit ETA at most once a second."""
        self.progress.advance(status)
        self.finished += 1
        now = self.clock()
        if now - self._eta_at >= 1.0:
            self._eta_at = now
            left = max(0, self.total_rows - self.finished)
            self.progress.eta(self.limiter.min_duration(left))

    def stop(self, reason: PaybatchError | None = None) -> None:
        if reason is not None and self.stopped_by is None:
            self.stopped_by = reason
            log.error("%s", reason)
        self.stopping.set()

    def failed(self, where: str, exc: Exception) -> None:
        """A task hit an error it cannot handle: stop the run; the report is still written."""
        if isinstance(exc, PaybatchError):  # credentials revoked, token endpoint down, ...
            self.stop(exc)
            return
        log.exception("%s failed unexpectedly", where)
        if self.crashed is None:
            self.crashed = exc
        self.stop()

    async def until(self, waiting: Awaitable[object]) -> bool:
        """Wait for `waiting`, or for the stop, whichever comes first; True if it completed."""
        done = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (done, stop):
            if not fut.done():
                fut.cancel()
        return done.done() and not done.cancelled()


class FailFast:
    """Stop early when the first rows all fail alike with a configuration-looking error.

    Those rows' failures say nothing about the rows themselves, so they are left
    retryable: once the configuration is fixed, the rerun sends them. A preflight's
    "order not found" counts like a POST's 404, so a wrong organization stops the run
    before a single POST.
    """

    def __init__(self, ctx: RunContext, *, hint: str = "") -> None:
        self._ctx = ctx
        self._limit = ctx.options.fail_fast_after
        self._hint = hint
        self._seen = 0
        self._failures: list[tuple[int | None, str]] = []
        self._orders: list[str] = []

    async def observe(self, status: int | None, code: str, order_id: str = "") -> None:
        if not self._limit or self._seen >= self._limit:
            return
        self._seen += 1
        if status in FAIL_FAST_STATUSES:
            self._failures.append((status, code))
            self._orders.append(order_id)
        alike = len(self._failures) == self._limit and len(set(self._failures)) == 1
        if self._seen == self._limit and alike:
            status, code = self._failures[0]
            self._ctx.stop(
                AuthRefusedError(
                    f"the first {self._limit} rows all failed with HTTP {status} {code}: "
                    "this looks like a configuration problem (wrong organization, "
                    "environment, scope or permissions), not bad rows; stopped" + self._hint
                )
            )
            orders = list(self._orders)
            await self._ctx.journal.write(lambda j: Journal.reopen_failed(j, order_ids=orders))
