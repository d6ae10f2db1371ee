"""What the parts of one run share: the injected world, the stop, the rows still owed.

RunContext   the run's ID, journal, API, limiter, options, progress, clocks, the stop
Work         rows handed to a part and not yet at their status for this run
FailFast     stops the run when its first answers all fail alike (wrong organization)
Reachability stops the run (exit 5) when the API cannot be reached for a while
Phase        what the run waits on, shown by the progress: rate limit, lookups, drain
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from batch.api import Answer, CommerceLayer
from batch.config import RunOptions
from batch.errors import ApiUnreachableError, AuthRefusedError, PaybatchError
from batch.journal import AsyncJournal, Journal
from batch.policy import Outcome
from batch.progress import Progress
from batch.ratelimit import RateLimiter

log = logging.getLogger(__name__)

FAIL_FAST_STATUSES = frozenset({401, 403, 404})
# The API counts as unreachable when this many POSTs in a row could not reach it, over at
# least this long (so one instant of refused connections, a restart, is not an outage).
UNREACHABLE_REQUESTS = 10
UNREACHABLE_SECONDS = 5.0
# Phases by precedence: the progress shows the first one in force. While a request is in
# flight the run is sending, so the phases that only say what it waits on are not shown.
PHASE_ORDER = ("drain", "rate limit", "lookup", "preflight", "settle wait")
WHILE_IDLE = frozenset({"lookup", "preflight", "settle wait"})

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
    to_send: int | None = None  # rows the state file does not show paid, at the start
    admitted_done: int = 0  # rows finished at admission, without a request
    work: Work = field(default_factory=Work)
    finished: int = 0
    stopped_by: PaybatchError | None = None  # why the run stopped early, if it did
    crashed: Exception | None = None
    _eta_at: float = -math.inf
    deadline: Deadline | None = None
    phases: dict[str, Phase] = field(default_factory=dict)  # shown by the heartbeat
    _shown: tuple[str, str] = ("", "")

    def advance(self, status: str) -> None:
        """One row reached its status; refresh the rate-limit ETA at most once a second."""
        self.progress.advance(status)
        self.finished += 1
        now = self.clock()
        if now - self._eta_at >= 1.0:
            self._eta_at = now
            self.progress.eta(self.limiter.min_duration(self.rows_left()))

    def rows_left(self) -> int:
        """Rows that may still need a POST: the ETA's count."""
        left = self.total_rows - self.finished
        if self.to_send is not None:
            left = min(left, self.to_send - (self.finished - self.admitted_done))
        return max(0, left)

    def set_phase(self, key: str, phase: Phase | None) -> None:
        """Enter (or, with None, leave) one of PHASE_ORDER; the heartbeat shows it."""
        if phase is None:
            self.phases.pop(key, None)
        else:
            self.phases[key] = phase

    def show_phase(self, *, sending: bool = False) -> None:
        """Tell the progress the phase in force and its countdown, when either changed."""
        shown_keys = [k for k in PHASE_ORDER if not (sending and k in WHILE_IDLE)]
        current = next((self.phases[k] for k in shown_keys if k in self.phases), None)
        shown = ("", "") if current is None else (current.text, current.detail(self.clock()))
        if shown != self._shown:
            self._shown = shown
            self.progress.phase(*shown)

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


@dataclass(frozen=True)
class Deadline:
    """When sending stops (the run's monotonic clock), and its name for people."""

    at: float
    label: str  # "06:30", or "06:30 (--max-duration 5 h)"


@dataclass(frozen=True)
class Phase:
    """What the run waits on, with a countdown to `until` (the run's monotonic clock)."""

    text: str
    until: float | None = None
    countdown: str = "resuming in {} s"

    def detail(self, now: float) -> str:
        if self.until is None:
            return ""
        return self.countdown.format(max(0, math.ceil(self.until - now)))


class Reachability:
    """Stop the run (exit 5) once the last POSTs all failed to reach the API for a while.

    Each such answer is NOT_SENT (it never left this machine), so stopping loses nothing:
    the rows not reached stay pending, reported not_attempted, and the next run sends them.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._streak = 0
        self._since = 0.0

    def observe(self, answer: Answer) -> None:
        ctx = self._ctx
        if answer.outcome is not Outcome.NOT_SENT or not answer.unreached:
            self._streak = 0  # the server answered (or the request reached it)
            return
        now = ctx.clock()
        if self._streak == 0:
            self._since = now
        self._streak += 1
        lasted = now - self._since
        if self._streak >= UNREACHABLE_REQUESTS and lasted >= UNREACHABLE_SECONDS:
            cause = answer.unreached
            ctx.stop(
                ApiUnreachableError(
                    f"the API could not be reached ({cause}): the last {self._streak} "
                    f"requests over {lasted:.0f} s all failed; stopped",
                    cause=cause,
                )
            )


class FailFast:
    """Stop early when the first rows all fail alike with a configuration-looking error.

    "First" is in input order: the Feeder names the first N rows it hands out
    (`expect`), and the verdict waits until each of them has an outcome, however the
    lookups and sends interleave. Those rows' failures say nothing about the rows
    themselves, so they are left retryable: once the configuration is fixed, the rerun
    sends them. A preflight's "order not found" counts like a POST's 404, so a wrong
    organization stops the run before a single POST.
    """

    def __init__(self, ctx: RunContext, *, hint: str = "") -> None:
        self._ctx = ctx
        self._limit = ctx.options.fail_fast_after
        self._hint = hint
        self._expected: dict[int, str] = {}  # row number → order ID, the first N rows
        self._outcomes: dict[int, tuple[int | None, str]] = {}
        self._decided = False

    def expect(self, row: int, order_id: str) -> None:
        """A row is handed out for its preflight; the first N of them decide."""
        if self._limit and len(self._expected) < self._limit:
            self._expected[row] = order_id

    async def observe(self, row: int, status: int | None, code: str) -> None:
        if self._decided or row not in self._expected or row in self._outcomes:
            return
        self._outcomes[row] = (status if status in FAIL_FAST_STATUSES else None, code)
        if len(self._outcomes) < self._limit:
            return
        self._decided = True
        outcomes = set(self._outcomes.values())
        if len(outcomes) != 1 or next(iter(outcomes))[0] is None:
            return
        status, code = next(iter(outcomes))
        self._ctx.stop(
            AuthRefusedError(
                f"the first {self._limit} rows all failed with HTTP {status} {code}: "
                "this looks like a configuration problem (wrong organization, "
                "environment, scope or permissions), not bad rows; stopped" + self._hint
            )
        )
        orders = [o for o in self._expected.values() if o]
        await self._ctx.journal.write(lambda j: Journal.reopen_failed(j, order_ids=orders))
